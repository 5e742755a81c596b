//===- OnnxWeights.cpp - Recognised ONNX initializers as HF weights -------===//
#include "compiler/import/formats/Quote.h"
#include "compiler/import/formats/TensorInfo.h"
#include "compiler/import/onnx/OnnxDecoder.h"

#include <cstring>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::import {

StatusOr<Weight> OnnxWeights::get(const std::string &name,
                                  const std::vector<int64_t> &shape) {
  auto ref = refs.find(name);
  if (ref == refs.end())
    return Status::error(model->name() + ": the graph has no weight for " +
                         formats::quote(name));
  const std::string &init = ref->second.initializer;
  const formats::OnnxTensor *t = model->constant(init);
  std::string where = model->name() + ": initializer " + formats::quote(init);
  if (!t)
    return Status::error(where + " (" + name + ") is missing");
  Weight w;
  size_t elementSize;
  switch (t->dataType) {
  case onnx::TensorProto::FLOAT:
    w.type = WeightType::F32;
    elementSize = 4;
    break;
  case onnx::TensorProto::FLOAT16:
    w.type = WeightType::F16;
    elementSize = 2;
    break;
  case onnx::TensorProto::BFLOAT16:
    w.type = WeightType::BF16;
    elementSize = 2;
    break;
  default:
    return Status::error(where + " (" + name + ") is " +
                         formats::onnxTypeName(t->dataType) +
                         "; weights must be FLOAT, FLOAT16 or BFLOAT16");
  }
  w.shape = t->shape;
  bool transposed = ref->second.transposed && t->shape.size() == 2;
  if (transposed)
    std::swap(w.shape[0], w.shape[1]);
  if (w.shape != shape)
    return Status::error(where + " (" + name + ") has shape " +
                         formats::shapeString(w.shape) + ", expected " +
                         formats::shapeString(shape) +
                         " from the rest of the graph");
  w.byteSize = t->byteSize;
  if (!transposed) {
    w.data = t->data;
    w.owner = model;
    return w;
  }
  // MatMul stores [in, out]; Hugging Face layout is [out, in].
  uint64_t rows = t->shape[0], cols = t->shape[1];
  auto copy = std::make_shared<std::vector<uint8_t>>(t->byteSize);
  for (uint64_t r = 0; r < rows; ++r)
    for (uint64_t c = 0; c < cols; ++c)
      std::memcpy(copy->data() + (c * rows + r) * elementSize,
                  t->data + (r * cols + c) * elementSize, elementSize);
  w.data = copy->data();
  w.owner = copy;
  return w;
}

} // namespace kvopt::import
