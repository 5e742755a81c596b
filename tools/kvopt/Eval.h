//===- Eval.h - Perplexity as kvopt eval measures it ------------*- C++ -*-===//
//
// For commands that score artifacts themselves (kvopt tune): the same
// windows, decode-mode scoring and change against a reference as
// `kvopt eval --task ppl`.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_EVAL_H
#define KVOPT_TOOLS_KVOPT_EVAL_H

#include "tools/kvopt/SlidingWindows.h"

#include "kvrt/Status.h"

#include <cstdint>
#include <string>

namespace kvopt::cli {

/// How much higher one perplexity is than a reference's, in percent, and
/// the standard error of that.
struct PplChange {
  double percent = 0;
  double standardError = 0;
};

/// Both scored the same tokens, so the error follows from the spread of the
/// per-token differences of log-likelihood (tokens taken as independent),
/// which is far smaller than the uncertainty of either perplexity alone.
PplChange perplexityChange(const TokenScores &reference,
                           const TokenScores &scores);

struct PerplexityScore {
  /// The cache's bytes per token (metadata included) and bits per
  /// coordinate.
  double kvBytesPerToken = 0, bitsPerCoordinate = 0;
  TokenScores scores;
};

/// `kvopt eval ARTIFACT --task ppl --data DATA --context CONTEXT
/// --max-tokens MAX_TOKENS --threads THREADS` on the cpu backend.
kvrt::StatusOr<PerplexityScore>
scorePerplexity(const std::string &artifact, const std::string &data,
                int64_t context, int64_t maxTokens, unsigned threads);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_EVAL_H
