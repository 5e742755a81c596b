//===- StreamDecoderTest.cpp - Decoding ids as they are generated ---------===//
#include "ToyTokenizers.h"

#include "kvrt/Json.h"
#include "kvrt/Tokenizer.h"

#include <gtest/gtest.h>

#include <random>

using kvrt::TokenStreamDecoder;
using Strings = std::vector<std::string>;

namespace {

Strings stream(const kvrt::Tokenizer &t, const std::vector<int32_t> &ids,
               bool skipSpecial) {
  TokenStreamDecoder decoder(t, skipSpecial);
  Strings out;
  for (int32_t id : ids)
    out.push_back(decoder.push(id));
  out.push_back(decoder.finish());
  return out;
}

TEST(TokenizerStreamDecoder, WaitsForWholeCharacters) {
  kvrt::Tokenizer t = toy::load(toy::byteLevelJson());
  // "é😀" as single bytes.
  EXPECT_EQ(stream(t, {195, 169, 240, 159, 152, 128}, false),
            (Strings{"", "\u00e9", "", "", "", "\U0001F600", ""}));
  // A byte that can never start a character is shown at once.
  EXPECT_EQ(stream(t, {97, 255, 98}, false), (Strings{"a", "\uFFFD", "b", ""}));
  // Unfinished at the end: finish() shows what is left.
  EXPECT_EQ(stream(t, {97, 226, 130}, false), (Strings{"a", "", "", "\uFFFD"}));
}

TEST(TokenizerStreamDecoder, KeepsMetaspaceSpacing) {
  kvrt::Tokenizer t = toy::load(toy::metaspaceJson());
  // <s> "▁a" "▁" <0xC3> <0xA9> "b": the first space is the prepended one.
  std::vector<int32_t> ids = {1, 263, 259, 198, 172, 261};
  EXPECT_EQ(stream(t, ids, true),
            (Strings{"", "a", " ", "", "\u00e9", "b", ""}));
  EXPECT_EQ(stream(t, {263, 198, 260}, false),
            (Strings{"a", "", "\uFFFDa", ""}));
  EXPECT_EQ(stream(t, {259, 259, 263}, false), (Strings{"", " ", " a", ""}));
}

TEST(TokenizerStreamDecoder, RandomIdsGiveDecodeExactly) {
  kvrt::Tokenizer t = toy::load(toy::byteLevelJson());
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> anyId(0, 262);
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> ids(rng() % 40);
    for (int32_t &id : ids)
      id = anyId(rng);
    std::string joined;
    for (const std::string &piece : stream(t, ids, true)) {
      EXPECT_TRUE(kvrt::json::isValidUtf8(piece));
      joined += piece;
    }
    EXPECT_EQ(joined, t.decode(ids, true));
  }
}

} // namespace
