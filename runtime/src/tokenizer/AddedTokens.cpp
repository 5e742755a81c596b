//===- AddedTokens.cpp - Finding added tokens in text ---------------------===//
#include "runtime/src/tokenizer/AddedTokens.h"

#include "runtime/src/tokenizer/Unicode.h"

#include <algorithm>

namespace kvrt::tokenizer {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedPattern> patterns) {
  nodes_.emplace_back();
  for (AddedPattern &p : patterns) {
    if (p.text.empty())
      continue;
    int32_t node = 0;
    for (char ch : p.text) {
      uint8_t byte = static_cast<uint8_t>(ch);
      auto &edges = nodes_[node].edges;
      auto it = std::lower_bound(edges.begin(), edges.end(), byte,
                                 [](const std::pair<uint8_t, int32_t> &e,
                                    uint8_t b) { return e.first < b; });
      if (it != edges.end() && it->first == byte) {
        node = it->second;
        continue;
      }
      int32_t child = static_cast<int32_t>(nodes_.size());
      edges.insert(it, {byte, child});
      nodes_.emplace_back();
      node = child;
    }
    // The same text twice: the first one added wins, as in the automaton.
    if (nodes_[node].pattern < 0) {
      nodes_[node].pattern = static_cast<int32_t>(patterns_.size());
      firstBytes_.set(static_cast<uint8_t>(p.text[0]));
      patterns_.push_back(std::move(p));
    }
  }
}

int32_t AddedTokenMatcher::longestAt(std::string_view text, size_t pos) const {
  int32_t node = 0, found = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    uint8_t byte = static_cast<uint8_t>(text[i]);
    const auto &edges = nodes_[node].edges;
    auto it = std::lower_bound(edges.begin(), edges.end(), byte,
                               [](const std::pair<uint8_t, int32_t> &e,
                                  uint8_t b) { return e.first < b; });
    if (it == edges.end() || it->first != byte)
      break;
    node = it->second;
    if (nodes_[node].pattern >= 0)
      found = nodes_[node].pattern;
  }
  return found;
}

namespace {

/// Start of the whitespace that ends text[0, end) (Rust regex \s*$).
size_t trailingSpaceStart(std::string_view text, size_t end) {
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80)
      --start;
    char32_t c;
    decodeUtf8(text, start, c);
    if (!isSpace(c))
      break;
    end = start;
  }
  return end;
}

/// End of the whitespace that starts text[begin, ...) (Rust regex ^\s*).
size_t leadingSpaceEnd(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    char32_t c;
    size_t n = decodeUtf8(text, begin, c);
    if (!isSpace(c))
      break;
    begin += n;
  }
  return begin;
}

} // namespace

void AddedTokenMatcher::split(std::string_view text,
                              std::vector<TextPiece> &pieces) const {
  size_t covered = 0;
  for (size_t pos = 0; !empty() && pos < text.size();) {
    if (!firstBytes_.test(static_cast<uint8_t>(text[pos]))) {
      ++pos;
      continue;
    }
    int32_t index = longestAt(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedPattern &p = patterns_[index];
    size_t start = pos, stop = pos + p.text.size();
    // The search goes on after this match even when the rules drop it.
    pos = stop;
    if (p.singleWord) {
      char32_t after = 0;
      if (stop < text.size())
        decodeUtf8(text, stop, after);
      if ((start > 0 && isWordChar(lastChar(text.substr(0, start)))) ||
          isWordChar(after))
        continue;
    }
    if (p.lstrip)
      start = std::max(trailingSpaceStart(text, start), covered);
    if (p.rstrip)
      stop = leadingSpaceEnd(text, stop);
    if (covered < start)
      pieces.push_back(TextPiece{covered, start, -1});
    pieces.push_back(TextPiece{start, stop, p.id});
    covered = stop;
  }
  if (covered < text.size())
    pieces.push_back(TextPiece{covered, text.size(), -1});
}

} // namespace kvrt::tokenizer
