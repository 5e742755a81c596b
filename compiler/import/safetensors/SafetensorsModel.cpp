//===- SafetensorsModel.cpp - The safetensors shards of a folder ----------===//
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "compiler/import/formats/Quote.h"

#include "kvrt/Json.h"

#include <algorithm>
#include <sys/stat.h>

using kvrt::Status;
using kvrt::StatusOr;
using kvrt::json::Value;

namespace kvopt::formats {

namespace {

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

/// A shard must be a plain file name, so that a hostile index cannot make
/// the reader open files outside the model folder.
bool isPlainFileName(const std::string &name) {
  return !name.empty() && name.find('/') == std::string::npos &&
         name.find("..") == std::string::npos &&
         name.find('\0') == std::string::npos;
}

/// Reads `weight_map` of the index: the shards in the order first named,
/// and which shard each tensor is said to be in.
Status readIndex(const std::string &indexPath, std::vector<std::string> &shards,
                 std::vector<std::pair<std::string, std::string>> &placement) {
  StatusOr<FileBytes> bytes = FileBytes::map(indexPath);
  if (!bytes)
    return bytes.status();
  StatusOr<Value> index = kvrt::json::parse(
      std::string_view(reinterpret_cast<const char *>(bytes->data()),
                       bytes->size()),
      indexPath);
  if (!index)
    return index.status();
  const Value *map = index->find("weight_map");
  if (!map || !map->isObject())
    return Status::error(indexPath + ": field 'weight_map' must be an object "
                                     "mapping tensor names to shard files");
  if (map->members().empty())
    return Status::error(indexPath + ": weight_map names no tensors");
  for (const auto &[tensor, shard] : map->members()) {
    if (!shard.isString())
      return Status::error(indexPath + ": weight_map[" + quote(tensor) +
                           "] must be a file name, got " +
                           Value::kindName(shard.kind()));
    const std::string &name = shard.asString();
    if (!isPlainFileName(name))
      return Status::error(indexPath + ": weight_map[" + quote(tensor) +
                           "] names " + quote(name) +
                           ", which is not a plain file name inside the "
                           "model folder");
    if (std::find(shards.begin(), shards.end(), name) == shards.end())
      shards.push_back(name);
    placement.emplace_back(tensor, name);
  }
  return Status::ok();
}

} // namespace

StatusOr<SafetensorsModel> SafetensorsModel::open(const std::string &folder) {
  std::string indexPath = folder + "/model.safetensors.index.json";
  std::vector<std::string> shardNames;
  std::vector<std::pair<std::string, std::string>> placement;
  if (exists(indexPath))
    KVRT_RETURN_IF_ERROR(readIndex(indexPath, shardNames, placement));
  else if (exists(folder + "/model.safetensors"))
    shardNames.push_back("model.safetensors");
  else
    return Status::error(folder + ": no model.safetensors or "
                                  "model.safetensors.index.json in the folder");

  SafetensorsModel model;
  model.folder_ = folder;
  for (const std::string &shardName : shardNames) {
    if (!exists(folder + "/" + shardName))
      return Status::error(indexPath + ": weight_map names shard " +
                           quote(shardName) + ", which is not in the folder");
    StatusOr<SafetensorsFile> shard =
        SafetensorsFile::open(folder + "/" + shardName);
    if (!shard)
      return shard.status();
    model.shards_.push_back(
        std::make_unique<SafetensorsFile>(std::move(*shard)));
    const SafetensorsFile *file = model.shards_.back().get();
    for (const TensorInfo &info : file->tensors()) {
      auto [it, inserted] =
          model.index_.emplace(info.name, model.tensors_.size());
      if (!inserted)
        return Status::error(file->path() + ": tensor " + quote(info.name) +
                             " is also in " +
                             model.tensors_[it->second].file->path());
      model.tensors_.push_back({file, &info});
    }
  }
  for (const auto &[tensor, shardName] : placement) {
    std::optional<Found> found = model.find(tensor);
    if (!found || found->file->path() != folder + "/" + shardName)
      return Status::error(indexPath + ": weight_map puts tensor " +
                           quote(tensor) + " in " + quote(shardName) +
                           ", which does not hold it");
  }
  return model;
}

std::optional<SafetensorsModel::Found>
SafetensorsModel::find(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    return std::nullopt;
  return tensors_[it->second];
}

} // namespace kvopt::formats
