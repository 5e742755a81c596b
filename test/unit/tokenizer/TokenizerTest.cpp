//===- TokenizerTest.cpp - Encoding and decoding whole texts --------------===//
//
// Expected ids come from the Python `tokenizers` package (0.23) given the
// same tokenizer.json.
//
//===----------------------------------------------------------------------===//
#include "ToyTokenizers.h"

#include "kvrt/Tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

using kvrt::Tokenizer;
using Ids = std::vector<int32_t>;

namespace {

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Tokenizer tinyStories() {
  std::string dir = std::string(KVOPT_TEST_MODELS_DIR) + "/tinystories-656k/";
  return toy::load(readFile(dir + "tokenizer.json"),
                   readFile(dir + "tokenizer_config.json"));
}

TEST(Tokenizer, TinyStoriesEncodesLikeTokenizers) {
  Tokenizer t = tinyStories();
  EXPECT_EQ(t.encode("Once upon a time", true),
            (Ids{1, 80, 147, 201, 282, 57}));
  EXPECT_EQ(t.encode("Hi", false), (Ids{80, 1158}));
  EXPECT_EQ(t.encode("", true), (Ids{1}));
  EXPECT_EQ(t.encode("  a  b ", true), (Ids{1, 80, 80, 104, 80, 1927}));
  // No byte tokens in this vocabulary: unknown characters are <unk>, fused.
  EXPECT_EQ(t.encode("h\u00e9llo \u65e5\u672c \U0001F600", true),
            (Ids{1, 141, 0, 113, 139, 0, 80, 0}));
  EXPECT_EQ(t.bosId(), 1);
  EXPECT_EQ(t.eosId(), 2);
  EXPECT_EQ(t.unkId(), 0);
  EXPECT_EQ(t.padId(), 0);
  EXPECT_EQ(t.vocabSize(), 2048u);
  EXPECT_EQ(t.chatTemplate().kind, kvrt::ChatTemplateKind::None);
}

TEST(Tokenizer, TinyStoriesSpecialTokensMatchNormalized) {
  Tokenizer t = tinyStories();
  // Its special tokens are "normalized": matched after '▁' replaced spaces,
  // so only where a space (or the start) comes before them.
  EXPECT_EQ(t.encode("Hello <|start_story|>x", true),
            (Ids{1, 80, 1288, 67, 1, 76}));
  EXPECT_EQ(t.encode("a<|start_story|>", true), (Ids{1, 85, 208, 212, 210}));
  EXPECT_EQ(t.encode("x <unk> y", true), (Ids{1, 80, 76, 0, 80, 77}));
  // And decoded from that form, as tokenizers 0.23 does.
  EXPECT_EQ(t.decode({1, 80, 1288, 67, 1, 76}, false),
            "<|start_story|> Hello <|start_story|>x");
  EXPECT_EQ(t.decode({1, 80, 1288, 67, 1, 76}, true), "Hellox");
  EXPECT_TRUE(t.isSpecial(2));
  EXPECT_FALSE(t.isSpecial(80));
}

TEST(Tokenizer, ByteFallback) {
  Tokenizer t = toy::load(toy::metaspaceJson());
  EXPECT_EQ(t.encode("ab", true), (Ids{1, 259, 264}));
  EXPECT_EQ(t.encode("a b", true), (Ids{1, 263, 259, 261}));
  EXPECT_EQ(t.encode("abc ab", true), (Ids{1, 259, 266, 259, 264}));
  EXPECT_EQ(t.encode(" a", true), (Ids{1, 259, 263}));
  // Characters outside the vocabulary become their UTF-8 bytes.
  EXPECT_EQ(t.encode("\u00e9", true), (Ids{1, 259, 198, 172}));
  EXPECT_EQ(t.encode("a\u65e5b", true), (Ids{1, 263, 233, 154, 168, 261}));
  EXPECT_EQ(t.decode({1, 263, 233, 154, 168, 261}, true), "a\u65e5b");
  // Byte tokens that do not form UTF-8 decode to U+FFFD each.
  EXPECT_EQ(t.decode({198, 172, 259, 3 + 0xE2, 3 + 0x82, 260}, false),
            "\u00e9 \uFFFD\uFFFDa");
}

TEST(Tokenizer, MetaspaceSpecialTokensSplitTheText) {
  Tokenizer t = toy::load(toy::metaspaceJson());
  // "</s>" is matched in the raw text; each piece around it gets its '▁'.
  EXPECT_EQ(t.encode("</s>a", true), (Ids{1, 2, 263}));
  EXPECT_EQ(t.encode("a</s>", true), (Ids{1, 263, 2}));
  EXPECT_EQ(t.decode({1, 2, 263}, false), "<s></s> a");
  EXPECT_EQ(t.decode({1, 2, 263}, true), "a");
  EXPECT_EQ(t.encode("", true), (Ids{1}));
  EXPECT_EQ(t.encode("", false), Ids{});
}

TEST(Tokenizer, AddedTokenRules) {
  Tokenizer t = toy::load(toy::byteLevelJson());
  EXPECT_EQ(t.encode("the the", false), (Ids{258, 259}));
  // lstrip and rstrip take the whitespace around "<m>", Unicode spaces too.
  EXPECT_EQ(t.encode("a <m> b", false), (Ids{97, 260, 98}));
  EXPECT_EQ(t.encode("a\t<m>\t<m>\u2000b", false), (Ids{97, 260, 260, 98}));
  EXPECT_EQ(t.encode("x<r>  y", false), (Ids{120, 261, 121}));
  // "<w>" only matches when no word character touches it: '_' and
  // combining marks are word characters, '-' is not.
  EXPECT_EQ(t.encode("<w> a<w> _<w> -<w> \u0301<w>", false),
            (Ids{262, 32, 97, 60,  119, 62,  32,  95, 60,  119,
                 62,  32, 45, 262, 32,  204, 129, 60, 119, 62}));
  EXPECT_EQ(t.decode({97, 260, 261, 98}, true), "a<r>b");
}

TEST(Tokenizer, DecodeRoundTrip) {
  Tokenizer t = toy::load(toy::byteLevelJson());
  for (std::string text :
       {"the the", "  spaces\n\n\tand tabs ", "\u00e9\U0001F600 caf\u00e9",
        "\U0001F468\u200d\U0001F469\u200d\U0001F467 "
        "\u0645\u0631\u062d\u0628\u0627",
        "line\r\nbreak 123"})
    EXPECT_EQ(t.decode(t.encode(text, true), false), text);
  // Malformed input is read as U+FFFD; ids out of range are skipped.
  EXPECT_EQ(t.decode(t.encode("a\xFF", true), false), "a\uFFFD");
  EXPECT_EQ(t.decode({97, -1, 100000, 98}, false), "ab");
}

TEST(Tokenizer, CopiesShareTables) {
  Tokenizer t = toy::load(toy::byteLevelJson());
  Tokenizer copy = t;
  EXPECT_EQ(&copy.spec(), &t.spec());
  EXPECT_EQ(copy.tokenText(256), "\u0120t");
  EXPECT_EQ(copy.tokenText(-3), "");
}

} // namespace
