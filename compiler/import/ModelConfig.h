//===- ModelConfig.h - What an importer learns about a model ----*- C++ -*-===//
//
// The hyper-parameters of a Llama-family decoder, whichever file they came
// from (config.json, GGUF metadata, an ONNX graph). Plain C++: no MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_MODELCONFIG_H
#define KVOPT_COMPILER_IMPORT_MODELCONFIG_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvopt::import {

enum class RopeScalingKind { None, Linear, Llama3, Yarn };
enum class RopeLayout { Half, Interleaved };

struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::None;
  double factor = 1.0;
  double lowFreqFactor = 1.0;
  double highFreqFactor = 4.0;
  int64_t originalMaxPosition = 0;
  double betaFast = 32.0;
  double betaSlow = 1.0;
  /// YaRN: 0 derives it from the factor, as Hugging Face does.
  double attentionFactor = 0.0;
};

struct ModelConfig {
  /// "llama", "mistral", "qwen2" or "qwen3".
  std::string architecture;
  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;
  int64_t headDim = 0;
  int64_t maxPositions = 0;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  RopeLayout ropeLayout = RopeLayout::Half;
  RopeScaling ropeScaling;
  bool tieWordEmbeddings = false;
  /// Qwen3 normalises each query and key head before RoPE.
  bool qkNorm = false;
  /// Qwen2 has biases on the q, k and v projections.
  bool qkvBias = false;
  std::optional<int64_t> slidingWindow;
  std::optional<int64_t> bosId;
  std::vector<int64_t> eosIds;
};

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_MODELCONFIG_H
