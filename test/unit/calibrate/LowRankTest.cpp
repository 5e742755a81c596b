//===- LowRankTest.cpp - Moment sums and the low-rank report --------------===//
#include "compiler/calibrate/LowRank.h"
#include "compiler/calibrate/Moments.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace kvopt::calibrate;

namespace {

TEST(MomentSums, CovarianceOfAKnownInputIsTheHandComputedOne) {
  // Two heads of two coordinates, three rows ([rows][heads][dim]).
  // Head 0: (1, 2), (3, 0), (5, 4): mean (3, 2);
  //   centred (-2, 0), (0, -2), (2, 2): covariance [[8, 4], [4, 8]] / 3.
  // Head 1: (0, 1) three times: mean (0, 1), covariance 0.
  const float rows[] = {1, 2, 0, 1, 3, 0, 0, 1, 5, 4, 0, 1};
  MomentSums sums(2, 2);
  sums.add(rows, 1);
  sums.add(rows + 4, 2);
  EXPECT_EQ(sums.tokens(), 3u);
  std::vector<double> mean, covariance;
  sums.finish(mean, covariance);
  EXPECT_EQ(mean, (std::vector<double>{3, 2, 0, 1}));
  std::vector<double> expected = {8.0 / 3, 4.0 / 3, 4.0 / 3, 8.0 / 3,
                                  0,       0,       0,       0};
  ASSERT_EQ(covariance.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(covariance[i], expected[i], 1e-15) << "at " << i;
}

/// Feeds `sums` two sequences (6 and 5 tokens) of values and of causal
/// weights from a fixed generator, each query row's weights split in two
/// calls, and returns the moment a direct float64 sum over the same
/// numbers gives, with `sinks` 1 and `window` 2.
std::vector<double> feedAttention(AttentionMomentSums &sums) {
  const int64_t heads = 2, dim = 3, group = 2, sinks = 1, window = 2;
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return float(state >> 8) / float(1 << 24);
  };
  std::vector<double> moment(size_t(heads * dim * dim), 0.0), mass(heads);
  for (int64_t tokens : {6, 5}) {
    std::vector<float> values(size_t(tokens * heads * dim));
    for (float &v : values)
      v = 2 * next() - 1;
    sums.addValues(values.data(), 2);
    sums.addValues(values.data() + 2 * heads * dim, tokens - 2);
    for (int64_t p = 0; p < tokens; ++p)
      for (int64_t h = 0; h < heads; ++h) {
        int64_t count = p + 1, split = count / 2;
        std::vector<float> w(size_t(group * count));
        for (float &x : w)
          x = next() / float(count);
        // Entries [0, split) then [split, count), each [group][entries].
        std::vector<float> low, high;
        for (int64_t g = 0; g < group; ++g) {
          low.insert(low.end(), w.begin() + g * count,
                     w.begin() + g * count + split);
          high.insert(high.end(), w.begin() + g * count + split,
                      w.begin() + (g + 1) * count);
        }
        EXPECT_TRUE(sums.addWeights(p, h, low.data(), group, 0, split));
        EXPECT_TRUE(sums.addWeights(p, h, high.data(), group, uint64_t(split),
                                    count - split));
        for (int64_t t = sinks; t <= p - window; ++t) {
          double a = 0;
          for (int64_t g = 0; g < group; ++g)
            a += w[size_t(g * count + t)];
          const float *v = values.data() + (t * heads + h) * dim;
          for (int64_t i = 0; i < dim; ++i)
            for (int64_t j = 0; j < dim; ++j)
              moment[size_t((h * dim + i) * dim + j)] +=
                  a * double(v[i]) * double(v[j]);
          mass[size_t(h)] += a;
        }
      }
    sums.endSequence();
  }
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t k = 0; k < dim * dim; ++k)
      moment[size_t(h * dim * dim + k)] /= mass[size_t(h)];
  return moment;
}

