//===- SlidingWindows.h - Teacher-forced scoring of a long text -*- C++ -*-===//
//
// Perplexity over a text longer than the context: windows of `context`
// tokens start every `stride` tokens, and each token but the first is scored
// in exactly one window, the last one that holds it (as Hugging Face's
// sliding-window perplexity does). The first window scores all its tokens;
// every later one scores its last `stride` tokens, each with at least
// context - stride tokens of the window before it. Scoring is decode mode:
// the window's unscored prefix is prefilled into the (compressed) cache, then
// every scored token is predicted by one decode step from that cache.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SLIDINGWINDOWS_H
#define KVOPT_TOOLS_KVOPT_SLIDINGWINDOWS_H

#include "kvrt/Runtime.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace kvopt::cli {

/// Tokens [begin, end) of the stream are the window's context; those in
/// [scoredBegin, end) are scored.
struct Window {
  int64_t begin = 0;
  int64_t scoredBegin = 0;
  int64_t end = 0;
};

/// The windows over a stream of `tokens` tokens (at least 2); `context` at
/// least 2, `stride` in [1, context).
std::vector<Window> slidingWindows(int64_t tokens, int64_t context,
                                   int64_t stride);

/// log softmax(logits)[target], in double, shifted by the maximum so that
/// no exponential overflows.
double logProbability(const float *logits, size_t vocab, int32_t target);

struct TokenScores {
  /// Per token of the stream, -log p(token | the tokens before it in its
  /// window); 0 for tokens not scored (yet).
  std::vector<double> negativeLogLikelihood;
  /// Their sum, and how many tokens were scored.
  double total = 0;
  uint64_t tokens = 0;

  /// exp of the mean negative log-likelihood of the scored tokens.
  double perplexity() const;
};

/// Runs `windows` over `tokens` on `engine`, up to `batch` windows at a time
/// as separate sequences of one batch (so each step reads the weights once
/// for all of them): a finished window's place goes to the next one, whose
/// prefix is prefilled in the same forward pass as the others' steps.
/// `onStep` sees the scores after every forward pass. Sequences are
/// removed from the engine when done.
kvrt::StatusOr<TokenScores>
scoreWindows(kvrt::Engine &engine, const std::vector<int32_t> &tokens,
             const std::vector<Window> &windows, unsigned batch,
             const std::function<void(const TokenScores &)> &onStep);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_SLIDINGWINDOWS_H
