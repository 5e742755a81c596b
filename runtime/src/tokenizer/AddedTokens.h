//===- AddedTokens.h - Finding added tokens in text -------------*- C++ -*-===//
//
// Added and special tokens are cut out of the text before anything else
// sees it, the way tokenizers' AddedVocabulary does: an automaton finds
// non-overlapping matches, leftmost first and then longest, and each match
// is then checked (single_word) and widened (lstrip, rstrip).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_ADDEDTOKENS_H
#define KVRT_TOKENIZER_ADDEDTOKENS_H

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvrt::tokenizer {

/// A token to look for, with its matching rules.
struct AddedPattern {
  std::string text;
  int32_t id;
  bool lstrip;
  bool rstrip;
  bool singleWord;
};

/// A piece of text: an added token (id >= 0) or plain text (id -1), as byte
/// offsets [begin, end).
struct TextPiece {
  size_t begin;
  size_t end;
  int32_t id;
};

/// A set of patterns and the search over them.
class AddedTokenMatcher {
public:
  AddedTokenMatcher() = default;
  /// Patterns with empty text are ignored, as tokenizers ignores them.
  explicit AddedTokenMatcher(std::vector<AddedPattern> patterns);

  bool empty() const { return patterns_.empty(); }

  /// Appends the pieces of `text`, covering it all, in order; plain pieces
  /// are never empty.
  void split(std::string_view text, std::vector<TextPiece> &pieces) const;

private:
  /// The longest pattern starting at `pos`, or -1.
  int32_t longestAt(std::string_view text, size_t pos) const;

  /// A trie node: sorted edges by byte, and the pattern ending here.
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> edges;
    int32_t pattern = -1;
  };
  std::vector<AddedPattern> patterns_;
  std::vector<Node> nodes_;
  /// Bytes that start some pattern, to skip the rest quickly.
  std::bitset<256> firstBytes_;
};

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_ADDEDTOKENS_H
