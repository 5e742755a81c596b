//===- Sampling.h - Choosing the next token from logits ---------*- C++ -*-===//
//
// Greedy, temperature, top-k, top-p and repetition penalty, applied in
// Hugging Face's order (penalty, temperature, top-k, top-p). Random draws
// come from a counter-based generator: draw n of seed s is a pure function
// of (s, n), so a run is reproducible from its seed on any host.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SAMPLING_H
#define KVRT_SAMPLING_H

#include "kvrt/Status.h"

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace kvrt {

struct SamplingParams {
  /// 0 picks the most likely token (greedy); otherwise logits are divided
  /// by it before sampling.
  float temperature = 0.0f;
  /// Keep only the k most likely tokens; 0 keeps all.
  int32_t topK = 0;
  /// Keep the most likely tokens whose probabilities sum to at least this;
  /// 1 keeps all.
  float topP = 1.0f;
  /// Divides positive logits (multiplies negative ones) of tokens already
  /// in the history by this; 1 disables it.
  float repetitionPenalty = 1.0f;
  uint64_t seed = 0;
};

/// Bits number `counter` of the stream of `seed` (SplitMix64 of their mix):
/// a counter-based generator, so no state but the counter.
uint64_t randomBits(uint64_t seed, uint64_t counter);

/// The index of the largest of `vocab` logits, NaN counted as -inf, the
/// lowest between equal ones: the Sampler's choice at temperature 0 without
/// a repetition penalty, and what Engine::stepGreedy() returns.
int32_t greedyToken(const float *logits, size_t vocab);

/// Picks tokens under fixed parameters; each call consumes one draw.
class Sampler {
public:
  /// Errors when a parameter is out of range.
  static StatusOr<Sampler> create(const SamplingParams &params);

  /// The next token given `vocab` logits and the tokens so far (prompt
  /// included, for the repetition penalty). NaN logits are never picked
  /// unless all are NaN.
  int32_t sample(const float *logits, size_t vocab,
                 const std::vector<int32_t> &history);

private:
  explicit Sampler(const SamplingParams &params) : params_(params) {}
  SamplingParams params_;
  uint64_t counter_ = 0;
  std::vector<std::pair<float, int32_t>> candidates_;
};

} // namespace kvrt

#endif // KVRT_SAMPLING_H
