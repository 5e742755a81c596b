//===- TokenStreamDecoder.cpp - Decoding generated ids as they come -------===//
//
// Each new id is decoded together with the ids of the last emitted chunk, so
// that spacing rules (the metaspace decoder drops the first space of a text)
// see the same context as decode() of everything. Text is held back while
// its bytes end inside a character.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

namespace kvrt {
namespace {

/// Tokens held back before their text is emitted as it stands: far more
/// than any character needs, unless tokens decode to nothing.
constexpr size_t kMaxPendingTokens = 16;

/// The part of `text` after `emitted`. When they disagree (byte tokens that
/// made a character no longer do), starts at the next character boundary so
/// the output stays valid UTF-8.
std::string newText(const std::string &text, const std::string &emitted) {
  size_t from = std::min(emitted.size(), text.size());
  if (text.compare(0, from, emitted) != 0)
    while (from < text.size() &&
           (static_cast<uint8_t>(text[from]) & 0xC0) == 0x80)
      ++from;
  return text.substr(from);
}

} // namespace

std::string TokenStreamDecoder::push(int32_t id) {
  // Skipped tokens decode to nothing; keeping them would only grow window_.
  if (skipSpecial_ && tokenizer_.isSpecial(id))
    return {};
  window_.push_back(id);
  if (window_.size() - emittedTokens_ < kMaxPendingTokens &&
      tokenizer_.endsInsideCharacter(window_, skipSpecial_))
    return {};
  std::string text = tokenizer_.decode(window_, skipSpecial_);
  if (text.size() <= emittedText_.size() &&
      window_.size() - emittedTokens_ < kMaxPendingTokens)
    return {};
  std::string out = newText(text, emittedText_);
  window_.erase(window_.begin(), window_.begin() + emittedTokens_);
  emittedTokens_ = window_.size();
  emittedText_ = tokenizer_.decode(window_, skipSpecial_);
  return out;
}

std::string TokenStreamDecoder::finish() {
  std::string out =
      newText(tokenizer_.decode(window_, skipSpecial_), emittedText_);
  window_.clear();
  emittedTokens_ = 0;
  emittedText_.clear();
  return out;
}

} // namespace kvrt
