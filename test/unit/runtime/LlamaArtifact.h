//===- LlamaArtifact.h - A .kvpkg from a Hugging Face Llama folder -*- C++ -*-//
//
// Test code: reads config.json and model.safetensors and writes the plan the
// compiler emits from its kv module for a Llama decoder, through the
// runtime's ArtifactWriter. The tests use it to run a real model without
// the compiler.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TEST_LLAMAARTIFACT_H
#define KVRT_TEST_LLAMAARTIFACT_H

#include "kvrt/ArtifactWriter.h"
#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvrt::test {

struct LlamaArtifactOptions {
  uint32_t pageSize = 16;
  /// Positions the artifact allows, when set; else the model's own.
  uint32_t maxPositions = 0;
  /// Keys and values of every layer; f32 when the kind is unspecified.
  schema::Encoding cacheEncoding;
  /// Values only, when set.
  std::optional<schema::Encoding> valueEncoding;
  std::string target = "cpu";
  /// When set, an evict call with these parameters follows every layer's
  /// attention (its layer filled in). TriAttention reads queryCentre [Hq,
  /// d/2, 2] and queryMagnitude [Hq, d/2], the same for every layer; they
  /// must outlive the writing.
  std::optional<schema::EvictParams> evict;
  std::vector<float> queryCentre, queryMagnitude;
  /// When set, every layer's attention selects sparsely with these, and
  /// a prefetch call with `prefetch` (its layer filled in) follows it.
  std::optional<schema::SelectParams> select;
  std::optional<schema::PrefetchParams> prefetch;
};

/// A weight the caller keeps alive until the artifact is written.
struct WeightRef {
  schema::DType dtype;
  std::vector<int64_t> shape;
  const void *data;
};
using Weights = std::map<std::string, WeightRef>;

/// Fills `writer`'s manifest (model, cache layout, plan, target) and tensors
/// for a Llama decoder with Hugging Face weight names. `config` gives the
/// model's hyper-parameters; biases are used when `weights` has them.
Status buildLlama(ArtifactWriter &writer, const schema::ModelConfig &config,
                  const Weights &weights, const LlamaArtifactOptions &options);

/// Writes `path` for the Llama model in `modelDir` (config.json,
/// model.safetensors and tokenizer.json).
Status writeLlamaArtifact(const std::string &modelDir, const std::string &path,
                          const LlamaArtifactOptions &options = {});

/// A Llama model with random f32 weights (scaled so activations stay near
/// unit size), for tests that need a small valid artifact.
struct RandomLlama {
  schema::ModelConfig config;
  std::map<std::string, std::vector<float>> storage;
  Weights weights;
};
RandomLlama makeRandomLlama(uint64_t seed);

/// The folder of the small real model used by the tests.
inline std::string tinyStoriesDir() {
  return std::string(KVOPT_TEST_MODELS_DIR) + "/tinystories-656k";
}

} // namespace kvrt::test

#endif // KVRT_TEST_LLAMAARTIFACT_H
