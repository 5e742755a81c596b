//===- UnicodeTest.cpp - Character classes, UTF-8, GPT-2 byte mapping -----===//
#include "runtime/src/tokenizer/Unicode.h"
#include "runtime/src/tokenizer/ByteLevel.h"

#include <gtest/gtest.h>

using namespace kvrt::tokenizer;

namespace {

TEST(TokenizerUnicode, ClassesFollowOniguruma) {
  for (char32_t c : {U'a', U'Z', U'\u00e9', U'\u65e5', U'\u03a9', U'\u02b0'})
    EXPECT_TRUE(isLetter(c)) << std::hex << uint32_t(c);
  for (char32_t c : {U'5', U'\u00b2', U'\u2167', U'\u0663', U'\u00bd'})
    EXPECT_TRUE(isNumber(c)) << std::hex << uint32_t(c);
  // \s is White_Space: NEL and NBSP are in, U+001C and U+200B are not.
  for (char32_t c :
       {U'\t', U'\n', U'\u000b', U'\u0085', U'\u00a0', U'\u2028', U'\u3000'})
    EXPECT_TRUE(isSpace(c)) << std::hex << uint32_t(c);
  for (char32_t c : {U'\u001c', U'\u200b', U'_', U'a'})
    EXPECT_FALSE(isSpace(c)) << std::hex << uint32_t(c);
  // \w: marks, connector punctuation, circled letters, ZWJ; not U+00B2.
  for (char32_t c : {U'_', U'\u0301', U'\u24b6', U'\u200d', U'\u2160'})
    EXPECT_TRUE(isWordChar(c)) << std::hex << uint32_t(c);
  EXPECT_FALSE(isWordChar(U'\u00b2'));
  EXPECT_FALSE(isWordChar(U'-'));
  // Unicode 16.0: Ol Onal letters are letters; Unicode 17.0's are not yet.
  EXPECT_TRUE(isLetter(U'\U0001E5D0'));
  EXPECT_FALSE(isLetter(U'\U0001E6C0'));
  EXPECT_EQ(charClasses(0x10FFFF), 0);
}

TEST(TokenizerUnicode, LossyUtf8MatchesRust) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(toValidUtf8("ok \xC3\xA9"), "ok \xC3\xA9");
  // A truncated sequence is one maximal subpart: one U+FFFD.
  EXPECT_EQ(toValidUtf8("a\xF0\x90\x80z"), "a" + r + "z");
  EXPECT_EQ(toValidUtf8("\xE2\x82"), r);
  // Overlongs, surrogates and out-of-range leads: one U+FFFD per byte.
  EXPECT_EQ(toValidUtf8("\xC0\xAF"), r + r);
  EXPECT_EQ(toValidUtf8("\xED\xA0\x80"), r + r + r);
  EXPECT_EQ(toValidUtf8("\xF4\x90\x80\x80"), r + r + r + r);
  EXPECT_EQ(toValidUtf8("\xFF\x80"), r + r);
}

TEST(TokenizerUnicode, Utf8DecodeAndEncode) {
  for (char32_t c : {U'\u0024', U'\u00a2', U'\u20ac', U'\U00010348'}) {
    std::string s;
    appendUtf8(s, c);
    char32_t back;
    EXPECT_EQ(decodeUtf8(s, 0, back), s.size());
    EXPECT_EQ(back, c);
    EXPECT_EQ(lastChar("x" + s), c);
  }
}

TEST(TokenizerByteLevel, MapsBytesLikeGpt2) {
  EXPECT_EQ(byteLevelChar(' '), U'\u0120');  // 'Ġ'
  EXPECT_EQ(byteLevelChar('\n'), U'\u010a'); // 'Ċ'
  EXPECT_EQ(byteLevelChar(0x00), U'\u0100');
  EXPECT_EQ(byteLevelChar(0x7F), U'\u0121');
  EXPECT_EQ(byteLevelChar(0xAD), U'\u0143');
  EXPECT_EQ(byteLevelChar('a'), U'a');
  EXPECT_EQ(byteLevelChar(0xE9), U'\u00e9');
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(byteLevelByte(byteLevelChar(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(byteLevelByte(U' '), -1);
  EXPECT_EQ(byteLevelByte(U'\u0144'), -1);
}

TEST(TokenizerByteLevel, DecodesTokens) {
  EXPECT_EQ(byteLevelDecode("\xC4\xA0hello\xC4\x8A"), " hello\n");
  EXPECT_EQ(byteLevelDecode("\xC3\x83\xC2\xA9"), "\xC3\xA9"); // "Ã©" is é
  // A character that stands for no byte: the token is taken as it is.
  EXPECT_EQ(byteLevelDecode("<|im end|>"), "<|im end|>");
}

} // namespace
