//===- SafetensorsFile.cpp - Hostile-input-safe safetensors reader --------===//
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "kvrt/Json.h"

#include <algorithm>
#include <cstring>
#include <sys/stat.h>

using kvrt::Status;
using kvrt::StatusOr;
using kvrt::json::Value;

namespace kvopt::formats {

namespace {
/// The reference implementation's cap on the header.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

std::optional<DType> parseDType(const std::string &s) {
  static const std::pair<const char *, DType> names[] = {
      {"F32", DType::F32},  {"F16", DType::F16}, {"BF16", DType::BF16},
      {"F64", DType::F64},  {"I8", DType::I8},   {"I16", DType::I16},
      {"I32", DType::I32},  {"I64", DType::I64}, {"U8", DType::U8},
      {"BOOL", DType::Bool}};
  for (auto [name, type] : names)
    if (s == name)
      return type;
  return std::nullopt;
}

Status tensorError(const std::string &path, const std::string &name,
                   const std::string &what) {
  return Status::error(path + ": tensor '" + name + "': " + what);
}

StatusOr<TensorInfo> parseTensor(const std::string &path,
                                 const std::string &name, const Value &entry,
                                 uint64_t dataStart, uint64_t dataSize) {
  if (!entry.isObject())
    return tensorError(path, name, "entry must be an object");
  const Value *dtype = entry.find("dtype");
  const Value *shape = entry.find("shape");
  const Value *offsets = entry.find("data_offsets");
  if (!dtype || !dtype->isString())
    return tensorError(path, name, "field 'dtype' is missing or not a string");
  if (!shape || !shape->isArray() || shape->items().size() > 8)
    return tensorError(path, name,
                       "field 'shape' must be a list of at most 8 dimensions");
  if (!offsets || !offsets->isArray() || offsets->items().size() != 2)
    return tensorError(path, name,
                       "field 'data_offsets' must be a [begin, end] pair");
  TensorInfo info;
  info.name = name;
  std::optional<DType> type = parseDType(dtype->asString());
  if (!type)
    return tensorError(path, name,
                       "dtype '" + dtype->asString() + "' is not supported");
  info.dtype = *type;
  for (const Value &d : shape->items()) {
    if (!d.isNumber() || !d.asInt() || *d.asInt() < 0)
      return tensorError(path, name,
                         "field 'shape' must hold non-negative integers");
    info.shape.push_back(*d.asInt());
  }
  std::optional<uint64_t> count =
      elementCount(info.shape.data(), info.shape.size());
  std::optional<uint64_t> bytes =
      count ? dtypeByteSize(info.dtype, *count) : std::nullopt;
  if (!bytes)
    return tensorError(path, name, "the shape's byte size overflows");
  const Value &b = offsets->items()[0], &e = offsets->items()[1];
  if (!b.isNumber() || !e.isNumber() || !b.asInt() || !e.asInt() ||
      *b.asInt() < 0 || *e.asInt() < *b.asInt())
    return tensorError(path, name,
                       "field 'data_offsets' must be integers with "
                       "0 <= begin <= end");
  uint64_t begin = *b.asInt(), end = *e.asInt();
  if (end > dataSize)
    return tensorError(path, name,
                       "data [" + std::to_string(begin) + ", " +
                           std::to_string(end) + ") extends past the data (" +
                           std::to_string(dataSize) + " bytes)");
  if (end - begin != *bytes)
    return tensorError(path, name,
                       "data_offsets span " + std::to_string(end - begin) +
                           " bytes but shape and dtype need " +
                           std::to_string(*bytes));
  info.offset = dataStart + begin;
  info.byteSize = *bytes;
  return info;
}
} // namespace

StatusOr<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  auto mapped = kvrt::MappedFile::open(path);
  if (!mapped)
    return mapped.status();
  SafetensorsFile f;
  f.file_ = *mapped;
  const kvrt::MappedFile &m = *f.file_;
  if (m.size() < 8)
    return Status::error(path + ": file is too short for a safetensors "
                                "header length (8 bytes)");
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; --i)
    headerBytes = (headerBytes << 8) | m.data()[i];
  if (headerBytes > kMaxHeaderBytes || !m.contains(8, headerBytes))
    return Status::error(path + ": header length " +
                         std::to_string(headerBytes) +
                         " exceeds the file size (" + std::to_string(m.size()) +
                         " bytes) or the 100 MB limit");
  StatusOr<Value> header = kvrt::json::parse(
      std::string_view(reinterpret_cast<const char *>(m.data()) + 8,
                       headerBytes),
      path + " header");
  if (!header)
    return header.status();
  if (!header->isObject())
    return Status::error(path + ": the header must be a JSON object");
  uint64_t dataStart = 8 + headerBytes, dataSize = m.size() - dataStart;
  for (const auto &[name, entry] : header->members()) {
    if (name == "__metadata__") {
      if (!entry.isObject())
        return Status::error(path + ": '__metadata__' must be an object");
      for (const auto &[key, value] : entry.members()) {
        if (!value.isString())
          return Status::error(path + ": metadata '" + key +
                               "' must be a string");
        f.metadata_[key] = value.asString();
      }
      continue;
    }
    StatusOr<TensorInfo> info =
        parseTensor(path, name, entry, dataStart, dataSize);
    if (!info)
      return info.status();
    f.index_[name] = f.tensors_.size();
    f.tensors_.push_back(std::move(*info));
  }
  // The tensors must tile the data region exactly: no overlap, no gap.
  std::vector<const TensorInfo *> order;
  for (const TensorInfo &t : f.tensors_)
    order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto *a, auto *b) {
    return a->offset != b->offset ? a->offset < b->offset
                                  : a->byteSize < b->byteSize;
  });
  uint64_t expected = dataStart;
  for (const TensorInfo *t : order) {
    if (t->offset != expected)
      return tensorError(path, t->name,
                         t->offset < expected
                             ? "data overlaps the previous tensor"
                             : "data leaves a gap after the previous tensor");
    expected += t->byteSize;
  }
  if (expected != m.size())
    return Status::error(path + ": " + std::to_string(m.size() - expected) +
                         " bytes after the last tensor belong to none");
  return f;
}

