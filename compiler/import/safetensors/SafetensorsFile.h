//===- SafetensorsFile.h - Hostile-input-safe safetensors reader -*- C++
//-*-===//
#ifndef KVOPT_COMPILER_IMPORT_SAFETENSORS_SAFETENSORSFILE_H
#define KVOPT_COMPILER_IMPORT_SAFETENSORS_SAFETENSORSFILE_H

#include "compiler/import/formats/TensorInfo.h"
#include "kvrt/MappedFile.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvopt::formats {

/// One mapped .safetensors file, validated as the reference implementation
/// does: a bounded JSON header, tensors whose byte ranges match their shape
/// and dtype, lie inside the data region, do not overlap and cover it.
class SafetensorsFile {
public:
  static kvrt::StatusOr<SafetensorsFile> open(const std::string &path);

  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  const TensorInfo *find(std::string_view name) const;
  const uint8_t *data(const TensorInfo &info) const {
    return file_->data() + info.offset;
  }
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  const std::shared_ptr<kvrt::MappedFile> &file() const { return file_; }

private:
  std::shared_ptr<kvrt::MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

/// The safetensors weights of a Hugging Face folder: model.safetensors, or
/// the shards model.safetensors.index.json names (which must stay inside
/// the folder).
class SafetensorsModel {
public:
  static kvrt::StatusOr<SafetensorsModel> open(const std::string &folder);

  struct Found {
    const SafetensorsFile *file;
    const TensorInfo *info;
  };
  std::optional<Found> find(const std::string &name) const;
  const std::string &folder() const { return folder_; }
  size_t tensorCount() const { return where_.size(); }

private:
  std::string folder_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile *> where_;
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_SAFETENSORS_SAFETENSORSFILE_H
