//===- SlidingWindows.cpp -------------------------------------------------===//
#include "tools/kvopt/SlidingWindows.h"
#include "tools/kvopt/RemoveOnExit.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace kvopt::cli {

double TokenScores::perplexity() const {
  return std::exp(total / double(tokens));
}

std::vector<Window> slidingWindows(int64_t tokens, int64_t context,
                                   int64_t stride) {
  std::vector<Window> windows;
  // The first token has nothing before it to be predicted from.
  int64_t scoredUpTo = 1;
  for (int64_t begin = 0; scoredUpTo < tokens; begin += stride) {
    int64_t end = std::min(begin + context, tokens);
    windows.push_back({begin, scoredUpTo, end});
    scoredUpTo = end;
  }
  return windows;
}

double logProbability(const float *logits, size_t vocab, int32_t target) {
  float max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i)
    sum += std::exp(double(logits[i]) - double(max));
  return double(logits[target]) - double(max) - std::log(sum);
}

namespace {
/// A window being scored in one sequence of the engine.
struct Running {
  const Window *window;
  kvrt::SequenceId sequence;
  /// The next token of the stream to feed.
  int64_t next;
};

} // namespace

kvrt::StatusOr<TokenScores>
scoreWindows(kvrt::Engine &engine, const std::vector<int32_t> &tokens,
             const std::vector<Window> &windows, unsigned batch,
             const std::function<void(const TokenScores &)> &onStep) {
  TokenScores scores;
  scores.negativeLogLikelihood.assign(tokens.size(), 0.0);
  std::vector<Running> running;
  RemoveOnExit<Running> remove{engine, running};
  size_t started = 0;
  while (started < windows.size() || !running.empty()) {
    while (running.size() < batch && started < windows.size()) {
      kvrt::StatusOr<kvrt::SequenceId> sequence = engine.addSequence();
      if (!sequence)
        return sequence.status();
      const Window &window = windows[started++];
      running.push_back({&window, *sequence, window.begin});
    }
    // Each running window either prefills its prefix up to (not including)
    // the token whose step predicts its first scored token, or takes one
    // decode step; the step's logits predict the token after the one fed.
    std::vector<kvrt::SequenceTokens> entries;
    std::vector<bool> isStep;
    for (Running &r : running) {
      int64_t lastUnscored = r.window->scoredBegin - 1;
      bool step = r.next >= lastUnscored;
      int64_t until = step ? r.next + 1 : lastUnscored;
      entries.push_back({r.sequence,
                         std::vector<int32_t>(tokens.begin() + r.next,
                                              tokens.begin() + until),
                         false});
      isStep.push_back(step);
      r.next = until;
    }
    KVRT_RETURN_IF_ERROR(engine.prefill(entries));
    const kvrt::Logits &logits = engine.logits();
    std::vector<Running> stillRunning;
    for (size_t i = 0; i < running.size(); ++i) {
      Running &r = running[i];
      if (isStep[i]) {
        double logP =
            logProbability(logits.row(i), logits.vocab, tokens[size_t(r.next)]);
        if (!std::isfinite(logP))
          return kvrt::Status::error(
              engine.artifact().name() +
              " gives a log-probability that is not finite to token " +
              std::to_string(r.next) + " of the text");
        scores.negativeLogLikelihood[size_t(r.next)] = -logP;
        scores.total -= logP;
        ++scores.tokens;
      }
      if (isStep[i] && r.next + 1 == r.window->end)
        KVRT_RETURN_IF_ERROR(engine.removeSequence(r.sequence));
      else
        stillRunning.push_back(r);
    }
    running = std::move(stillRunning);
    if (onStep)
      onStep(scores);
  }
  return scores;
}

} // namespace kvopt::cli
