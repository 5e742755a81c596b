//===- GgufFile.cpp - Hostile-input-safe GGUF reader ----------------------===//
#include "compiler/import/gguf/GgufFile.h"

#include "kvrt/Json.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::formats {

namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;

/// A bounds-checked little-endian cursor over the mapped file.
class Cursor {
public:
  Cursor(const uint8_t *data, uint64_t size, const std::string &path)
      : data(data), size(size), path(path) {}

  uint64_t offset() const { return pos; }
  uint64_t remaining() const { return size - pos; }
  Status error(const std::string &what) const {
    return Status::error(path + ": " + what + " (at byte " +
                         std::to_string(pos) + ")");
  }

  template <typename T> bool read(T &out) {
    if (remaining() < sizeof(T))
      return false;
    std::memcpy(&out, data + pos, sizeof(T));
    pos += sizeof(T);
    return true;
  }

  /// A length-prefixed string; the length is checked before allocating.
  StatusOr<std::string> string(const std::string &field) {
    uint64_t length;
    if (!read(length))
      return error(field + ": truncated string length");
    if (length > remaining())
      return error(field + ": string length " + std::to_string(length) +
                   " exceeds the " + std::to_string(remaining()) +
                   " bytes left in the file");
    std::string s(reinterpret_cast<const char *>(data + pos), length);
    pos += length;
    return s;
  }

private:
  const uint8_t *data;
  uint64_t size;
  const std::string &path;
  uint64_t pos = 0;
};

/// Smallest encoded size of one value of `type`, to bound array counts.
uint64_t minEncodedBytes(GgufValue::Type type) {
  using T = GgufValue::Type;
  switch (type) {
  case T::U8:
  case T::I8:
  case T::Bool:
    return 1;
  case T::U16:
  case T::I16:
    return 2;
  case T::U32:
  case T::I32:
  case T::F32:
    return 4;
  case T::U64:
  case T::I64:
  case T::F64:
  case T::String:
    return 8;
  case T::Array:
    return 12;
  }
  return 1;
}

StatusOr<GgufValue> readValue(Cursor &c, uint32_t rawType,
                              const std::string &key, int depth) {
  using T = GgufValue::Type;
  if (rawType > uint32_t(T::F64))
    return c.error("metadata '" + key + "': unknown value type " +
                   std::to_string(rawType));
  GgufValue v;
  v.type = T(rawType);
  auto scalar = [&](auto tag) -> Status {
    decltype(tag) x;
    if (!c.read(x))
      return c.error("metadata '" + key + "': truncated value");
    if constexpr (std::is_floating_point_v<decltype(tag)>)
      v.f = x;
    else if constexpr (std::is_signed_v<decltype(tag)>)
      v.i = x;
    else
      v.u = x;
    return Status::ok();
  };
  Status s = Status::ok();
  switch (v.type) {
  case T::U8:
    s = scalar(uint8_t());
    break;
  case T::I8:
    s = scalar(int8_t());
    break;
  case T::U16:
    s = scalar(uint16_t());
    break;
  case T::I16:
    s = scalar(int16_t());
    break;
  case T::U32:
    s = scalar(uint32_t());
    break;
  case T::I32:
    s = scalar(int32_t());
    break;
  case T::U64:
    s = scalar(uint64_t());
    break;
  case T::I64:
    s = scalar(int64_t());
    break;
  case T::F32:
    s = scalar(float());
    break;
  case T::F64:
    s = scalar(double());
    break;
  case T::Bool: {
    uint8_t b;
    if (!c.read(b) || b > 1)
      return c.error("metadata '" + key + "': bool must be 0 or 1");
    v.u = b;
    break;
  }
  case T::String: {
    StatusOr<std::string> str = c.string("metadata '" + key + "'");
    if (!str)
      return str.status();
    v.s = std::move(*str);
    break;
  }
  case T::Array: {
    if (depth >= kMaxArrayDepth)
      return c.error("metadata '" + key + "': arrays nested deeper than " +
                     std::to_string(kMaxArrayDepth));
    uint32_t elementType;
    uint64_t count;
    if (!c.read(elementType) || !c.read(count))
      return c.error("metadata '" + key + "': truncated array header");
    if (elementType > uint32_t(T::F64))
      return c.error("metadata '" + key + "': unknown array element type " +
                     std::to_string(elementType));
    v.elementType = T(elementType);
    if (count > c.remaining() / minEncodedBytes(v.elementType))
      return c.error("metadata '" + key + "': array count " +
                     std::to_string(count) + " exceeds what the " +
                     std::to_string(c.remaining()) +
                     " bytes left in the file can hold");
    v.items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      StatusOr<GgufValue> item = readValue(c, elementType, key, depth + 1);
      if (!item)
        return item.status();
      v.items.push_back(std::move(*item));
    }
    break;
  }
  }
  if (!s)
    return s;
  return v;
}

