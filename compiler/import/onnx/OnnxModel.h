//===- OnnxModel.h - Hostile-input-safe ONNX model reader -------*- C++ -*-===//
//
// Parses a ModelProto with bounded size and nesting, validates every
// initializer's bytes (inline, typed fields or external data kept inside
// the model's folder) and the top-level graph (no dangling inputs, no value
// produced twice, no cycles), and indexes the graph for pattern matching.
// Plain C++: no MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_ONNX_ONNXMODEL_H
#define KVOPT_COMPILER_IMPORT_ONNX_ONNXMODEL_H

#include "compiler/import/onnx/proto/onnx.pb.h"
#include "kvrt/MappedFile.h"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kvopt::formats {

/// The bytes of a constant tensor (an initializer or a Constant node's
/// value), little-endian and row-major, checked to match its shape.
struct OnnxTensor {
  std::string name;
  /// onnx::TensorProto::DataType.
  int32_t dataType = 0;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr;
  uint64_t byteSize = 0;

  uint64_t numElements() const;
};

/// "FLOAT", "INT64": for messages.
std::string onnxTypeName(int32_t dataType);

/// One validated ONNX model.
class OnnxModel {
public:
  /// Reads the model at `path`; external data must lie in its folder.
  static kvrt::StatusOr<std::shared_ptr<OnnxModel>>
  open(const std::string &path);
  /// Reads a model held in memory (no external data); `name` stands for it
  /// in messages.
  static kvrt::StatusOr<std::shared_ptr<OnnxModel>>
  openBuffer(std::string name, const uint8_t *data, size_t size);

  /// The path (or buffer name) that messages use.
  const std::string &name() const { return name_; }
  const onnx::GraphProto &graph() const { return proto_.graph(); }
  /// Node indices in topological order.
  const std::vector<int> &order() const { return order_; }
  const onnx::NodeProto &node(int index) const {
    return proto_.graph().node(index);
  }
  /// The node that produces `value`, or -1.
  int producer(const std::string &value) const;
  /// The nodes that read `value`, in topological order.
  const std::vector<int> &consumers(const std::string &value) const;
  bool isGraphInput(const std::string &value) const;
  bool isGraphOutput(const std::string &value) const;
  /// The initializer or Constant-node tensor named `value`, or null.
  const OnnxTensor *constant(const std::string &value) const;
  /// True when `value` is an initializer (not a Constant node).
  bool isInitializer(const std::string &value) const;
  /// "'name' (Op)", or "#index (Op)" for an unnamed node: for messages.
  std::string describe(int index) const;
  /// The op type, prefixed with its domain unless that is the default one.
  std::string opName(int index) const;

private:
  OnnxModel() = default;
  kvrt::Status parse(const uint8_t *data, size_t size);
  kvrt::Status readTensors();
  kvrt::StatusOr<OnnxTensor> readTensor(const onnx::TensorProto &t,
                                        const std::string &where);
  kvrt::StatusOr<const uint8_t *> externalData(const onnx::TensorProto &t,
                                               const std::string &where,
                                               uint64_t byteSize);
  kvrt::Status indexGraph();

  std::string name_;
  /// The folder external data must come from; empty for a buffer.
  std::string folder_;
  onnx::ModelProto proto_;
  std::map<std::string, OnnxTensor, std::less<>> constants_;
  std::set<std::string, std::less<>> inputs_, outputs_, initializers_;
  std::map<std::string, int, std::less<>> producers_;
  std::map<std::string, std::vector<int>, std::less<>> consumers_;
  std::vector<int> order_;
  std::map<std::string, std::shared_ptr<kvrt::MappedFile>> externalFiles_;
  /// Bytes converted from typed fields that do not hold them as stored.
  std::deque<std::vector<uint8_t>> converted_;
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_ONNX_ONNXMODEL_H
