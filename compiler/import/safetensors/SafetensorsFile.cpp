//===- SafetensorsFile.cpp - Hostile-input-safe safetensors reader --------===//
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "compiler/import/formats/Quote.h"

#include "kvrt/Json.h"

#include <algorithm>
#include <numeric>

using kvrt::Status;
using kvrt::StatusOr;
using kvrt::json::Value;

namespace kvopt::formats {

namespace {

/// The reference implementation's limit on the JSON header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::optional<DType> parseDType(std::string_view name) {
  static const std::pair<std::string_view, DType> names[] = {
      {"F64", DType::F64},   {"F32", DType::F32}, {"F16", DType::F16},
      {"BF16", DType::BF16}, {"I64", DType::I64}, {"I32", DType::I32},
      {"I16", DType::I16},   {"I8", DType::I8},   {"U8", DType::U8},
      {"BOOL", DType::BOOL}};
  for (auto [spelling, type] : names)
    if (name == spelling)
      return type;
  return std::nullopt;
}

std::string range(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

/// A tensor entry of the header, its offsets still relative to the data
/// region.
StatusOr<TensorInfo> parseTensor(const std::string &path,
                                 const std::string &name, const Value &entry,
                                 uint64_t dataSize) {
  std::string where = path + ": tensor " + quote(name);
  if (!entry.isObject())
    return Status::error(where +
                         " must be an object with dtype, shape and "
                         "data_offsets, got " +
                         Value::kindName(entry.kind()));
  const Value *dtype = entry.find("dtype");
  if (!dtype || !dtype->isString())
    return Status::error(where + ": field 'dtype' must be a string");
  TensorInfo info;
  info.name = name;
  std::optional<DType> type = parseDType(dtype->asString());
  if (!type)
    return Status::error(where + ": dtype " + quote(dtype->asString()) +
                         " is not supported (F64, F32, F16, BF16, I64, I32, "
                         "I16, I8, U8 and BOOL are)");
  info.dtype = *type;

  const Value *shape = entry.find("shape");
  if (!shape || !shape->isArray())
    return Status::error(where + ": field 'shape' must be an array of "
                                 "non-negative integers");
  for (size_t i = 0; i < shape->items().size(); ++i) {
    std::optional<int64_t> dim = shape->items()[i].asInt();
    if (!shape->items()[i].isNumber() || !dim || *dim < 0)
      return Status::error(where + ": shape[" + std::to_string(i) +
                           "] must be a non-negative integer");
    info.shape.push_back(*dim);
  }

  const Value *offsets = entry.find("data_offsets");
  if (!offsets || !offsets->isArray() || offsets->items().size() != 2)
    return Status::error(where + ": field 'data_offsets' must be an array "
                                 "[begin, end]");
  uint64_t bounds[2];
  for (int i = 0; i < 2; ++i) {
    const Value &v = offsets->items()[i];
    if (!v.isNumber() || !v.asInt() || *v.asInt() < 0)
      return Status::error(where + ": data_offsets[" + std::to_string(i) +
                           "] must be a non-negative integer");
    bounds[i] = uint64_t(*v.asInt());
  }
  auto [begin, end] = bounds;
  if (begin > end)
    return Status::error(where + ": data_offsets " + range(begin, end) +
                         " begin after they end");
  if (end > dataSize)
    return Status::error(where + ": data_offsets " + range(begin, end) +
                         " extend past the end of the data region (" +
                         std::to_string(dataSize) + " bytes)");

  std::optional<uint64_t> count = elementCount(info.shape);
  if (!count)
    return Status::error(where + ": shape " + shapeString(info.shape) +
                         " has more elements than 64 bits can count");
  std::optional<uint64_t> bytes = dtypeByteSize(info.dtype, *count);
  if (!bytes)
    return Status::error(where + ": shape " + shapeString(info.shape) +
                         " of dtype " + dtypeName(info.dtype) +
                         " needs more bytes than 64 bits can count");
  if (end - begin != *bytes)
    return Status::error(where + ": data_offsets " + range(begin, end) +
                         " hold " + std::to_string(end - begin) +
                         " bytes but shape " + shapeString(info.shape) +
                         " of dtype " + dtypeName(info.dtype) + " needs " +
                         std::to_string(*bytes));
  info.offset = begin;
  info.byteSize = *bytes;
  return info;
}

/// The reference implementation requires the tensors to tile the data
/// region: sorted by offset, each begins where the previous one ends, and
/// the last ends at the end of the file.
Status checkTiling(const std::string &path,
                   const std::vector<TensorInfo> &tensors, uint64_t dataSize) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const TensorInfo &x = tensors[a], &y = tensors[b];
    return x.offset != y.offset ? x.offset < y.offset : x.byteSize < y.byteSize;
  });
  uint64_t expected = 0;
  const TensorInfo *previous = nullptr;
  for (size_t i : order) {
    const TensorInfo &t = tensors[i];
    if (t.offset < expected)
      return Status::error(
          path + ": tensor " + quote(t.name) + ": data_offsets " +
          range(t.offset, t.offset + t.byteSize) + " overlap tensor " +
          quote(previous->name) + " " +
          range(previous->offset, previous->offset + previous->byteSize));
    if (t.offset > expected)
      return Status::error(
          path + ": data region: bytes " + range(expected, t.offset) +
          " belong to no tensor (the next one is " + quote(t.name) + ")");
    expected = t.offset + t.byteSize;
    previous = &t;
  }
  if (expected != dataSize)
    return Status::error(path + ": data region: bytes " +
                         range(expected, dataSize) +
                         " at its end belong to no tensor");
  return Status::ok();
}

} // namespace

