//===- Sampling.h - Choosing the next token from logits ---------*- C++ -*-===//
//
// Greedy, temperature, top-k, top-p, and repetition, frequency and
// presence penalties, applied in Hugging Face's and vLLM's order
// (penalties, temperature, top-k, top-p). Random draws
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
  /// OpenAI's penalties, in [-2, 2], on the tokens generated so far (not
  /// the prompt's): each logit less frequencyPenalty times the token's
  /// count and presencePenalty if it occurred at all; 0 disables them.
  float frequencyPenalty = 0.0f;
  float presencePenalty = 0.0f;
  uint64_t seed = 0;

  /// Whether no penalty changes the logits.
  bool unpenalised() const {
    return repetitionPenalty == 1.0f && frequencyPenalty == 0.0f &&
           presencePenalty == 0.0f;
  }
};

/// Bits number `counter` of the stream of `seed` (SplitMix64 of their mix):
/// a counter-based generator, so no state but the counter.
uint64_t randomBits(uint64_t seed, uint64_t counter);

/// The index of the largest of `vocab` logits, NaN counted as -inf, the
/// lowest between equal ones: the Sampler's choice at temperature 0 without
/// a penalty, and what Engine::stepGreedy() returns.
int32_t greedyToken(const float *logits, size_t vocab);

/// Picks tokens under fixed parameters; each call consumes one draw.
class Sampler {
public:
  /// Errors when a parameter is out of range.
  static StatusOr<Sampler> create(const SamplingParams &params);

  /// The next token given `vocab` logits and the tokens so far, of which
  /// the first `promptTokens` are the prompt (the repetition penalty
  /// counts them, frequency and presence penalties do not). NaN logits
  /// are never picked unless all are NaN.
  int32_t sample(const float *logits, size_t vocab,
                 const std::vector<int32_t> &history, size_t promptTokens = 0);

private:
  explicit Sampler(const SamplingParams &params) : params_(params) {}
  SamplingParams params_;
  uint64_t counter_ = 0;
  std::vector<std::pair<float, int32_t>> candidates_;
};

} // namespace kvrt

#endif // KVRT_SAMPLING_H
