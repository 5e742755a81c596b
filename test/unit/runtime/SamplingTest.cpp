//===- SamplingTest.cpp - Greedy, temperature, top-k/p, penalties ---------===//
#include "kvrt/Sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

using namespace kvrt;

namespace {

Sampler make(SamplingParams p) {
  auto s = Sampler::create(p);
  EXPECT_TRUE(s.isOk());
  return *s;
}

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};

TEST(Sampling, GreedyPicksTheLowestIdOfTheMaximum) {
  Sampler s = make({});
  EXPECT_EQ(s.sample(kLogits.data(), kLogits.size(), {}), 1);
  std::vector<float> withNan = {NAN, 0.5f, 0.2f};
  EXPECT_EQ(s.sample(withNan.data(), withNan.size(), {}), 1);
}

// greedyToken, what Engine::stepGreedy returns: NaN as -inf, the lowest
// id among equal maxima, 0 when nothing is above -inf.
TEST(Sampling, GreedyTokenIsTheSamplersGreedyChoice) {
  EXPECT_EQ(greedyToken(kLogits.data(), kLogits.size()), 1);
  const std::vector<float> nanFirst = {NAN, -1.0f, -1.0f},
                           allInf = {-INFINITY, -INFINITY},
                           allNan = {NAN, NAN, NAN};
  EXPECT_EQ(greedyToken(nanFirst.data(), nanFirst.size()), 1);
  EXPECT_EQ(greedyToken(allInf.data(), allInf.size()), 0);
  EXPECT_EQ(greedyToken(allNan.data(), allNan.size()), 0);
  Sampler s = make({});
  for (const std::vector<float> *row : {&nanFirst, &allInf, &allNan})
    EXPECT_EQ(s.sample(row->data(), row->size(), {}),
              greedyToken(row->data(), row->size()));
}

TEST(Sampling, RepetitionPenaltyDemotesSeenTokens) {
  SamplingParams p;
  p.repetitionPenalty = 2.0f;
  Sampler s = make(p);
  // 3.0 -> 1.5 for tokens 1 and 3: token 2 (2.0) wins.
  EXPECT_EQ(s.sample(kLogits.data(), kLogits.size(), {1, 3, 1}), 2);
}

TEST(Sampling, FrequencyAndPresencePenalisePastTheGeneratedTokensOnly) {
  // Logits 1, 3, 2, 3, -1; history [3, 1, 1 | 1, 3]: the prompt's three
  // are not counted, so token 1 occurred once and token 3 once.
  const std::vector<int32_t> history = {3, 1, 1, 1, 3};
  SamplingParams frequency;
  frequency.frequencyPenalty = 0.6f;
  // 3 - 0.6 = 2.4 for both: token 1 keeps the tie; with the prompt's
  // tokens counted too it would have fallen below token 2 (3 - 1.8).
  EXPECT_EQ(make(frequency).sample(kLogits.data(), kLogits.size(), history, 3),
            1);
  EXPECT_EQ(make(frequency).sample(kLogits.data(), kLogits.size(), history, 0),
            2);
  SamplingParams presence;
  presence.presencePenalty = 1.5f;
  // 3 - 1.5 = 1.5 for tokens 1 and 3: token 2 (2.0) wins.
  EXPECT_EQ(make(presence).sample(kLogits.data(), kLogits.size(), history, 3),
            2);
  // A negative presence penalty favours what was said: token 3 rises to
  // 3.5, above token 1's 3.
  presence.presencePenalty = -0.5f;
  EXPECT_EQ(make(presence).sample(kLogits.data(), kLogits.size(), {3}, 0), 3);
}

TEST(Sampling, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  Sampler a = make(p), b = make(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(a.sample(kLogits.data(), kLogits.size(), {}));
    tb.push_back(b.sample(kLogits.data(), kLogits.size(), {}));
  }
  EXPECT_EQ(ta, tb);
  p.seed = 43;
  Sampler c = make(p);
  std::vector<int32_t> tc;
  for (int i = 0; i < 200; ++i)
    tc.push_back(c.sample(kLogits.data(), kLogits.size(), {}));
  EXPECT_NE(ta, tc);
  EXPECT_EQ(randomBits(42, 7), randomBits(42, 7));
  EXPECT_NE(randomBits(42, 7), randomBits(42, 8));
}

TEST(Sampling, FollowsTheSoftmax) {
  SamplingParams p;
  p.temperature = 2.0f;
  p.seed = 1;
  Sampler s = make(p);
  std::map<int32_t, int> counts;
  int n = 40000;
  for (int i = 0; i < n; ++i)
    ++counts[s.sample(kLogits.data(), kLogits.size(), {})];
  double total = 0;
  for (float l : kLogits)
    total += std::exp(l / 2.0);
  for (size_t t = 0; t < kLogits.size(); ++t) {
    double expected = std::exp(kLogits[t] / 2.0) / total;
    EXPECT_NEAR(counts[int32_t(t)] / double(n), expected, 0.01) << t;
  }
}

TEST(Sampling, TopKAndTopPRestrictTheChoice) {
  SamplingParams p;
  p.temperature = 5.0f;
  p.topK = 2;
  Sampler k = make(p);
  for (int i = 0; i < 300; ++i) {
    int32_t t = k.sample(kLogits.data(), kLogits.size(), {});
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
  p.topK = 0;
  p.topP = 0.01f;
  Sampler top = make(p);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(top.sample(kLogits.data(), kLogits.size(), {}), 1);
}

TEST(Sampling, RefusesBadParameters) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_EQ(Sampler::create(p).status().message(),
            "sampling temperature must be 0 (greedy) or positive, not -1");
  p = {};
  p.topP = 1.5f;
  EXPECT_EQ(Sampler::create(p).status().message(),
            "sampling top_p must be in (0, 1], not 1.5");
  p.topP = 0;
  EXPECT_FALSE(Sampler::create(p).isOk());
  p = {};
  p.topK = -3;
  EXPECT_FALSE(Sampler::create(p).isOk());
  p = {};
  p.repetitionPenalty = 0;
  EXPECT_FALSE(Sampler::create(p).isOk());
  p = {};
  p.frequencyPenalty = 2.5f;
  EXPECT_EQ(Sampler::create(p).status().message(),
            "sampling frequency_penalty must be in [-2, 2], not 2.5");
  p = {};
  p.presencePenalty = NAN;
  EXPECT_FALSE(Sampler::create(p).isOk());
}

} // namespace
