//===- GgufFile.h - Hostile-input-safe GGUF reader --------------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_GGUF_GGUFFILE_H
#define KVOPT_COMPILER_IMPORT_GGUF_GGUFFILE_H

#include "compiler/import/formats/TensorInfo.h"
#include "kvrt/MappedFile.h"

#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace kvopt::formats {

/// A GGUF metadata value: scalars, strings, and arrays of either.
struct GgufValue {
  enum class Type : uint32_t {
    U8 = 0,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64
  };
  Type type = Type::U8;
  /// Integers widened; unsigned ones kept in `u`, signed in `i`.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  Type elementType = Type::U8;
  std::vector<GgufValue> items;
};

/// A mapped GGUF file (versions 2 and 3). Every count and length read from
/// the file is checked against the bytes that remain before anything is
/// allocated for it.
class GgufFile {
public:
  static kvrt::StatusOr<GgufFile> open(const std::string &path);

  const std::string &path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue> &metadata() const { return metadata_; }
  bool has(const std::string &key) const { return metadata_.count(key); }

  kvrt::StatusOr<std::string> getString(const std::string &key) const;
  kvrt::StatusOr<int64_t> getInt(const std::string &key) const;
  kvrt::StatusOr<int64_t> getPositiveInt(const std::string &key) const;
  kvrt::StatusOr<double> getFloat(const std::string &key) const;
  kvrt::StatusOr<bool> getBool(const std::string &key) const;
  kvrt::StatusOr<std::vector<std::string>>
  getStringArray(const std::string &key) const;
  kvrt::StatusOr<std::vector<float>>
  getFloatArray(const std::string &key) const;
  kvrt::StatusOr<std::vector<int32_t>>
  getInt32Array(const std::string &key) const;

  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  const TensorInfo *find(const std::string &name) const;
  const uint8_t *data(const TensorInfo &info) const {
    return file_->data() + info.offset;
  }

private:
  kvrt::StatusOr<const GgufValue *> lookup(const std::string &key,
                                           const char *expected) const;

  std::shared_ptr<kvrt::MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_GGUF_GGUFFILE_H
