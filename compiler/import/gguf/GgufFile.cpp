//===- GgufFile.cpp - Hostile-input-safe GGUF reader ----------------------===//
//
// Layout (all little-endian): "GGUF", u32 version, u64 tensor count, u64
// metadata count; metadata as (string key, u32 type, value); tensor infos as
// (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); the
// data section at the next multiple of the alignment. Strings are a u64
// length and that many bytes; arrays a u32 element type, a u64 count and
// the elements.
//
//===----------------------------------------------------------------------===//
#include "compiler/import/gguf/GgufFile.h"

#include "compiler/import/formats/Quote.h"

#include "kvrt/Json.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the GGUF reader copies little-endian values as they are");

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::formats {

namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;
/// The smallest metadata pair (empty key, u8 value) and tensor info (empty
/// name, no dimensions): they bound the counts in the header.
constexpr uint64_t kMinPairBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

/// Thrown inside the parser only; parse() turns it into a Status.
struct FormatError {
  std::string message;
};

/// A bounds-checked cursor. Errors name the file and the current field.
class Reader {
public:
  explicit Reader(const FileBytes &bytes) : bytes(bytes) {}

  void setField(std::string name) { field = std::move(name); }
  uint64_t offset() const { return pos; }
  uint64_t remaining() const { return bytes.size() - pos; }

  [[noreturn]] void fail(const std::string &what) const {
    throw FormatError{bytes.name() + ": " + field + ": " + what};
  }

  /// `what` at the current position extends past the end: names it.
  [[noreturn]] void failPastEnd(const std::string &what, uint64_t at) const {
    fail(what + " at byte " + std::to_string(at) +
         " extends past the end of the file (" + std::to_string(bytes.size()) +
         " bytes)");
  }

  template <typename T> T read(const char *what) {
    if (remaining() < sizeof(T))
      failPastEnd(what, pos);
    T value;
    std::memcpy(&value, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return value;
  }

  std::vector<uint8_t> readBytes(uint64_t n, const char *what) {
    if (n > remaining())
      failPastEnd(what, pos);
    std::vector<uint8_t> out(bytes.data() + pos, bytes.data() + pos + n);
    pos += n;
    return out;
  }

  std::string readString(const std::string &what) {
    uint64_t at = pos;
    uint64_t length = read<uint64_t>((what + " length").c_str());
    if (length > remaining())
      failPastEnd(what + " of " + std::to_string(length) + " bytes", at);
    std::string s(reinterpret_cast<const char *>(bytes.data() + pos), length);
    pos += length;
    return s;
  }

private:
  const FileBytes &bytes;
  std::string field = "header";
  uint64_t pos = 0;
};

/// The fewest bytes one value of `type` takes in the file.
uint64_t minEncodedBytes(GgufType type) {
  if (uint64_t bytes = ggufScalarBytes(type))
    return bytes;
  return type == GgufType::String ? 8 : 4 + 8;
}

GgufType readType(Reader &r, const char *what) {
  uint64_t at = r.offset();
  uint32_t id = r.read<uint32_t>(what);
  if (id >= kGgufTypeCount)
    r.fail(std::string(what) + " " + std::to_string(id) + " at byte " +
           std::to_string(at) + " is not a GGUF value type");
  return GgufType(id);
}

uint8_t readBool(Reader &r) {
  uint64_t at = r.offset();
  uint8_t b = r.read<uint8_t>("bool");
  if (b > 1)
    r.fail("bool at byte " + std::to_string(at) + " is " + std::to_string(b) +
           ", not 0 or 1");
  return b;
}

GgufValue readValue(Reader &r, GgufType type, int depth);

GgufValue readArray(Reader &r, int depth) {
  if (depth >= kMaxArrayDepth)
    r.fail("arrays are nested more than " + std::to_string(kMaxArrayDepth) +
           " deep");
  GgufType element = readType(r, "array element type");
  uint64_t at = r.offset();
  uint64_t count = r.read<uint64_t>("array count");
  if (count > r.remaining() / minEncodedBytes(element))
    r.fail("array of " + std::to_string(count) + " " + ggufTypeName(element) +
           " at byte " + std::to_string(at) + " cannot fit in the " +
           std::to_string(r.remaining()) + " bytes left in the file");
  if (uint64_t size = ggufScalarBytes(element)) {
    uint64_t start = r.offset();
    std::vector<uint8_t> bytes = r.readBytes(count * size, "array");
    if (element == GgufType::Bool)
      for (uint64_t i = 0; i < count; ++i)
        if (bytes[i] > 1)
          r.fail("bool at byte " + std::to_string(start + i) + " is " +
                 std::to_string(bytes[i]) + ", not 0 or 1");
    return GgufValue::makeScalarArray(element, std::move(bytes));
  }
  if (element == GgufType::String) {
    std::vector<std::string> items;
    items.reserve(count);
    for (uint64_t i = 0; i < count; ++i)
      items.push_back(r.readString("string"));
    return GgufValue::makeStringArray(std::move(items));
  }
  std::vector<GgufValue> items;
  items.reserve(count);
  for (uint64_t i = 0; i < count; ++i)
    items.push_back(readValue(r, GgufType::Array, depth + 1));
  return GgufValue::makeArrayArray(std::move(items));
}

GgufValue readValue(Reader &r, GgufType type, int depth) {
  switch (type) {
  case GgufType::UInt8:
    return GgufValue::makeUInt(type, r.read<uint8_t>("uint8"));
  case GgufType::Int8:
    return GgufValue::makeInt(type, r.read<int8_t>("int8"));
  case GgufType::UInt16:
    return GgufValue::makeUInt(type, r.read<uint16_t>("uint16"));
  case GgufType::Int16:
    return GgufValue::makeInt(type, r.read<int16_t>("int16"));
  case GgufType::UInt32:
    return GgufValue::makeUInt(type, r.read<uint32_t>("uint32"));
  case GgufType::Int32:
    return GgufValue::makeInt(type, r.read<int32_t>("int32"));
  case GgufType::UInt64:
    return GgufValue::makeUInt(type, r.read<uint64_t>("uint64"));
  case GgufType::Int64:
    return GgufValue::makeInt(type, r.read<int64_t>("int64"));
  case GgufType::Float32:
    return GgufValue::makeFloat(type, r.read<float>("float32"));
  case GgufType::Float64:
    return GgufValue::makeFloat(type, r.read<double>("float64"));
  case GgufType::Bool:
    return GgufValue::makeBool(readBool(r) != 0);
  case GgufType::String:
    return GgufValue::makeString(r.readString("string"));
  case GgufType::Array:
    return readArray(r, depth);
  }
  r.fail("value type " + std::to_string(uint32_t(type)) +
         " is not a GGUF value type");
}

/// The element types kvopt reads, by ggml type id.
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

std::string range(uint64_t begin, uint64_t size) {
  uint64_t end;
  if (__builtin_add_overflow(begin, size, &end))
    return "of " + std::to_string(size) + " bytes at " + std::to_string(begin);
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

void readHeader(Reader &r, const FileBytes &bytes, uint32_t &version) {
  if (bytes.size() < 4)
    r.fail("the file is " + std::to_string(bytes.size()) +
           " bytes, too short for the GGUF magic");
  if (std::memcmp(bytes.data(), "GGUF", 4) != 0) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", bytes.data()[0],
                  bytes.data()[1], bytes.data()[2], bytes.data()[3]);
    r.fail(std::string("magic bytes are ") + hex + ", not 'GGUF'");
  }
  r.read<uint32_t>("magic");
  version = r.read<uint32_t>("version");
  if (version == 2 || version == 3)
    return;
  uint32_t swapped = __builtin_bswap32(version);
  if (swapped == 2 || swapped == 3)
    r.fail("version reads " + std::to_string(version) +
           ": big-endian GGUF files are not supported");
  r.fail("version " + std::to_string(version) +
         " is not supported (kvopt reads GGUF versions 2 and 3)");
}

/// Reads one tensor info; `offset` is still relative to the data section.
TensorInfo readTensorInfo(Reader &r, uint64_t alignment) {
  TensorInfo info;
  info.name = r.readString("name");
  if (!kvrt::json::isValidUtf8(info.name))
    r.fail("name is not valid UTF-8");
  r.setField("tensor " + quote(info.name));
  uint32_t dims = r.read<uint32_t>("dimension count");
  if (dims > kMaxDims)
    r.fail("has " + std::to_string(dims) + " dimensions; GGUF allows at most " +
           std::to_string(kMaxDims));
  info.shape.resize(dims);
  for (uint32_t d = 0; d < dims; ++d) {
    uint64_t extent = r.read<uint64_t>("dimension");
    if (extent > uint64_t(std::numeric_limits<int64_t>::max()))
      r.fail("dimension " + std::to_string(d) + " is " +
             std::to_string(extent) + ", more than int64 can hold");
    // GGUF lists the fastest-varying dimension (ne[0]) first.
    info.shape[dims - 1 - d] = int64_t(extent);
  }
  uint32_t typeId = r.read<uint32_t>("ggml type");
  std::optional<DType> dtype = ggmlType(typeId);
  if (!dtype)
    r.fail("ggml type " + std::to_string(typeId) +
           " is not supported (kvopt reads F32, F16, BF16, Q8_0, Q4_0 and "
           "Q4_1)");
  info.dtype = *dtype;
  info.offset = r.read<uint64_t>("data offset");

  std::optional<uint64_t> count = elementCount(info.shape);
  if (!count)
    r.fail("shape " + shapeString(info.shape) +
           " has more elements than 64 bits can count");
  uint64_t rowLength = dims ? uint64_t(info.shape.back()) : 1;
  if (rowLength % dtypeBlockElements(info.dtype) != 0)
    r.fail("rows of " + std::to_string(rowLength) + " elements are not whole " +
           dtypeName(info.dtype) + " blocks of " +
           std::to_string(dtypeBlockElements(info.dtype)));
  std::optional<uint64_t> bytes = dtypeByteSize(info.dtype, *count);
  if (!bytes)
    r.fail("shape " + shapeString(info.shape) + " of type " +
           dtypeName(info.dtype) + " needs more bytes than 64 bits can count");
  info.byteSize = *bytes;
  if (info.offset % alignment != 0)
    r.fail("data offset " + std::to_string(info.offset) +
           " is not a multiple of the alignment " + std::to_string(alignment));
  return info;
}

/// Tensors with data must not share bytes.
void checkOverlaps(Reader &r, const std::vector<TensorInfo> &tensors) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].offset < tensors[b].offset;
  });
  const TensorInfo *furthest = nullptr;
  for (size_t i : order) {
    const TensorInfo &t = tensors[i];
    if (t.byteSize == 0)
      continue;
    if (furthest && t.offset < furthest->offset + furthest->byteSize) {
      r.setField("tensor " + quote(t.name));
      r.fail("data " + range(t.offset, t.byteSize) + " overlaps tensor " +
             quote(furthest->name) + " " +
             range(furthest->offset, furthest->byteSize));
    }
    if (!furthest ||
        t.offset + t.byteSize > furthest->offset + furthest->byteSize)
      furthest = &t;
  }
}

} // namespace

