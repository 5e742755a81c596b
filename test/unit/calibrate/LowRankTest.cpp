//===- LowRankTest.cpp - Moment sums and the low-rank report --------------===//
#include "compiler/calibrate/LowRank.h"
#include "compiler/calibrate/Moments.h"

#include <gtest/gtest.h>

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
