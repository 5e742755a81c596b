//===- Unicode.h - Character classes and UTF-8 ------------------*- C++ -*-===//
//
// The classes the pre-tokenizer regexes use (\p{L}, \p{N}, \s, \w), from
// generated range tables (Unicode 16.0, as Oniguruma in `tokenizers`), and
// the UTF-8 reading and writing every stage needs.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_UNICODE_H
#define KVRT_TOKENIZER_UNICODE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvrt::tokenizer {

/// Bits returned by charClasses().
enum CharClass : uint8_t {
  /// General category L* (\p{L}).
  kLetter = 1,
  /// General category N* (\p{N}, Rust's char::is_numeric).
  kNumber = 2,
  /// White_Space (\s, Rust's char::is_whitespace).
  kSpace = 4,
  /// Rust regex's \w: Alphabetic, marks, Nd, Pc, Join_Control.
  kWord = 8,
};

/// The CharClass bits of `cp`.
uint8_t charClasses(char32_t cp);

inline bool isLetter(char32_t cp) { return charClasses(cp) & kLetter; }
inline bool isNumber(char32_t cp) { return charClasses(cp) & kNumber; }
inline bool isSpace(char32_t cp) { return charClasses(cp) & kSpace; }
inline bool isWordChar(char32_t cp) { return charClasses(cp) & kWord; }

/// U+FFFD, the replacement for malformed input.
constexpr char32_t kReplacementChar = 0xFFFD;

/// U+2581 LOWER ONE EIGHTH BLOCK in UTF-8: SentencePiece's space.
constexpr std::string_view kMetaspace = "\xE2\x96\x81";

/// Decodes the character at `text[pos]` of well-formed UTF-8 into `cp` and
/// returns its length in bytes.
size_t decodeUtf8(std::string_view text, size_t pos, char32_t &cp);

/// Decodes the last character of non-empty well-formed UTF-8.
char32_t lastChar(std::string_view text);

/// Appends the UTF-8 encoding of `cp`.
void appendUtf8(std::string &out, char32_t cp);

/// True when `bytes` ends with the start of a UTF-8 sequence that more bytes
/// could complete.
bool endsInsideCharacter(std::string_view bytes);

/// `bytes` with each maximal malformed subsequence replaced by one U+FFFD,
/// exactly as Rust's String::from_utf8_lossy.
std::string toValidUtf8(std::string_view bytes);

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_UNICODE_H
