//===- OnnxDecoder.h - A Llama-family decoder in an ONNX graph --*- C++ -*-===//
//
// Recognises a Llama-family decoder (GQA, RoPE, RMSNorm, SwiGLU, tied or
// untied lm_head) in an ONNX graph, either written with the opset-23 ops
// (Attention, RotaryEmbedding, RMSNormalization) or decomposed the way
// torch.onnx and optimum export it, and maps its initializers to Hugging
// Face weight names. Plain C++: no MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_ONNX_ONNXDECODER_H
#define KVOPT_COMPILER_IMPORT_ONNX_ONNXDECODER_H

#include "compiler/import/ModelConfig.h"
#include "compiler/import/Weights.h"
#include "compiler/import/onnx/OnnxModel.h"

#include <map>
#include <memory>
#include <string>

namespace kvopt::import {

/// Where a Hugging Face weight lies among the initializers.
struct OnnxWeightRef {
  std::string initializer;
  /// True for a MatMul operand stored [in, out]: transposed on reading.
  bool transposed = false;
};

struct OnnxDecoder {
  ModelConfig config;
  /// Hugging Face name -> initializer.
  std::map<std::string, OnnxWeightRef> weights;
};

/// Finds the decoder in `model`'s graph. Anything the patterns do not cover
/// is one error naming the file, the layer, the block and the nodes.
kvrt::StatusOr<OnnxDecoder> recogniseDecoder(const formats::OnnxModel &model);

/// The recognised weights, read from the model's initializers: mapped bytes
/// where the layout is already Hugging Face's, a transposed copy where not.
class OnnxWeights : public WeightSource {
public:
  OnnxWeights(std::shared_ptr<const formats::OnnxModel> model,
              std::map<std::string, OnnxWeightRef> refs)
      : model(std::move(model)), refs(std::move(refs)) {}

  bool has(const std::string &name) const override {
    return refs.count(name) != 0;
  }
  kvrt::StatusOr<Weight> get(const std::string &name,
                             const std::vector<int64_t> &shape) override;

private:
  std::shared_ptr<const formats::OnnxModel> model;
  std::map<std::string, OnnxWeightRef> refs;
};

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_ONNX_ONNXDECODER_H