std::optional<DType> ggmlType(uint32_t id) {
  switch (id) {
  case 0:
    return DType::F32;
  case 1:
    return DType::F16;
  case 2:
    return DType::Q4_0;
  case 3:
    return DType::Q4_1;
  case 8:
    return DType::Q8_0;
  case 30:
    return DType::BF16;
  default:
    return std::nullopt;
  }
}

bool isInteger(GgufValue::Type t) {
  using T = GgufValue::Type;
  return t == T::U8 || t == T::I8 || t == T::U16 || t == T::I16 ||
         t == T::U32 || t == T::I32 || t == T::U64 || t == T::I64;
}
bool isSigned(GgufValue::Type t) {
  using T = GgufValue::Type;
  return t == T::I8 || t == T::I16 || t == T::I32 || t == T::I64;
}

} // namespace

StatusOr<GgufFile> GgufFile::open(const std::string &path) {
  auto mapped = kvrt::MappedFile::open(path);
  if (!mapped)
    return mapped.status();
  GgufFile g;
  g.file_ = *mapped;
  Cursor c(g.file_->data(), g.file_->size(), path);
  char magic[4];
  if (!c.read(magic) || std::memcmp(magic, "GGUF", 4) != 0)
    return Status::error(path + ": not a GGUF file (magic is not 'GGUF')");
  if (!c.read(g.version_))
    return c.error("truncated version");
  if (g.version_ != 2 && g.version_ != 3)
    return Status::error(path + ": GGUF version " + std::to_string(g.version_) +
                         " is not supported (kvopt reads versions 2 and 3)");
  uint64_t tensorCount, kvCount;
  if (!c.read(tensorCount) || !c.read(kvCount))
    return c.error("truncated header counts");
  // A key-value pair needs at least 12 bytes, a tensor info 24.
  if (kvCount > c.remaining() / 12 || tensorCount > c.remaining() / 24)
    return c.error("header counts (" + std::to_string(kvCount) + " metadata, " +
                   std::to_string(tensorCount) +
                   " tensors) exceed what the file can hold");
  for (uint64_t k = 0; k < kvCount; ++k) {
    StatusOr<std::string> key = c.string("metadata key");
    if (!key)
      return key.status();
    if (!kvrt::json::isValidUtf8(*key))
      return c.error("metadata key is not valid UTF-8");
    uint32_t type;
    if (!c.read(type))
      return c.error("metadata '" + *key + "': truncated type");
    StatusOr<GgufValue> value = readValue(c, type, *key, 0);
    if (!value)
      return value.status();
    if (!g.metadata_.emplace(*key, std::move(*value)).second)
      return c.error("metadata key '" + *key + "' appears twice");
  }

  uint64_t alignment = 32;
  if (auto it = g.metadata_.find("general.alignment");
      it != g.metadata_.end()) {
    if (!isInteger(it->second.type) || isSigned(it->second.type))
      return Status::error(path + ": metadata 'general.alignment' must be an "
                                  "unsigned integer");
    alignment = it->second.u;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
      return Status::error(path + ": metadata 'general.alignment' is " +
                           std::to_string(alignment) +
                           "; it must be a non-zero power of two");
  }

  struct Pending {
    TensorInfo info;
    uint64_t relative;
  };
  std::vector<Pending> pending;
  for (uint64_t t = 0; t < tensorCount; ++t) {
    StatusOr<std::string> name = c.string("tensor name");
    if (!name)
      return name.status();
    if (!kvrt::json::isValidUtf8(*name))
      return c.error("tensor name is not valid UTF-8");
    uint32_t dims;
    if (!c.read(dims) || dims == 0 || dims > kMaxDims)
      return c.error("tensor '" + *name + "': dimension count must be 1 to " +
                     std::to_string(kMaxDims));
    Pending p;
    p.info.name = *name;
    p.info.shape.resize(dims);
    for (uint32_t d = 0; d < dims; ++d) {
      uint64_t extent;
      if (!c.read(extent) || extent > (uint64_t(1) << 40))
        return c.error("tensor '" + *name +
                       "': dimension is truncated or "
                       "larger than 2^40");
      // GGUF lists the fastest-varying dimension first.
      p.info.shape[dims - 1 - d] = int64_t(extent);
    }
    uint32_t type;
    if (!c.read(type) || !c.read(p.relative))
      return c.error("tensor '" + *name + "': truncated type or offset");
    std::optional<DType> dtype = ggmlType(type);
    if (!dtype)
      return Status::error(path + ": tensor '" + *name + "': ggml type " +
                           std::to_string(type) +
                           " is not supported (F32, F16, BF16, Q8_0, Q4_0, "
                           "Q4_1 are)");
    p.info.dtype = *dtype;
    std::optional<uint64_t> count =
        elementCount(p.info.shape.data(), p.info.shape.size());
    std::optional<uint64_t> bytes =
        count ? dtypeByteSize(*dtype, *count) : std::nullopt;
    if (!bytes)
      return Status::error(path + ": tensor '" + *name +
                           "': size overflows or is not a whole number of "
                           "blocks");
    p.info.byteSize = *bytes;
    if (p.relative % alignment != 0)
      return Status::error(path + ": tensor '" + *name + "': offset " +
                           std::to_string(p.relative) +
                           " is not a multiple of the alignment " +
                           std::to_string(alignment));
    pending.push_back(std::move(p));
  }

  uint64_t dataStart = c.offset();
  dataStart += (alignment - dataStart % alignment) % alignment;
  for (Pending &p : pending) {
    uint64_t absolute;
    if (__builtin_add_overflow(dataStart, p.relative, &absolute) ||
        !g.file_->contains(absolute, p.info.byteSize))
      return Status::error(path + ": tensor '" + p.info.name + "': data [" +
                           std::to_string(p.relative) + ", +" +
                           std::to_string(p.info.byteSize) +
                           ") extends past the end of the file (" +
                           std::to_string(g.file_->size()) + " bytes)");
    p.info.offset = absolute;
    if (!g.index_.emplace(p.info.name, g.tensors_.size()).second)
      return Status::error(path + ": tensor '" + p.info.name +
                           "' appears twice");
    g.tensors_.push_back(std::move(p.info));
  }
  std::vector<const TensorInfo *> order;
  for (const TensorInfo &t : g.tensors_)
    order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](auto *a, auto *b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i - 1]->offset + order[i - 1]->byteSize > order[i]->offset)
      return Status::error(path + ": tensor '" + order[i]->name +
                           "' overlaps tensor '" + order[i - 1]->name + "'");
  return g;
}

