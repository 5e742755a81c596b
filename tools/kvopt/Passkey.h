//===- Passkey.h - Retrieval of a number hidden in long text ----*- C++ -*-===//
//
// The passkey test of Mohtashami & Jaggi (2023): a five-digit number is
// stated once at a relative depth of a long run of filler sentences, and
// asked for at the end. Each prompt is built from token ids of its pieces
// (introduction, whole filler sentences, the key's sentence, the question),
// so its length is counted in the artifact's tokens; the answer is generated
// greedily in decode mode and is right when its first run of digits is the
// key. Keys come from kvrt::randomBits, so a seed gives the same prompts on
// any machine.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_PASSKEY_H
#define KVOPT_TOOLS_KVOPT_PASSKEY_H

#include "kvrt/Runtime.h"
#include "kvrt/Tokenizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kvopt::cli {

/// Tokens the answer may take: a prompt for length L holds at most
/// L - kPasskeyAnswerTokens tokens, so that prompt and answer fit in L.
constexpr int64_t kPasskeyAnswerTokens = 10;

struct PasskeyOptions {
  /// Context lengths in tokens, and relative depths in [0, 1] (0: right
  /// after the introduction, 1: right before the question).
  std::vector<int64_t> lengths;
  std::vector<double> depths;
  int64_t trials = 0;
  uint64_t seed = 0;
  /// Wrap the text in the model's chat template as the user's message, the
  /// answer's start ("The pass key is") written as the assistant's; the
  /// instruct default model answers far more often so (README).
  bool chat = false;
};

/// One prompt of the grid.
struct PasskeyTrial {
  /// Indices into PasskeyOptions::lengths and depths.
  size_t length = 0, depth = 0;
  std::string key;
  std::vector<int32_t> prompt;
};

/// The prompts of every cell, length by length, depth by depth, trial by
/// trial; keys depend on the seed and the trial's place in that order only.
/// Errors when a length cannot hold the introduction, the key and the
/// question, or `chat` is set and the tokenizer has no chat template.
kvrt::StatusOr<std::vector<PasskeyTrial>>
passkeyTrials(const kvrt::Tokenizer &tokenizer, const PasskeyOptions &options,
              const std::string &artifactName);

/// Whether the first run of digits in `answer` is `key`.
bool isPasskeyAnswer(const std::string &key, const std::string &answer);

struct PasskeyAnswer {
  std::string text;
  bool correct = false;
};

/// Answers every trial on `engine`, up to `batch` prompts at a time as the
/// sequences of one batch; a finished trial's place goes to the next one,
/// whose prompt is prefilled in the same forward pass as the others' steps.
/// `onStep` sees the number of trials answered after every forward pass.
kvrt::StatusOr<std::vector<PasskeyAnswer>>
answerPasskeys(kvrt::Engine &engine, const kvrt::Tokenizer &tokenizer,
               const std::vector<PasskeyTrial> &trials, unsigned batch,
               const std::function<void(size_t)> &onStep);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_PASSKEY_H
