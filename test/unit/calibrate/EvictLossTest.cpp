//===- EvictLossTest.cpp - The attention eviction loses at best -----------===//
#include "compiler/calibrate/EvictLoss.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

using kvopt::calibrate::EvictLossSums;
using kvopt::calibrate::kEvictLossPoints;

namespace {

/// Softmax weights of `count` entries for `heads` query heads.
std::vector<float> randomWeights(std::mt19937 &rng, int64_t heads,
                                 int64_t count) {
  std::normal_distribution<float> normal(0, 2);
  std::vector<float> w(size_t(heads * count));
  for (int64_t h = 0; h < heads; ++h) {
    float sum = 0;
    for (int64_t i = 0; i < count; ++i)
      sum += w[size_t(h * count + i)] = std::exp(normal(rng));
    for (int64_t i = 0; i < count; ++i)
      w[size_t(h * count + i)] /= sum;
  }
  return w;
}

TEST(EvictLoss, IsTheMassOutsideTheBestEntriesOfTheMeanOverHeads) {
  // Two KV heads of two query heads each; rows of 1 to 60 entries.
  const int64_t heads = 4, kvHeads = 2, group = 2;
  std::mt19937 rng(7);
  EvictLossSums sums(heads, kvHeads);
  std::vector<double> expected(kEvictLossPoints, 0.0);
  const int64_t rows = 60;
  for (int64_t p = 0; p < rows; ++p) {
    const int64_t count = p + 1;
    std::vector<float> w = randomWeights(rng, heads, count);
    // Direct: the mean over all heads, sorted, summed outside the best
    // ceil(j count / G).
    std::vector<double> mean(size_t(count), 0.0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < count; ++i)
        mean[size_t(i)] += w[size_t(h * count + i)] / double(heads);
    std::sort(mean.begin(), mean.end(), std::greater<double>());
    for (int64_t j = 1; j <= kEvictLossPoints; ++j) {
      int64_t kept = int64_t(
          std::ceil(double(j) * double(count) / double(kEvictLossPoints)));
      double lost = 0;
      for (int64_t i = kept; i < count; ++i)
        lost += mean[size_t(i)];
      expected[size_t(j - 1)] += lost / double(rows);
    }
    for (int64_t g = 0; g < kvHeads; ++g)
      ASSERT_TRUE(
          sums.addWeights(p, g, w.data() + g * group * count, group, 0, count));
  }
  EXPECT_EQ(sums.rows(), uint64_t(rows));
  std::vector<float> loss = sums.finish();
  ASSERT_EQ(loss.size(), size_t(kEvictLossPoints));
  for (size_t j = 0; j < loss.size(); ++j) {
    EXPECT_NEAR(loss[j], expected[j], 1e-6) << "point " << j;
    if (j)
      EXPECT_LE(loss[j], loss[j - 1]);
  }
  EXPECT_EQ(loss.back(), 0.0f);
  EXPECT_GT(loss.front(), 0.0f);
}

TEST(EvictLoss, RefusesHeadsOutOfOrderOrDisagreeing) {
  const int64_t count = 3;
  std::vector<float> w(size_t(2 * count), 1.0f / count);
  EvictLossSums sums(4, 2);
  EXPECT_FALSE(sums.addWeights(5, 1, w.data(), 2, 0, count));
  ASSERT_TRUE(sums.addWeights(5, 0, w.data(), 2, 0, count));
  EXPECT_FALSE(sums.addWeights(6, 1, w.data(), 2, 0, count));
  EXPECT_FALSE(sums.addWeights(5, 1, w.data(), 2, 0, count - 1));
  EXPECT_TRUE(sums.finish().empty());
}

} // namespace
