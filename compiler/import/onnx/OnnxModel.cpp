//===- OnnxModel.cpp - Hostile-input-safe ONNX model reader ---------------===//
#include "compiler/import/onnx/OnnxModel.h"
#include "compiler/import/formats/Quote.h"
#include "compiler/import/formats/TensorInfo.h"

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::formats {

namespace {

/// Protobuf parses at most INT_MAX bytes; larger weights must be external.
constexpr uint64_t kMaxModelBytes = INT_MAX;
/// Messages nest Model > Graph > Node > Attribute > Graph ...: a few levels
/// of subgraphs fit, a hostile nesting does not reach the stack's end.
constexpr int kMaxNesting = 64;

/// Bytes per element, or 0 for strings and types kvopt does not size.
uint64_t elementBytes(int32_t type) {
  switch (type) {
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::UINT32:
    return 4;
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::INT8:
  case onnx::TensorProto::BOOL:
    return 1;
  case onnx::TensorProto::UINT16:
  case onnx::TensorProto::INT16:
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
    return 2;
  case onnx::TensorProto::INT64:
  case onnx::TensorProto::UINT64:
  case onnx::TensorProto::DOUBLE:
  case onnx::TensorProto::COMPLEX64:
    return 8;
  case onnx::TensorProto::COMPLEX128:
    return 16;
  default:
    return 0;
  }
}

/// True when `rel` names a file below its base folder: relative, no `..`.
bool isPlainRelative(const std::string &rel) {
  if (rel.empty() || rel[0] == '/')
    return false;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos)
      end = rel.size();
    if (rel.compare(start, end - start, "..") == 0)
      return false;
    start = end + 1;
  }
  return true;
}

std::string folderOf(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "./" : path.substr(0, slash + 1);
}

} // namespace

uint64_t OnnxTensor::numElements() const {
  return elementCount(shape).value_or(0);
}

std::string onnxTypeName(int32_t dataType) {
  if (onnx::TensorProto::DataType_IsValid(dataType))
    return onnx::TensorProto::DataType_Name(
        static_cast<onnx::TensorProto::DataType>(dataType));
  return "type " + std::to_string(dataType);
}

StatusOr<std::shared_ptr<OnnxModel>> OnnxModel::open(const std::string &path) {
  StatusOr<std::shared_ptr<kvrt::MappedFile>> file =
      kvrt::MappedFile::open(path);
  if (!file)
    return file.status();
  std::shared_ptr<OnnxModel> model(new OnnxModel());
  model->name_ = path;
  model->folder_ = folderOf(path);
  KVRT_RETURN_IF_ERROR(model->parse((*file)->data(), (*file)->size()));
  return model;
}

StatusOr<std::shared_ptr<OnnxModel>>
OnnxModel::openBuffer(std::string name, const uint8_t *data, size_t size) {
  std::shared_ptr<OnnxModel> model(new OnnxModel());
  model->name_ = std::move(name);
  KVRT_RETURN_IF_ERROR(model->parse(data, size));
  return model;
}

Status OnnxModel::parse(const uint8_t *data, size_t size) {
  if (size > kMaxModelBytes)
    return Status::error(name_ + ": the file is " + std::to_string(size) +
                         " bytes, more than the 2 GiB a protobuf can hold; "
                         "store the weights as external data");
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(size));
  in.SetRecursionLimit(kMaxNesting);
  if (!proto_.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    return Status::error(name_ +
                         ": not a valid ONNX model: the protobuf is "
                         "truncated, malformed or nested deeper than " +
                         std::to_string(kMaxNesting) + " levels");
  if (!proto_.has_graph())
    return Status::error(name_ + ": the ModelProto has no graph");
  KVRT_RETURN_IF_ERROR(readTensors());
  return indexGraph();
}

