//===- TokenizerGgufTest.cpp - TokenizerSpec from GGUF metadata -----------===//
#include "runtime/src/tokenizer/ByteLevel.h"

#include "kvrt/Tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <stdexcept>

using kvrt::GgufTokenizerFields;
using Ids = std::vector<int32_t>;

namespace {

/// A byte-level vocabulary: the 256 byte characters, "Ġt", "he", "the",
/// "<|im_start|>" (control) and "<|im_end|>" (control).
GgufTokenizerFields gpt2Fields() {
  GgufTokenizerFields g;
  g.model = "gpt2";
  g.pre = "smollm";
  for (int b = 0; b < 256; ++b)
    g.tokens.push_back(kvrt::tokenizer::byteLevelText(static_cast<uint8_t>(b)));
  g.tokens.insert(g.tokens.end(),
                  {"\u0120t", "he", "the", "<|im_start|>", "<|im_end|>"});
  g.tokenTypes.assign(g.tokens.size(), 1);
  g.tokenTypes[259] = g.tokenTypes[260] = 3;
  g.merges = {"\u0120 t", "h e", "t he"};
  g.bosId = 259;
  g.eosId = 260;
  g.chatTemplate = "{{'<|im_start|>system\nBe brief.<|im_end|>\n'}}";
  return g;
}

/// A SentencePiece vocabulary: <unk>, <s>, </s>, byte tokens, then pieces
/// with scores.
GgufTokenizerFields llamaFields() {
  GgufTokenizerFields g;
  g.model = "llama";
  g.tokens = {"<unk>", "<s>", "</s>"};
  g.tokenTypes = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    g.tokens.push_back(name);
    g.tokenTypes.push_back(6);
  }
  // 259 "▁" 260 "a" 261 "b" 262 "▁a" 263 "ab" 264 "▁ab"
  for (const char *piece : {"\u2581", "a", "b", "\u2581a", "ab", "\u2581ab"}) {
    g.tokens.push_back(piece);
    g.tokenTypes.push_back(1);
  }
  g.scores.assign(g.tokens.size(), 0.0f);
  g.scores[262] = -1; // "▁a"
  g.scores[263] = -2; // "ab"
  g.scores[264] = -3; // "▁ab"
  return g;
}

kvrt::Tokenizer build(const GgufTokenizerFields &g) {
  auto spec = kvrt::tokenizerSpecFromGgufMetadata(g, "m.gguf");
  if (!spec)
    throw std::runtime_error(spec.status().message());
  auto t = kvrt::Tokenizer::create(std::move(*spec));
  if (!t)
    throw std::runtime_error(t.status().message());
  return std::move(*t);
}

std::string errorOf(const GgufTokenizerFields &g) {
  auto spec = kvrt::tokenizerSpecFromGgufMetadata(g, "m.gguf");
  return spec ? "" : spec.status().message();
}

TEST(TokenizerGguf, ByteLevelVocabulary) {
  kvrt::Tokenizer t = build(gpt2Fields());
  // The space before a special token is a word of its own.
  EXPECT_EQ(t.encode("the <|im_start|>t12", true),
            (Ids{258, ' ', 259, 't', '1', '2'}));
  EXPECT_EQ(t.encode(" the 1", true), (Ids{256, 257, ' ', '1'}));
  EXPECT_FALSE(t.spec().addBos);
  EXPECT_EQ(t.bosId(), 259);
  EXPECT_TRUE(t.isSpecial(260));
  EXPECT_EQ(t.decode({258, 260, 256}, true), "the t");
  EXPECT_EQ(t.chatTemplate().kind, kvrt::ChatTemplateKind::ChatML);
  EXPECT_EQ(t.chatTemplate().defaultSystemPrompt, "Be brief.");
}

TEST(TokenizerGguf, ScoreMergedVocabulary) {
  kvrt::Tokenizer t = build(llamaFields());
  EXPECT_EQ(t.encode("ab", true), (Ids{1, 264}));
  // Without "▁ab", the higher score of "▁a" and "ab" decides.
  GgufTokenizerFields g = llamaFields();
  g.tokens[264] = "\u2581z";
  EXPECT_EQ(build(g).encode("ab", false), (Ids{262, 261}));
  std::swap(g.scores[262], g.scores[263]);
  EXPECT_EQ(build(g).encode("ab", false), (Ids{259, 263}));
  // The space prefix comes back after every special token.
  EXPECT_EQ(t.encode("a</s>a", false), (Ids{262, 2, 262}));
  // Characters without a piece become byte tokens.
  EXPECT_EQ(t.encode("\u00e9", false), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.decode({1, 262, 261, 259, 3 + 0xC3, 3 + 0xA9}, true),
            "ab \u00e9");
}

TEST(TokenizerGguf, RejectsBadFields) {
  GgufTokenizerFields g = gpt2Fields();
  g.model = "bert";
  EXPECT_NE(errorOf(g).find("m.gguf: tokenizer.ggml.model is 'bert'"),
            std::string::npos);
  g = gpt2Fields();
  g.pre = "falcon";
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.pre is 'falcon'; supported:"),
            std::string::npos);
  g = gpt2Fields();
  g.bosId = 1000000;
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.bos_token_id is 1000000, "
                            "outside the 261 token vocabulary"),
            std::string::npos);
  g = gpt2Fields();
  g.eosId = -1;
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.eos_token_id is -1"),
            std::string::npos);
  g = gpt2Fields();
  g.tokenTypes[7] = 42;
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.token_type[7] is 42"),
            std::string::npos);
  g = gpt2Fields();
  g.tokenTypes.pop_back();
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.token_type has 260 entries for "
                            "261 tokens"),
            std::string::npos);
  g = gpt2Fields();
  g.merges.push_back("nospace");
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.merges[3] 'nospace' is not two "
                            "tokens"),
            std::string::npos);
  g = gpt2Fields();
  g.merges.push_back("x \u0120q");
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.merges[3] ('x' '\u0120q') names "
                            "'\u0120q', which is not in the vocabulary"),
            std::string::npos);
  g = gpt2Fields();
  g.tokens[5] = "\xFF";
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.tokens[5] is not valid UTF-8"),
            std::string::npos);
  g = llamaFields();
  g.scores.pop_back();
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.scores has 264 entries for 265"),
            std::string::npos);
  g = gpt2Fields();
  g.tokens.clear();
  g.tokenTypes.clear();
  EXPECT_NE(errorOf(g).find("tokenizer.ggml.tokens has 0 entries"),
            std::string::npos);
}

} // namespace
