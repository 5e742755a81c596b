//===- Generation.h - The rules of one sequence's generation ----*- C++ -*-===//
//
// What Engine::generate and the serving scheduler decide alike for each
// sampled token: whether it stops generation before it is emitted (a stop or
// end-of-sequence token), and whether generation ends after it (the token
// limit, the model's context). It also owns the sampler and the history the
// repetition penalty reads.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_GENERATION_H
#define KVRT_GENERATION_H

#include "kvrt/Runtime.h"
#include "kvrt/Sampling.h"

#include <optional>
#include <unordered_set>

namespace kvrt {

class Generation {
public:
  /// Fails with one sentence for an empty prompt, one that fills the
  /// model's context, a token outside the vocabulary, sampling parameters
  /// out of range, or minNewTokens beyond maxNewTokens.
  static StatusOr<Generation> create(const Artifact &artifact,
                                     std::vector<int32_t> prompt,
                                     const GenerateOptions &options);

  const std::vector<int32_t> &prompt() const { return prompt_; }
  /// Tokens emitted so far.
  const std::vector<int32_t> &generated() const { return generated_; }
  /// Whether the backend may pick the tokens itself (greedy without a
  /// penalty or a minimum length), which the sampler would pick alike.
  bool greedy() const { return greedy_; }
  /// Whether the options allow no token at all (maxNewTokens <= 0).
  bool empty() const { return maxNewTokens_ <= 0; }

  /// The next token from `vocab` logits; before minNewTokens, never a
  /// stop token.
  int32_t sample(const float *logits, size_t vocab);
  /// StopToken when `token` ends generation unemitted.
  std::optional<StopReason> stopsAt(int32_t token) const;
  /// Records an emitted token; returns why generation ends after it, if it
  /// does (MaxTokens, ContextFull).
  std::optional<StopReason> record(int32_t token);

private:
  Generation(std::vector<int32_t> prompt, Sampler sampler,
             std::unordered_set<int32_t> stops, int64_t minNewTokens,
             int64_t maxNewTokens, int64_t context, bool greedy);

  std::vector<int32_t> prompt_, generated_;
  /// prompt_ then generated_: what the penalties read.
  std::vector<int32_t> history_;
  Sampler sampler_;
  std::unordered_set<int32_t> stops_;
  int64_t minNewTokens_, maxNewTokens_, context_;
  bool greedy_;
  /// The logits with the stop tokens masked, before minNewTokens.
  std::vector<float> masked_;
};

} // namespace kvrt

#endif // KVRT_GENERATION_H