StatusOr<const uint8_t *> OnnxModel::externalData(const onnx::TensorProto &t,
                                                  const std::string &where,
                                                  uint64_t byteSize) {
  std::string location;
  uint64_t offset = 0, length = byteSize;
  bool hasLength = false;
  for (const onnx::StringStringEntryProto &e : t.external_data()) {
    if (e.key() == "location") {
      location = e.value();
      continue;
    }
    if (e.key() != "offset" && e.key() != "length")
      continue;
    const std::string &text = e.value();
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || text[0] == '-' || *end != '\0' || errno == ERANGE)
      return Status::error(where + ": external data " + e.key() + " " +
                           quote(text) + " is not a byte count");
    (e.key() == "offset" ? offset : length) = v;
    hasLength |= e.key() == "length";
  }
  if (folder_.empty())
    return Status::error(where + " keeps its data in an external file, "
                                 "which a model read from memory cannot use");
  if (!isPlainRelative(location) || location.find('\0') != std::string::npos)
    return Status::error(where + ": external data location " + quote(location) +
                         " must be a relative path inside the model's folder "
                         "(no absolute path, no '..')");
  if (hasLength && length != byteSize)
    return Status::error(
        where + ": external data length " + std::to_string(length) +
        " does not match its shape (" + std::to_string(byteSize) + " bytes)");
  auto it = externalFiles_.find(location);
  if (it == externalFiles_.end()) {
    std::string path = folder_ + location;
    // A symlink may not lead out of the folder either.
    char *real = ::realpath(path.c_str(), nullptr);
    char *base = ::realpath(folder_.c_str(), nullptr);
    bool inside = real && base &&
                  std::strncmp(real, base, std::strlen(base)) == 0 &&
                  real[std::strlen(base)] == '/';
    std::free(real);
    std::free(base);
    if (!inside)
      return Status::error(where + ": external data location " +
                           quote(location) +
                           " does not name a file inside the model's folder");
    StatusOr<std::shared_ptr<kvrt::MappedFile>> file =
        kvrt::MappedFile::open(path);
    if (!file)
      return Status::error(where + ": " + file.status().message());
    it = externalFiles_.emplace(location, std::move(*file)).first;
  }
  const kvrt::MappedFile &file = *it->second;
  if (!file.contains(offset, byteSize))
    return Status::error(where + ": external data [" + std::to_string(offset) +
                         ", +" + std::to_string(byteSize) +
                         ") extends past the "
                         "end of " +
                         quote(location) + " (" + std::to_string(file.size()) +
                         " bytes)");
  return file.data() + offset;
}

StatusOr<OnnxTensor> OnnxModel::readTensor(const onnx::TensorProto &t,
                                           const std::string &where) {
  OnnxTensor out;
  out.name = t.name();
  out.dataType = t.data_type();
  out.shape.assign(t.dims().begin(), t.dims().end());
  std::optional<uint64_t> count = elementCount(out.shape);
  if (!count)
    return Status::error(where + " has dims " + shapeString(out.shape) +
                         ": a dimension is negative or their product "
                         "overflows 64 bits");
  uint64_t size = elementBytes(out.dataType);
  if (size == 0)
    return out; // Strings and exotic types: kept, never read as numbers.
  if (__builtin_mul_overflow(*count, size, &out.byteSize))
    return Status::error(where + " has dims " + shapeString(out.shape) +
                         " whose byte size overflows 64 bits");
  auto typed = [&](uint64_t n, const void *p) -> StatusOr<OnnxTensor> {
    if (n != *count)
      return Status::error(where + " holds " + std::to_string(n) +
                           " values; its dims " + shapeString(out.shape) +
                           " need " + std::to_string(*count));
    out.data = static_cast<const uint8_t *>(p);
    return out;
  };
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    StatusOr<const uint8_t *> bytes = externalData(t, where, out.byteSize);
    if (!bytes)
      return bytes.status();
    out.data = *bytes;
    return out;
  }
  if (t.has_raw_data()) {
    if (t.raw_data().size() != out.byteSize)
      return Status::error(
          where + " has " + std::to_string(t.raw_data().size()) +
          " bytes of raw_data; its dims " + shapeString(out.shape) + " of " +
          onnxTypeName(out.dataType) + " need " + std::to_string(out.byteSize));
    out.data = reinterpret_cast<const uint8_t *>(t.raw_data().data());
    return out;
  }
  switch (out.dataType) {
  case onnx::TensorProto::FLOAT:
    return typed(t.float_data_size(), t.float_data().data());
  case onnx::TensorProto::DOUBLE:
    return typed(t.double_data_size(), t.double_data().data());
  case onnx::TensorProto::INT64:
    return typed(t.int64_data_size(), t.int64_data().data());
  case onnx::TensorProto::INT32:
    return typed(t.int32_data_size(), t.int32_data().data());
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16: {
    // Typed storage widens each 16-bit value to an int32.
    std::vector<uint8_t> &bytes = converted_.emplace_back();
    for (int32_t v : t.int32_data()) {
      if (v < 0 || v > 0xFFFF)
        return Status::error(where + " holds " + std::to_string(v) +
                             " in int32_data, not a 16-bit pattern");
      bytes.push_back(uint8_t(v));
      bytes.push_back(uint8_t(v >> 8));
    }
    return typed(t.int32_data_size(), bytes.data());
  }
  default:
    if (*count == 0)
      return out;
    return Status::error(where + " stores " + onnxTypeName(out.dataType) +
                         " values in a typed field kvopt does not read; "
                         "store them as raw_data");
  }
}

