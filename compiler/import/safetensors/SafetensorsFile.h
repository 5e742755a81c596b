//===- SafetensorsFile.h - Hostile-input-safe safetensors -------*- C++ -*-===//
//
// Validates a .safetensors file as the reference implementation does
// (huggingface/safetensors): an 8-byte little-endian header length of at
// most 100 MB, a UTF-8 JSON header, and tensors whose byte ranges match
// their shape and dtype and tile the data region exactly.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_SAFETENSORS_SAFETENSORSFILE_H
#define KVOPT_COMPILER_IMPORT_SAFETENSORS_SAFETENSORSFILE_H

#include "compiler/import/formats/FileBytes.h"
#include "compiler/import/formats/TensorInfo.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvopt::formats {

/// One validated .safetensors file.
class SafetensorsFile {
public:
  /// Maps and validates the file at `path`.
  static kvrt::StatusOr<SafetensorsFile> open(const std::string &path);
  /// Validates a file held in memory; `name` stands for it in messages.
  static kvrt::StatusOr<SafetensorsFile>
  openBuffer(std::string name,
             std::shared_ptr<const std::vector<uint8_t>> bytes);

  /// The path (or buffer name) that messages use.
  const std::string &path() const { return bytes_.name(); }
  /// Tensors in header order.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// The tensor named `name`, or null.
  const TensorInfo *find(std::string_view name) const;
  /// The first byte of `info`'s data (not aligned in general).
  const uint8_t *data(const TensorInfo &info) const {
    return bytes_.data() + info.offset;
  }
  /// The header's "__metadata__" strings.
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  /// The mapping that keeps the data alive; null for a buffer.
  const std::shared_ptr<kvrt::MappedFile> &file() const {
    return bytes_.mapped();
  }

private:
  static kvrt::StatusOr<SafetensorsFile> parse(FileBytes bytes);

  FileBytes bytes_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

/// The safetensors weights of a Hugging Face folder: `model.safetensors`,
/// or the shards that `model.safetensors.index.json` names in its
/// weight_map (plain file names: they must stay inside the folder).
class SafetensorsModel {
public:
  static kvrt::StatusOr<SafetensorsModel> open(const std::string &folder);

  /// A tensor and the shard holding it.
  struct Found {
    const SafetensorsFile *file;
    const TensorInfo *info;
  };
  /// The tensor named `name` in whichever shard holds it.
  std::optional<Found> find(std::string_view name) const;
  /// Every tensor: shards in the order the index first names them, each
  /// shard's tensors in header order.
  const std::vector<Found> &tensors() const { return tensors_; }
  const std::string &folder() const { return folder_; }

private:
  std::string folder_;
  /// Heap-allocated so that `Found` pointers survive moves of the model.
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<Found> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_SAFETENSORS_SAFETENSORSFILE_H