StatusOr<GgufFile> GgufFile::open(const std::string &path) {
  StatusOr<FileBytes> bytes = FileBytes::map(path);
  if (!bytes)
    return bytes.status();
  return parse(std::move(*bytes));
}

StatusOr<GgufFile>
GgufFile::openBuffer(std::string name,
                     std::shared_ptr<const std::vector<uint8_t>> bytes) {
  return parse(FileBytes::fromBuffer(std::move(name), std::move(bytes)));
}

StatusOr<GgufFile> GgufFile::parse(FileBytes bytes) {
  GgufFile file;
  file.bytes_ = std::move(bytes);
  Reader r(file.bytes_);
  try {
    readHeader(r, file.bytes_, file.version_);
    uint64_t tensorCount = r.read<uint64_t>("tensor count");
    uint64_t pairCount = r.read<uint64_t>("metadata count");
    if (pairCount > r.remaining() / kMinPairBytes)
      r.fail("metadata count " + std::to_string(pairCount) +
             " cannot fit in the " + std::to_string(r.remaining()) +
             " bytes left in the file");
    if (tensorCount >
        (r.remaining() - pairCount * kMinPairBytes) / kMinTensorInfoBytes)
      r.fail("tensor count " + std::to_string(tensorCount) +
             " cannot fit in the " + std::to_string(r.remaining()) +
             " bytes left in the file");

    file.metadata_.reserve(pairCount);
    for (uint64_t i = 0; i < pairCount; ++i) {
      r.setField("metadata key #" + std::to_string(i));
      std::string key = r.readString("key");
      if (!kvrt::json::isValidUtf8(key))
        r.fail("key is not valid UTF-8");
      r.setField("metadata " + quote(key));
      if (file.metadataIndex_.count(key))
        r.fail("key appears twice");
      GgufType type = readType(r, "value type");
      GgufValue value = readValue(r, type, 0);
      file.metadataIndex_.emplace(key, file.metadata_.size());
      file.metadata_.emplace_back(std::move(key), std::move(value));
    }

    if (const GgufValue *a = file.get("general.alignment")) {
      r.setField("metadata 'general.alignment'");
      if (a->type() != GgufType::UInt32)
        r.fail("must be a uint32, got " + a->typeName());
      file.alignment_ = *a->asUInt();
      if (file.alignment_ == 0 ||
          (file.alignment_ & (file.alignment_ - 1)) != 0)
        r.fail("must be a non-zero power of two, got " +
               std::to_string(file.alignment_));
    }

    file.tensors_.reserve(tensorCount);
    for (uint64_t i = 0; i < tensorCount; ++i) {
      r.setField("tensor #" + std::to_string(i));
      TensorInfo info = readTensorInfo(r, file.alignment_);
      if (file.tensorIndex_.count(info.name))
        r.fail("name appears twice");
      file.tensorIndex_.emplace(info.name, file.tensors_.size());
      file.tensors_.push_back(std::move(info));
    }

    // The alignment is at most 2^31 and the offset at most the file size:
    // no overflow.
    uint64_t misalignment = r.offset() % file.alignment_;
    file.dataOffset_ =
        r.offset() + (misalignment ? file.alignment_ - misalignment : 0);
    for (TensorInfo &t : file.tensors_) {
      r.setField("tensor " + quote(t.name));
      std::string pastEnd = " extends past the end of the file (" +
                            std::to_string(file.bytes_.size()) + " bytes)";
      uint64_t absolute;
      if (__builtin_add_overflow(file.dataOffset_, t.offset, &absolute))
        r.fail("data offset " + std::to_string(t.offset) + pastEnd);
      if (!file.bytes_.contains(absolute, t.byteSize))
        r.fail("data " + range(absolute, t.byteSize) + pastEnd);
      t.offset = absolute;
    }
    checkOverlaps(r, file.tensors_);
  } catch (const FormatError &e) {
    return Status::error(e.message);
  } catch (const std::bad_alloc &) {
    return Status::error(file.bytes_.name() +
                         ": not enough memory to read the metadata");
  }
  return file;
}

const GgufValue *GgufFile::get(std::string_view key) const {
  auto it = metadataIndex_.find(key);
  return it == metadataIndex_.end() ? nullptr : &metadata_[it->second].second;
}

const TensorInfo *GgufFile::find(std::string_view name) const {
  auto it = tensorIndex_.find(name);
  return it == tensorIndex_.end() ? nullptr : &tensors_[it->second];
}

} // namespace kvopt::formats
