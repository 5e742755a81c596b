//===- BpeTest.cpp - Merging by rank and by score -------------------------===//
#include "runtime/src/tokenizer/Bpe.h"

#include <gtest/gtest.h>

#include <string>

using namespace kvrt::tokenizer;

namespace {

TEST(TokenizerMergeTable, LowestRankFirst) {
  // a=0 b=1 c=2; "ab"=3 (rank 1), "bc"=4 (rank 0), "abc"=5 from a+bc.
  MergeTable merges;
  merges.add(0, 1, 1, 3);
  merges.add(1, 2, 0, 4);
  merges.add(0, 4, 2, 5);
  std::vector<int32_t> word = {0, 1, 2};
  merges.apply(word);
  EXPECT_EQ(word, (std::vector<int32_t>{5}));
  word = {0, 1, 0, 1};
  merges.apply(word);
  EXPECT_EQ(word, (std::vector<int32_t>{3, 3}));
}

TEST(TokenizerMergeTable, LeftmostFirstAmongEqualRanks) {
  // a=0, "aa"=1: "aaa" merges its first pair and keeps the last 'a'.
  MergeTable merges;
  merges.add(0, 0, 0, 1);
  std::vector<int32_t> word = {0, 0, 0};
  merges.apply(word);
  EXPECT_EQ(word, (std::vector<int32_t>{1, 0}));
  word = {0, 0, 0, 0, 0};
  merges.apply(word);
  EXPECT_EQ(word, (std::vector<int32_t>{1, 1, 0}));
}

TEST(TokenizerMergeTable, LaterDuplicateReplacesEarlier) {
  MergeTable merges;
  merges.add(0, 1, 0, 7);
  merges.add(0, 1, 5, 8);
  EXPECT_EQ(merges.size(), 1u);
  std::vector<int32_t> word = {0, 1};
  merges.apply(word);
  EXPECT_EQ(word, (std::vector<int32_t>{8}));
}

TEST(TokenizerScoreMerge, HighestScoreFirst) {
  std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc"};
  VocabMap vocab;
  for (size_t i = 0; i < tokens.size(); ++i)
    vocab[tokens[i]] = static_cast<int32_t>(i);
  std::vector<std::pair<size_t, size_t>> pieces;
  // "ab" then "c", or "a" then "bc": either way "abc" is in the vocabulary.
  scoreMerge("abc", vocab, {0, 0, 0, -1, -2, -3}, pieces);
  EXPECT_EQ(pieces, (std::vector<std::pair<size_t, size_t>>{{0, 3}}));
  // Without "abc" the higher-scoring pair wins.
  vocab.erase("abc");
  pieces.clear();
  scoreMerge("abc", vocab, {0, 0, 0, -1, -2, -3}, pieces);
  EXPECT_EQ(pieces, (std::vector<std::pair<size_t, size_t>>{{0, 2}, {2, 3}}));
  pieces.clear();
  scoreMerge("abc", vocab, {0, 0, 0, -2, -1, -3}, pieces);
  EXPECT_EQ(pieces, (std::vector<std::pair<size_t, size_t>>{{0, 1}, {1, 3}}));
}

TEST(TokenizerScoreMerge, KeepsMultiByteCharactersWhole) {
  VocabMap vocab;
  std::vector<std::pair<size_t, size_t>> pieces;
  scoreMerge("\xC3\xA9x", vocab, {}, pieces);
  EXPECT_EQ(pieces, (std::vector<std::pair<size_t, size_t>>{{0, 2}, {2, 3}}));
}

} // namespace
