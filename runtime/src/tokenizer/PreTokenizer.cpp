//===- PreTokenizer.cpp - Cutting byte-level text into words --------------===//
#include "runtime/src/tokenizer/PreTokenizer.h"

#include "runtime/src/tokenizer/Unicode.h"

#include <algorithm>

namespace kvrt::tokenizer {
namespace {

/// The text as code points, with the byte offset of each and of the end.
struct Chars {
  std::vector<char32_t> cp;
  std::vector<size_t> offset;

  explicit Chars(std::string_view text) {
    for (size_t pos = 0; pos < text.size();) {
      char32_t c;
      offset.push_back(pos);
      pos += decodeUtf8(text, pos, c);
      cp.push_back(c);
    }
    offset.push_back(text.size());
  }
  size_t size() const { return cp.size(); }
};

bool isNewline(char32_t c) { return c == '\r' || c == '\n'; }

/// [^\s\p{L}\p{N}]
bool isOther(char32_t c) {
  return !(charClasses(c) & (kLetter | kNumber | kSpace));
}

/// End of the run of characters satisfying `pred` that starts at `i`.
template <typename Pred> size_t runEnd(const Chars &s, size_t i, Pred pred) {
  while (i < s.size() && pred(s.cp[i]))
    ++i;
  return i;
}

/// \s+(?!\S)|\s+ at a whitespace character: a run followed by a word leaves
/// its last space to that word.
size_t matchSpaces(const Chars &s, size_t i) {
  size_t end = runEnd(s, i, isSpace);
  if (end == s.size() || end - i == 1)
    return end;
  return end - 1;
}

/// 's|'t|'re|'ve|'m|'ll|'d; with `foldCase`, as (?i:...) matches them in
/// Oniguruma, where U+017F LATIN SMALL LETTER LONG S folds to 's'.
size_t matchContraction(const Chars &s, size_t i, bool foldCase) {
  if (s.cp[i] != '\'' || i + 1 >= s.size())
    return i;
  auto fold = [&](char32_t c) -> char32_t {
    if (!foldCase)
      return c;
    if (c >= 'A' && c <= 'Z')
      return c - 'A' + 'a';
    return c == 0x017F ? 's' : c;
  };
  char32_t a = fold(s.cp[i + 1]);
  if (a == 's' || a == 't' || a == 'm' || a == 'd')
    return i + 2;
  if (i + 2 < s.size()) {
    char32_t b = fold(s.cp[i + 2]);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
        (a == 'l' && b == 'l'))
      return i + 3;
  }
  return i;
}

/// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+
///        |\s+(?!\S)|\s+
size_t matchGpt2(const Chars &s, size_t i) {
  size_t end = matchContraction(s, i, /*foldCase=*/false);
  if (end != i)
    return end;
  // The optional space only counts when the class after it matches.
  size_t j = s.cp[i] == ' ' && i + 1 < s.size() ? i + 1 : i;
  char32_t c = s.cp[j];
  if (isLetter(c))
    return runEnd(s, j, isLetter);
  if (isNumber(c))
    return runEnd(s, j, isNumber);
  if (isOther(c))
    return runEnd(s, j, isOther);
  return matchSpaces(s, i);
}

/// Llama-3 (`digitRun` 3) and Qwen2 (`digitRun` 1):
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digitRun}
/// | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t matchLlama3(const Chars &s, size_t i, size_t digitRun) {
  size_t end = matchContraction(s, i, /*foldCase=*/true);
  if (end != i)
    return end;
  char32_t c = s.cp[i];
  uint8_t cls = charClasses(c);
  if (cls & kLetter)
    return runEnd(s, i, isLetter);
  bool hasNext = i + 1 < s.size();
  if (!(cls & kNumber) && !isNewline(c) && hasNext && isLetter(s.cp[i + 1]))
    return runEnd(s, i + 1, isLetter);
  if (cls & kNumber)
    return std::min(runEnd(s, i, isNumber), i + digitRun);
  size_t j = c == ' ' && hasNext ? i + 1 : i;
  if (isOther(s.cp[j]))
    return runEnd(s, runEnd(s, j, isOther), isNewline);
  // Here c is whitespace: \s*[\r\n]+ ends after the run's last newline.
  size_t spacesEnd = runEnd(s, i, isSpace);
  for (size_t k = spacesEnd; k > i; --k)
    if (isNewline(s.cp[k - 1]))
      return k;
  return matchSpaces(s, i);
}

} // namespace

void splitWords(PreTokenizerKind kind, std::string_view text,
                std::vector<WordRange> &words) {
  if (text.empty())
    return;
  if (kind == PreTokenizerKind::None) {
    words.emplace_back(0, text.size());
    return;
  }
  Chars s(text);
  for (size_t i = 0; i < s.size();) {
    size_t end;
    switch (kind) {
    case PreTokenizerKind::Llama3:
      end = matchLlama3(s, i, 3);
      break;
    case PreTokenizerKind::Qwen2:
      end = matchLlama3(s, i, 1);
      break;
    default:
      end = matchGpt2(s, i);
      break;
    }
    words.emplace_back(s.offset[i], s.offset[end]);
    i = end;
  }
}

void splitDigits(std::string_view text, std::vector<WordRange> &pieces) {
  size_t start = 0;
  for (size_t pos = 0; pos < text.size();) {
    char32_t c;
    size_t n = decodeUtf8(text, pos, c);
    if (isNumber(c)) {
      if (start < pos)
        pieces.emplace_back(start, pos);
      pieces.emplace_back(pos, pos + n);
      start = pos + n;
    }
    pos += n;
  }
  if (start < text.size())
    pieces.emplace_back(start, text.size());
}

} // namespace kvrt::tokenizer