Status OnnxModel::readTensors() {
  const onnx::GraphProto &g = proto_.graph();
  for (const onnx::TensorProto &t : g.initializer()) {
    StatusOr<OnnxTensor> tensor =
        readTensor(t, name_ + ": initializer " + quote(t.name()));
    if (!tensor)
      return tensor.status();
    initializers_.insert(t.name());
    if (!constants_.emplace(t.name(), std::move(*tensor)).second)
      return Status::error(name_ + ": initializer " + quote(t.name()) +
                           " is defined twice");
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto &n = g.node(i);
    if (n.op_type() != "Constant" || !n.domain().empty() ||
        n.output_size() != 1)
      continue;
    for (const onnx::AttributeProto &a : n.attribute()) {
      if (a.name() != "value" || !a.has_t())
        continue;
      StatusOr<OnnxTensor> tensor =
          readTensor(a.t(), name_ + ": node " + describe(i) + " value");
      if (!tensor)
        return tensor.status();
      tensor->name = n.output(0);
      constants_.emplace(n.output(0), std::move(*tensor));
    }
  }
  return Status::ok();
}

Status OnnxModel::indexGraph() {
  const onnx::GraphProto &g = proto_.graph();
  for (const onnx::ValueInfoProto &v : g.input())
    inputs_.insert(v.name());
  for (const onnx::ValueInfoProto &v : g.output())
    outputs_.insert(v.name());
  int n = g.node_size();
  for (int i = 0; i < n; ++i)
    for (const std::string &out : g.node(i).output()) {
      if (out.empty())
        continue;
      auto [it, fresh] = producers_.emplace(out, i);
      if (!fresh)
        return Status::error(
            name_ + ": value " + quote(out) + " is produced twice, by node " +
            describe(it->second) + " and by node " + describe(i));
      if (isGraphInput(out) || isInitializer(out))
        return Status::error(name_ + ": node " + describe(i) +
                             " writes value " + quote(out) +
                             ", which is already a graph input or "
                             "initializer");
    }
  // Kahn's algorithm: the file's node order need not be topological.
  std::vector<int> pending(n, 0);
  for (int i = 0; i < n; ++i)
    for (const std::string &in : g.node(i).input()) {
      if (in.empty())
        continue; // An omitted optional input.
      auto p = producers_.find(in);
      if (p != producers_.end()) {
        ++pending[i];
        consumers_[in].push_back(i);
        continue;
      }
      if (!isGraphInput(in) && !isInitializer(in))
        return Status::error(name_ + ": node " + describe(i) + " reads " +
                             quote(in) +
                             ", which no node, initializer or graph input "
                             "produces");
      consumers_[in].push_back(i);
    }
  for (int i = 0; i < n; ++i)
    if (pending[i] == 0)
      order_.push_back(i);
  for (size_t k = 0; k < order_.size(); ++k)
    for (const std::string &out : g.node(order_[k]).output())
      if (auto c = consumers_.find(out); !out.empty() && c != consumers_.end())
        for (int reader : c->second)
          if (--pending[reader] == 0)
            order_.push_back(reader);
  if (order_.size() != size_t(n))
    for (int i = 0; i < n; ++i)
      if (pending[i] != 0)
        return Status::error(name_ + ": node " + describe(i) +
                             " is part of a cycle; an ONNX graph must be "
                             "acyclic");
  // Consumers in topological order, so that matching is deterministic.
  std::vector<int> rank(n);
  for (int k = 0; k < n; ++k)
    rank[order_[k]] = k;
  for (auto &[value, readers] : consumers_)
    std::sort(readers.begin(), readers.end(),
              [&](int a, int b) { return rank[a] < rank[b]; });
  return Status::ok();
}

int OnnxModel::producer(const std::string &value) const {
  auto it = producers_.find(value);
  return it == producers_.end() ? -1 : it->second;
}

const std::vector<int> &OnnxModel::consumers(const std::string &value) const {
  static const std::vector<int> none;
  auto it = consumers_.find(value);
  return it == consumers_.end() ? none : it->second;
}

bool OnnxModel::isGraphInput(const std::string &value) const {
  return inputs_.count(value) != 0;
}

bool OnnxModel::isGraphOutput(const std::string &value) const {
  return outputs_.count(value) != 0;
}

const OnnxTensor *OnnxModel::constant(const std::string &value) const {
  auto it = constants_.find(value);
  return it == constants_.end() ? nullptr : &it->second;
}

bool OnnxModel::isInitializer(const std::string &value) const {
  return initializers_.count(value) != 0;
}

std::string OnnxModel::opName(int index) const {
  const onnx::NodeProto &n = node(index);
  if (n.domain().empty() || n.domain() == "ai.onnx")
    return n.op_type();
  return n.domain() + "." + n.op_type();
}

std::string OnnxModel::describe(int index) const {
  const onnx::NodeProto &n = node(index);
  std::string who =
      n.name().empty() ? "#" + std::to_string(index) : quote(n.name());
  std::string op = quote(opName(index));
  return who + " (" + op.substr(1, op.size() - 2) + ")";
}

} // namespace kvopt::formats