StatusOr<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  StatusOr<FileBytes> bytes = FileBytes::map(path);
  if (!bytes)
    return bytes.status();
  return parse(std::move(*bytes));
}

StatusOr<SafetensorsFile>
SafetensorsFile::openBuffer(std::string name,
                            std::shared_ptr<const std::vector<uint8_t>> bytes) {
  return parse(FileBytes::fromBuffer(std::move(name), std::move(bytes)));
}

StatusOr<SafetensorsFile> SafetensorsFile::parse(FileBytes bytes) {
  const std::string path = bytes.name();
  if (bytes.size() < 8)
    return Status::error(path + ": header length: the file is " +
                         std::to_string(bytes.size()) +
                         " bytes, too short for the 8-byte header length");
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | bytes.data()[i];
  if (headerSize > kMaxHeaderBytes)
    return Status::error(path + ": header length " +
                         std::to_string(headerSize) + " exceeds the limit of " +
                         std::to_string(kMaxHeaderBytes) + " bytes");
  if (!bytes.contains(8, headerSize))
    return Status::error(path + ": header length " +
                         std::to_string(headerSize) +
                         " extends past the end of the file (" +
                         std::to_string(bytes.size()) + " bytes)");
  std::string_view text(reinterpret_cast<const char *>(bytes.data()) + 8,
                        headerSize);
  if (!kvrt::json::isValidUtf8(text))
    return Status::error(path + ": header is not valid UTF-8");
  StatusOr<Value> header = kvrt::json::parse(text, path + ": header");
  if (!header)
    return header.status();
  if (!header->isObject())
    return Status::error(path + ": header must be a JSON object, got " +
                         Value::kindName(header->kind()));

  SafetensorsFile file;
  uint64_t dataStart = 8 + headerSize;
  uint64_t dataSize = bytes.size() - dataStart;
  for (const auto &[name, entry] : header->members()) {
    if (name == "__metadata__") {
      if (!entry.isObject())
        return Status::error(path +
                             ": __metadata__ must be an object of "
                             "strings, got " +
                             Value::kindName(entry.kind()));
      for (const auto &[key, value] : entry.members()) {
        if (!value.isString())
          return Status::error(path + ": __metadata__ " + quote(key) +
                               " must be a string, got " +
                               Value::kindName(value.kind()));
        file.metadata_.emplace(key, value.asString());
      }
      continue;
    }
    StatusOr<TensorInfo> info = parseTensor(path, name, entry, dataSize);
    if (!info)
      return info.status();
    // The JSON reader rejects duplicate keys, so names are unique.
    file.index_.emplace(name, file.tensors_.size());
    file.tensors_.push_back(std::move(*info));
  }
  KVRT_RETURN_IF_ERROR(checkTiling(path, file.tensors_, dataSize));
  for (TensorInfo &t : file.tensors_)
    t.offset += dataStart;
  file.bytes_ = std::move(bytes);
  return file;
}

const TensorInfo *SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

} // namespace kvopt::formats
