//===- ChoiceStream.cpp ---------------------------------------------------===//
#include "tools/kvopt/serve/ChoiceStream.h"

namespace kvopt::serve {

ShownLogprob showLogprob(const kvrt::Tokenizer &tokenizer, int32_t token,
                         size_t offset, const kvrt::TokenLogprob *logprob) {
  ShownLogprob shown{tokenizer.decode({token}, false), offset, {}, {}};
  if (logprob) {
    shown.logprob = logprob->logprob;
    for (const auto &[id, value] : logprob->top)
      shown.top.push_back({tokenizer.decode({id}, false), value});
  }
  return shown;
}

ChoiceStream::ChoiceStream(const kvrt::Tokenizer &tokenizer,
                           std::vector<std::string> stop, bool wantsLogprobs,
                           size_t minTokens)
    : tokenizer_(tokenizer), decoder_(tokenizer, /*skipSpecial=*/true),
      stops_(std::move(stop)), wantsLogprobs_(wantsLogprobs),
      minTokens_(minTokens) {}

ChoiceStream::Piece ChoiceStream::absorb(kvrt::Request::Update update) {
  Piece piece;
  for (kvrt::TokenLogprob &l : update.promptLogprobs)
    promptLogprobs_.push_back(std::move(l));
  // The text of the first minTokens tokens goes out unsearched.
  std::string early, decoded;
  for (size_t k = 0; k < update.tokens.size(); ++k) {
    if (wantsLogprobs_ && k < update.logprobs.size())
      logprobs_.push_back(showLogprob(tokenizer_, update.tokens[k],
                                      decodedLength_, &update.logprobs[k]));
    std::string text = decoder_.push(update.tokens[k]);
    decodedLength_ += text.size();
    (tokens_++ < minTokens_ ? early : decoded) += text;
  }
  if (update.end)
    (tokens_ < minTokens_ ? early : decoded) += decoder_.finish();
  piece.text = early + stops_.push(decoded);
  if (stops_.stopped()) {
    piece.stopped = true;
    piece.finish = "stop";
  } else if (update.end) {
    // A request its client still waits for is cancelled only by a
    // shutdown.
    if (!update.error.isOk() || *update.end == kvrt::StopReason::Cancelled) {
      piece.failure = update.error;
      piece.text.clear();
      return piece;
    }
    piece.text += stops_.finish();
    piece.finish =
        *update.end == kvrt::StopReason::StopToken ? "stop" : "length";
  }
  sentText_ += piece.text.size();
  // The tokens whose text has begun to go out; at the end, all that no stop
  // string cut.
  while (sentLogprobs_ < logprobs_.size() &&
         (logprobs_[sentLogprobs_].offset < sentText_ ||
          (piece.finish && !stops_.stopped())))
    piece.logprobs.push_back(logprobs_[sentLogprobs_++]);
  return piece;
}

} // namespace kvopt::serve
