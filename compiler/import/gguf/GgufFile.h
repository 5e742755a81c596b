//===- GgufFile.h - Hostile-input-safe GGUF reader --------------*- C++ -*-===//
//
// Reads GGUF versions 2 and 3 (ggml's model files): metadata of every value
// type, tensor infos, and the aligned data section. Every count and length
// read from the file is checked against the bytes that remain before
// anything is allocated for it, and all size arithmetic is overflow-checked.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_GGUF_GGUFFILE_H
#define KVOPT_COMPILER_IMPORT_GGUF_GGUFFILE_H

#include "compiler/import/formats/FileBytes.h"
#include "compiler/import/formats/TensorInfo.h"
#include "compiler/import/gguf/GgufValue.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvopt::formats {

/// One validated GGUF file. Tensors of ggml types F32, F16, BF16, Q8_0,
/// Q4_0 and Q4_1 are accepted; their shapes are given slowest dimension
/// first (GGUF lists the fastest first).
class GgufFile {
public:
  /// Maps and validates the file at `path`.
  static kvrt::StatusOr<GgufFile> open(const std::string &path);
  /// Validates a file held in memory; `name` stands for it in messages.
  static kvrt::StatusOr<GgufFile>
  openBuffer(std::string name,
             std::shared_ptr<const std::vector<uint8_t>> bytes);

  /// The path (or buffer name) that messages use.
  const std::string &path() const { return bytes_.name(); }
  uint32_t version() const { return version_; }
  /// `general.alignment`, 32 when absent.
  uint64_t alignment() const { return alignment_; }
  /// Absolute offset of the data section.
  uint64_t dataOffset() const { return dataOffset_; }

  /// Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>> &metadata() const {
    return metadata_;
  }
  bool has(std::string_view key) const { return get(key) != nullptr; }
  /// The value of `key`, or null.
  const GgufValue *get(std::string_view key) const;

  /// Typed metadata getters. A missing key or a value of another type is an
  /// error naming the file, the key, and what was found.
  kvrt::StatusOr<std::string> getString(std::string_view key) const;
  kvrt::StatusOr<bool> getBool(std::string_view key) const;
  /// Any integer type holding a value >= 0.
  kvrt::StatusOr<uint64_t> getUInt(std::string_view key) const;
  /// Any integer type holding a value that fits in int64.
  kvrt::StatusOr<int64_t> getInt(std::string_view key) const;
  /// An integer in [1, 2^31): hyper-parameters are small, and the bound
  /// keeps the product of two of them inside int64.
  kvrt::StatusOr<int64_t> getPositiveInt(std::string_view key) const;
  /// A finite float32, float64 or integer.
  kvrt::StatusOr<double> getFloat(std::string_view key) const;
  kvrt::StatusOr<std::vector<std::string>>
  getStringArray(std::string_view key) const;
  /// An array of float32 or float64.
  kvrt::StatusOr<std::vector<float>> getFloatArray(std::string_view key) const;
  /// An array of any integer type whose values fit in int32.
  kvrt::StatusOr<std::vector<int32_t>>
  getInt32Array(std::string_view key) const;

  /// Tensors in file order.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// The tensor named `name`, or null.
  const TensorInfo *find(std::string_view name) const;
  /// The first byte of `info`'s data (aligned to alignment() within the
  /// file).
  const uint8_t *data(const TensorInfo &info) const {
    return bytes_.data() + info.offset;
  }

private:
  static kvrt::StatusOr<GgufFile> parse(FileBytes bytes);
  /// The value of `key`, or an error saying it is missing.
  kvrt::StatusOr<const GgufValue *> lookup(std::string_view key) const;
  kvrt::Status typeError(std::string_view key, const std::string &expected,
                         const GgufValue &found) const;

  FileBytes bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t dataOffset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> metadataIndex_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensorIndex_;
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_GGUF_GGUFFILE_H