TEST(AttentionMomentSums, MomentIsTheDirectWeightedSumOutsideTheExactTokens) {
  AttentionMomentSums sums(2, 3, 1, 2);
  std::vector<double> expected = feedAttention(sums);
  std::vector<double> moment;
  ASSERT_TRUE(sums.finish(moment));
  ASSERT_EQ(moment.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(moment[i], expected[i], 1e-14) << "at " << i;
  // The same input gives the same bits.
  AttentionMomentSums again(2, 3, 1, 2);
  feedAttention(again);
  std::vector<double> second;
  ASSERT_TRUE(again.finish(second));
  EXPECT_EQ(
      std::memcmp(moment.data(), second.data(), moment.size() * sizeof(double)),
      0);
}

TEST(AttentionMomentSums, NothingOutsideTheExactTokensGivesNoMoment) {
  // Three tokens, sinks 1 and window 2: every entry is exact for every query.
  AttentionMomentSums sums(1, 2, 1, 2);
  const float values[] = {1, 2, 3, 4, 5, 6};
  sums.addValues(values, 3);
  const float weights[] = {0.25f, 0.25f, 0.5f};
  EXPECT_TRUE(sums.addWeights(2, 0, weights, 1, 0, 3));
  // Entries without values, and heads that do not exist, are refused.
  EXPECT_FALSE(sums.addWeights(3, 0, weights, 1, 1, 3));
  EXPECT_FALSE(sums.addWeights(2, 1, weights, 1, 0, 3));
  sums.endSequence();
  std::vector<double> moment;
  EXPECT_FALSE(sums.finish(moment));
  EXPECT_TRUE(moment.empty());
}

/// Statistics of one layer of two heads of dimension 4 with diagonal
/// covariances.
Statistics diagonal(const std::vector<double> &head0,
                    const std::vector<double> &head1) {
  Statistics s;
  s.kvHeads = 2;
  s.headDim = 4;
  LayerStatistics &l = s.layers.emplace_back();
  for (const std::vector<double> *d : {&head0, &head1})
    for (size_t i = 0; i < 4; ++i)
      for (size_t j = 0; j < 4; ++j)
        l.keyCovariance.push_back(i == j ? (*d)[i] : 0.0);
  l.valueCovariance = l.keyCovariance;
  l.keyMean = l.valueMean = std::vector<double>(8, 0.0);
  return s;
}

TEST(LowRank, ErrorIsTheDiscardedShareOfTheSpectrum) {
  // Head 0 lives on axes 0 and 1, head 1 on axes 2 and 3.
  Statistics s = diagonal({6, 2, 0, 0}, {0, 0, 1, 1});
  auto report = lowRankReport(s, "hand.json");
  ASSERT_TRUE(report) << report.status().message();
  const SideLowRank &k = (*report)[0].key;
  EXPECT_EQ(k.heads[0].error, (std::vector<double>{1, 0.25, 0, 0, 0}));
  EXPECT_EQ(k.heads[1].error, (std::vector<double>{1, 0.5, 0, 0, 0}));
  // Per head at rank 1: drops 2 + 1 of 10.
  EXPECT_DOUBLE_EQ(k.perHead.error[1], 0.3);
  EXPECT_EQ(k.perHead.rank95, 2);
  // Shared: the sum is diag(6, 2, 1, 1); rank 2 drops 2 of 10.
  EXPECT_DOUBLE_EQ(k.shared.error[2], 0.2);
  EXPECT_EQ(k.shared.rank95, 4);
  EXPECT_EQ(k.shared.rank99, 4);
  EXPECT_EQ(rankForRatio(0.25, 4), 1);
  EXPECT_EQ(rankForRatio(0.75, 64), 48);
}

TEST(LowRank, RefusesStatisticsWithoutCovariances) {
  Statistics s = diagonal({1, 1, 1, 1}, {1, 1, 1, 1});
  s.layers[0].keyCovariance.clear();
  auto report = lowRankReport(s, "old.json");
  ASSERT_FALSE(report);
  EXPECT_EQ(report.status().message(),
            "old.json has no key and value covariances (it predates them); "
            "run kvopt calibrate again to record them");
}

} // namespace
