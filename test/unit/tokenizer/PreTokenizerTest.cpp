//===- PreTokenizerTest.cpp - The hand-written pre-tokenizer regexes ------===//
//
// Expected words are what `tokenizers` (Oniguruma) gives for the same regex.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/tokenizer/PreTokenizer.h"

#include <gtest/gtest.h>

using kvrt::PreTokenizerKind;
using Words = std::vector<std::string>;

namespace {

Words split(PreTokenizerKind kind, const std::string &text) {
  std::vector<kvrt::tokenizer::WordRange> pieces, words;
  if (kind == PreTokenizerKind::SmolLM)
    kvrt::tokenizer::splitDigits(text, pieces);
  else
    pieces.emplace_back(0, text.size());
  Words out;
  for (auto [begin, end] : pieces) {
    words.clear();
    std::string piece = text.substr(begin, end - begin);
    kvrt::tokenizer::splitWords(kind, piece, words);
    for (auto [b, e] : words)
      out.push_back(piece.substr(b, e - b));
  }
  return out;
}

TEST(TokenizerPreTokenizer, Gpt2Contractions) {
  EXPECT_EQ(split(PreTokenizerKind::Gpt2,
                  "I'm sure they'll say it's fine, don't you?"),
            (Words{"I", "'m", " sure", " they", "'ll", " say", " it", "'s",
                   " fine", ",", " don", "'t", " you", "?"}));
  // GPT-2's contractions are case-sensitive.
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "IT'S WE'LL"),
            (Words{"IT", "'", "S", " WE", "'", "LL"}));
}

TEST(TokenizerPreTokenizer, Gpt2Whitespace) {
  // A run of spaces leaves its last one to the next word.
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "line  \n next"),
            (Words{"line", "  \n", " next"}));
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "trailing   "),
            (Words{"trailing", "   "}));
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "\t\tcode();\n"),
            (Words{"\t", "\t", "code", "();", "\n"}));
  // Only U+0020 joins the next word; other spaces stand alone.
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "x\u00a0 y\u3000z"),
            (Words{"x", "\u00a0", " y", "\u3000", "z"}));
}

TEST(TokenizerPreTokenizer, Gpt2DigitsEmojiCjkMarks) {
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, "1234567 x9"),
            (Words{"1234567", " x", "9"}));
  EXPECT_EQ(split(PreTokenizerKind::Gpt2,
                  "hi \U0001F44D\U0001F3FD! "
                  "\U0001F468\u200d\U0001F469\u200d\U0001F467"),
            (Words{"hi", " \U0001F44D\U0001F3FD!",
                   " \U0001F468\u200d\U0001F469\u200d\U0001F467"}));
  EXPECT_EQ(split(PreTokenizerKind::Gpt2,
                  "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002"
                  "\u6b21"),
            (Words{"\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u3002",
                   "\u6b21"}));
  // Combining marks are neither letters nor numbers.
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, " \u0301a e\u0301"),
            (Words{" \u0301", "a", " e", "\u0301"}));
}

TEST(TokenizerPreTokenizer, Llama3) {
  // Case-insensitive contractions; U+017F folds to 's'.
  EXPECT_EQ(split(PreTokenizerKind::Llama3, "IT'S We'LL it'\u017fx"),
            (Words{"IT", "'S", " We", "'LL", " it", "'\u017f", "x"}));
  EXPECT_EQ(split(PreTokenizerKind::Llama3, "a \n\n b  \n c\r\n\r\n  d"),
            (Words{"a", " \n\n", " b", "  \n", " c", "\r\n\r\n", " ", " d"}));
  EXPECT_EQ(split(PreTokenizerKind::Llama3, "12345 x"),
            (Words{"123", "45", " x"}));
  // A letter run takes one leading non-letter, not a newline.
  EXPECT_EQ(split(PreTokenizerKind::Llama3, "\tabc (def)"),
            (Words{"\tabc", " (", "def", ")"}));
  EXPECT_EQ(split(PreTokenizerKind::Llama3, "  \u00a0x"),
            (Words{"  ", "\u00a0x"}));
  EXPECT_EQ(split(PreTokenizerKind::Llama3, "end.\n\nNext"),
            (Words{"end", ".\n\n", "Next"}));
}

TEST(TokenizerPreTokenizer, Qwen2AndSmolLMSplitDigits) {
  EXPECT_EQ(split(PreTokenizerKind::Qwen2, "12345 x"),
            (Words{"1", "2", "3", "4", "5", " x"}));
  EXPECT_EQ(split(PreTokenizerKind::Qwen2, "v1.25"),
            (Words{"v", "1", ".", "2", "5"}));
  // Digits are cut out first, so the space before one stands alone.
  EXPECT_EQ(split(PreTokenizerKind::SmolLM, "year 2024!"),
            (Words{"year", " ", "2", "0", "2", "4", "!"}));
  EXPECT_EQ(split(PreTokenizerKind::SmolLM, "\u0661\u0662 \u00bd"),
            (Words{"\u0661", "\u0662", " ", "\u00bd"}));
}

TEST(TokenizerPreTokenizer, NoneKeepsTextWhole) {
  EXPECT_EQ(split(PreTokenizerKind::None, "a b  c"), (Words{"a b  c"}));
  EXPECT_EQ(split(PreTokenizerKind::Gpt2, ""), Words{});
}

} // namespace