const TensorInfo *SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

StatusOr<SafetensorsModel> SafetensorsModel::open(const std::string &folder) {
  SafetensorsModel model;
  model.folder_ = folder;
  std::vector<std::string> shards;
  std::string indexPath = folder + "/model.safetensors.index.json";
  struct stat st;
  if (::stat(indexPath.c_str(), &st) == 0) {
    auto mapped = kvrt::MappedFile::open(indexPath);
    if (!mapped)
      return mapped.status();
    StatusOr<Value> index = kvrt::json::parse(
        std::string_view(reinterpret_cast<const char *>((*mapped)->data()),
                         (*mapped)->size()),
        indexPath);
    if (!index)
      return index.status();
    const Value *map = index->find("weight_map");
    if (!map || !map->isObject())
      return Status::error(indexPath + ": field 'weight_map' is missing or "
                                       "not an object");
    for (const auto &[tensor, shard] : map->members()) {
      if (!shard.isString())
        return Status::error(indexPath + ": weight_map entry '" + tensor +
                             "' must name a file");
      const std::string &s = shard.asString();
      // Shards must stay inside the model folder.
      if (s.empty() || s.find('/') != std::string::npos ||
          s.find('\\') != std::string::npos || s == "." || s == "..")
        return Status::error(indexPath + ": weight_map entry '" + tensor +
                             "' names '" + s +
                             "', which is not a file in the model folder");
      if (std::find(shards.begin(), shards.end(), s) == shards.end())
        shards.push_back(s);
    }
  } else {
    shards.push_back("model.safetensors");
  }
  for (const std::string &shard : shards) {
    StatusOr<SafetensorsFile> file =
        SafetensorsFile::open(folder + "/" + shard);
    if (!file)
      return file.status();
    model.files_.push_back(std::make_unique<SafetensorsFile>(std::move(*file)));
    const SafetensorsFile *f = model.files_.back().get();
    for (const TensorInfo &t : f->tensors())
      if (!model.where_.emplace(t.name, f).second)
        return Status::error(folder + "/" + shard + ": tensor '" + t.name +
                             "' also appears in another shard");
  }
  return model;
}

std::optional<SafetensorsModel::Found>
SafetensorsModel::find(const std::string &name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    return std::nullopt;
  return Found{it->second, it->second->find(name)};
}

} // namespace kvopt::formats