const TensorInfo *GgufFile::find(const std::string &name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

StatusOr<const GgufValue *> GgufFile::lookup(const std::string &key,
                                             const char *expected) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end())
    return Status::error(path() + ": metadata '" + key + "' (" + expected +
                         ") is missing");
  return &it->second;
}

#define LOOKUP(var, key, expected)                                             \
  StatusOr<const GgufValue *> var##OrError = lookup(key, expected);            \
  if (!var##OrError)                                                           \
    return var##OrError.status();                                              \
  const GgufValue &var = **var##OrError;

static Status typeError(const std::string &path, const std::string &key,
                        const char *expected) {
  return Status::error(path + ": metadata '" + key + "' must be " + expected);
}

StatusOr<std::string> GgufFile::getString(const std::string &key) const {
  LOOKUP(v, key, "a string");
  if (v.type != GgufValue::Type::String)
    return typeError(path(), key, "a string");
  return v.s;
}

StatusOr<int64_t> GgufFile::getInt(const std::string &key) const {
  LOOKUP(v, key, "an integer");
  if (!isInteger(v.type) || (!isSigned(v.type) && v.u > uint64_t(INT64_MAX)))
    return typeError(path(), key, "an integer");
  return isSigned(v.type) ? v.i : int64_t(v.u);
}

StatusOr<int64_t> GgufFile::getPositiveInt(const std::string &key) const {
  StatusOr<int64_t> v = getInt(key);
  if (v && (*v <= 0 || *v > (int64_t(1) << 40)))
    return typeError(path(), key, "a positive integer");
  return v;
}

StatusOr<double> GgufFile::getFloat(const std::string &key) const {
  LOOKUP(v, key, "a number");
  double x;
  if (v.type == GgufValue::Type::F32 || v.type == GgufValue::Type::F64)
    x = v.f;
  else if (isInteger(v.type))
    x = isSigned(v.type) ? double(v.i) : double(v.u);
  else
    return typeError(path(), key, "a number");
  if (!std::isfinite(x))
    return typeError(path(), key, "a finite number");
  return x;
}

StatusOr<bool> GgufFile::getBool(const std::string &key) const {
  LOOKUP(v, key, "a bool");
  if (v.type != GgufValue::Type::Bool)
    return typeError(path(), key, "a bool");
  return v.u != 0;
}

StatusOr<std::vector<std::string>>
GgufFile::getStringArray(const std::string &key) const {
  LOOKUP(v, key, "an array of strings");
  if (v.type != GgufValue::Type::Array ||
      v.elementType != GgufValue::Type::String)
    return typeError(path(), key, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v.items.size());
  for (const GgufValue &item : v.items)
    out.push_back(item.s);
  return out;
}

StatusOr<std::vector<float>>
GgufFile::getFloatArray(const std::string &key) const {
  LOOKUP(v, key, "an array of float32");
  if (v.type != GgufValue::Type::Array || v.elementType != GgufValue::Type::F32)
    return typeError(path(), key, "an array of float32");
  std::vector<float> out;
  out.reserve(v.items.size());
  for (const GgufValue &item : v.items)
    out.push_back(float(item.f));
  return out;
}

StatusOr<std::vector<int32_t>>
GgufFile::getInt32Array(const std::string &key) const {
  LOOKUP(v, key, "an array of int32");
  if (v.type != GgufValue::Type::Array || v.elementType != GgufValue::Type::I32)
    return typeError(path(), key, "an array of int32");
  std::vector<int32_t> out;
  out.reserve(v.items.size());
  for (const GgufValue &item : v.items)
    out.push_back(int32_t(item.i));
  return out;
}

} // namespace kvopt::formats
