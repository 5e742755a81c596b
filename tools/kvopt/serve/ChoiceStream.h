//===- ChoiceStream.h - One choice's tokens turned into its text -*- C++
//-*-===//
//
// A completion has `n` choices, each a request of the scheduler. As a
// choice's tokens arrive they are decoded to text (a character split over
// tokens waits for its last byte), cut at the first stop string, and each
// token's log probabilities are placed at the offset of its text, so that
// a streamed chunk carries those of the tokens whose text it begins and a
// whole answer those its text keeps.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SERVE_CHOICESTREAM_H
#define KVOPT_TOOLS_KVOPT_SERVE_CHOICESTREAM_H

#include "tools/kvopt/serve/StopStrings.h"

#include "kvrt/Scheduler.h"
#include "kvrt/Tokenizer.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvopt::serve {

/// One token's log probabilities, as shown.
struct ShownLogprob {
  /// The token's text, and where it starts in the choice's text.
  std::string text;
  size_t offset = 0;
  /// None for a prompt's first token, which nothing before it predicts.
  std::optional<double> logprob;
  std::vector<std::pair<std::string, double>> top;
};

/// `token` at `offset` with `logprob`'s values (none when null).
ShownLogprob showLogprob(const kvrt::Tokenizer &tokenizer, int32_t token,
                         size_t offset, const kvrt::TokenLogprob *logprob);

class ChoiceStream {
public:
  /// Stop strings are looked for in the text of the tokens after the
  /// first `minTokens` (vLLM's min_tokens).
  ChoiceStream(const kvrt::Tokenizer &tokenizer, std::vector<std::string> stop,
               bool wantsLogprobs, size_t minTokens = 0);

  /// What an update adds to the choice.
  struct Piece {
    /// Text that may go out now.
    std::string text;
    /// The log probabilities of the tokens whose text has begun to go out
    /// (at the end: of every token the text keeps).
    std::vector<ShownLogprob> logprobs;
    /// Once the choice has ended: its finish reason ("stop", "length").
    const char *finish = nullptr;
    /// Whether a stop string ended it: its request should be cancelled.
    bool stopped = false;
    /// Set when the request failed (its error) or was cancelled by a
    /// shutdown (ok).
    std::optional<kvrt::Status> failure;
  };
  Piece absorb(kvrt::Request::Update update);

  /// Sampled tokens received.
  size_t tokens() const { return tokens_; }
  /// The prompt's log probabilities received (with LogprobOptions::prompt).
  const std::vector<kvrt::TokenLogprob> &promptLogprobs() const {
    return promptLogprobs_;
  }

private:
  const kvrt::Tokenizer &tokenizer_;
  kvrt::TokenStreamDecoder decoder_;
  StopStringFilter stops_;
  const bool wantsLogprobs_;
  const size_t minTokens_;
  size_t tokens_ = 0;
  /// Each sampled token at its offset in the decoded text (before stop
  /// strings cut it), and how many have gone out.
  std::vector<ShownLogprob> logprobs_;
  size_t sentLogprobs_ = 0;
  /// Bytes decoded, and bytes that went out.
  size_t decodedLength_ = 0, sentText_ = 0;
  std::vector<kvrt::TokenLogprob> promptLogprobs_;
};

} // namespace kvopt::serve

#endif // KVOPT_TOOLS_KVOPT_SERVE_CHOICESTREAM_H
