//===- PasskeyTest.cpp - The passkey prompts and answers ------------------===//
#include "tools/kvopt/Passkey.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace {
using kvopt::cli::isPasskeyAnswer;
using kvopt::cli::kPasskeyAnswerTokens;
using kvopt::cli::PasskeyOptions;
using kvopt::cli::PasskeyTrial;
using kvopt::cli::passkeyTrials;

std::string readFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

kvrt::Tokenizer tinyStories() {
  std::string dir = std::string(KVOPT_TEST_MODELS_DIR) + "/tinystories-656k/";
  auto spec = kvrt::tokenizerSpecFromJson(
      readFile(dir + "tokenizer.json"), readFile(dir + "tokenizer_config.json"),
      "tinystories");
  EXPECT_TRUE(spec) << spec.status().message();
  auto tokenizer = kvrt::Tokenizer::create(std::move(*spec));
  EXPECT_TRUE(tokenizer) << tokenizer.status().message();
  return std::move(*tokenizer);
}

/// Where `part` starts in `whole`, or -1.
int64_t find(const std::vector<int32_t> &whole,
             const std::vector<int32_t> &part) {
  auto at = std::search(whole.begin(), whole.end(), part.begin(), part.end());
  return at == whole.end() ? -1 : int64_t(at - whole.begin());
}

TEST(Passkey, AnswerIsTheFirstRunOfDigits) {
  EXPECT_TRUE(isPasskeyAnswer("47155", " 47155."));
  EXPECT_TRUE(isPasskeyAnswer("47155", "47155"));
  EXPECT_TRUE(isPasskeyAnswer("47155", "is 47155, not 12345"));
  EXPECT_FALSE(isPasskeyAnswer("47155", "12345, not 47155"));
  EXPECT_FALSE(isPasskeyAnswer("47155", " 471556"));
  EXPECT_FALSE(isPasskeyAnswer("47155", " 4715"));
  EXPECT_FALSE(isPasskeyAnswer("47155", "a key to a door"));
  EXPECT_FALSE(isPasskeyAnswer("47155", ""));
}

TEST(Passkey, KeysAreFixedBySeedAndPlace) {
  kvrt::Tokenizer tokenizer = tinyStories();
  PasskeyOptions options{{200, 300}, {0, 1}, 3, 0, false};
  auto trials = passkeyTrials(tokenizer, options, "tinystories");
  ASSERT_TRUE(trials) << trials.status().message();
  ASSERT_EQ(trials->size(), 12u);
  // kvrt::randomBits is the same on every machine: a golden value.
  EXPECT_EQ((*trials)[0].key, "47155");
  auto again = passkeyTrials(tokenizer, options, "tinystories");
  ASSERT_TRUE(again);
  options.seed = 1;
  auto other = passkeyTrials(tokenizer, options, "tinystories");
  ASSERT_TRUE(other);
  for (size_t t = 0; t < trials->size(); ++t) {
    const PasskeyTrial &trial = (*trials)[t];
    EXPECT_EQ(trial.length, t / 6);
    EXPECT_EQ(trial.depth, t / 3 % 2);
    EXPECT_EQ(trial.key.size(), 5u);
    EXPECT_NE(trial.key[0], '0');
    EXPECT_EQ(trial.prompt, (*again)[t].prompt);
    EXPECT_NE(trial.key, (*other)[t].key);
  }
}

TEST(Passkey, PromptFitsAndHidesTheKeyAtItsDepth) {
  kvrt::Tokenizer tokenizer = tinyStories();
  PasskeyOptions options{{256, 512}, {0, 0.5, 1}, 1, 3, false};
  auto trials = passkeyTrials(tokenizer, options, "tinystories");
  ASSERT_TRUE(trials) << trials.status().message();
  std::vector<int32_t> head = tokenizer.encode(
      "A pass key is hidden somewhere in the long text below, among many "
      "sentences that do not matter. Find it and remember it: you will be "
      "asked for it at the end.",
      true);
  std::vector<int32_t> tail =
      tokenizer.encode("\n\nWhat is the pass key? The pass key is", false);
  for (const PasskeyTrial &trial : *trials) {
    int64_t length = options.lengths[trial.length];
    int64_t size = int64_t(trial.prompt.size());
    // Whole filler sentences (at most 20 tokens here) fill the budget.
    EXPECT_LE(size, length - kPasskeyAnswerTokens);
    EXPECT_GT(size, length - kPasskeyAnswerTokens - 20);
    EXPECT_EQ(find(trial.prompt, head), 0);
    EXPECT_EQ(find(trial.prompt, tail), size - int64_t(tail.size()));
    std::vector<int32_t> key =
        tokenizer.encode(" The pass key is " + trial.key + ". Remember it. " +
                             trial.key + " is the pass key.",
                         false);
    int64_t at = find(trial.prompt, key);
    ASSERT_GE(at, 0);
    // The key's place within the filler, to a sentence.
    int64_t filler = size - int64_t(head.size() + key.size() + tail.size());
    double depth = double(at - int64_t(head.size())) / double(filler);
    EXPECT_NEAR(depth, options.depths[trial.depth], 0.05) << trial.key;
  }
}

TEST(Passkey, RefusesLengthsTooShortAndChatWithoutTemplate) {
  kvrt::Tokenizer tokenizer = tinyStories();
  auto trials =
      passkeyTrials(tokenizer, {{64}, {0.5}, 1, 0, false}, "tinystories");
  ASSERT_FALSE(trials);
  EXPECT_NE(trials.status().message().find(
                "--lengths 64 is too short for the passkey prompt"),
            std::string::npos);
  trials = passkeyTrials(tokenizer, {{256}, {0.5}, 1, 0, true}, "tinystories");
  ASSERT_FALSE(trials);
  EXPECT_EQ(trials.status().message(),
            "tinystories has no chat template; use --template plain");
}
} // namespace
