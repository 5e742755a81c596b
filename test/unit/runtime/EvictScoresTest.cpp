//===- EvictScoresTest.cpp - Eviction scores and selection ----------------===//
//
// Each score against a direct float64 evaluation of its definition
// (docs/eviction.md): TriAttention summed over the distance grid term by
// term on keys un-rotated in double, SnapKV's pooling by brute force, and
// the selection against sorting every entry.
//
//===----------------------------------------------------------------------===//
#include "EvictReference.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/evict/Schedule.h"
#include "runtime/src/evict/Scores.h"
#include "runtime/src/evict/Select.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

using namespace kvrt;
using namespace kvrt::evict;
using namespace kvrt::test;

namespace {

struct TriCase {
  schema::RopeScalingKind scaling;
  bool interleaved;
  HeadAggregation aggregation;
};

class TriAttentionTest : public ::testing::TestWithParam<TriCase> {};

TEST_P(TriAttentionTest, MatchesTheSeriesSummedOverTheGrid) {
  const TriCase c = GetParam();
  constexpr int64_t d = 64, heads = 3, keys = 200;
  cpu::RopeFrequencies freqs = frequencies(c.scaling, c.interleaved, d);
  std::vector<QueryCentre> centres = randomCentres(heads, d / 2, 7);
  // Pre-RoPE keys at scattered positions (as after an eviction), rotated
  // by the runtime's kernel as the cache holds them.
  std::vector<float> pre = gaussians(size_t(keys * d), 8), cached(pre.size());
  std::vector<int32_t> positions(keys);
  for (int64_t i = 0; i < keys; ++i)
    positions[i] = int32_t(i * 37 + (i % 5) * 11);
  cpu::ThreadPool pool(1);
  cpu::rope(pool, freqs, pre.data(), keys, 1, d, positions.data(),
            cached.data());
  const int64_t t = positions.back() + 3;
  for (const std::vector<double> &grid :
       {geometricDistances(), geometricDistances(16), std::vector<double>{5}}) {
    TriAttentionScorer scorer(freqs, d, centres.data(), heads, t, grid,
                              c.aggregation);
    std::vector<float> scores(keys);
    scorer.score(cached.data(), d, keys, scores.data());
    double scale = 0;
    std::vector<double> expected(keys);
    for (int64_t i = 0; i < keys; ++i) {
      expected[i] =
          referenceTriAttention(freqs, d, centres, t, grid, &cached[i * d],
                                positions[i], c.aggregation);
      scale = std::max(scale, std::fabs(expected[i]));
    }
    for (int64_t i = 0; i < keys; ++i)
      EXPECT_NEAR(scores[i], expected[i], 2e-5 * scale) << "key " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, TriAttentionTest,
    ::testing::Values(
        TriCase{schema::ROPE_SCALING_NONE, false, HeadAggregation::Mean},
        TriCase{schema::ROPE_SCALING_NONE, true, HeadAggregation::Max},
        TriCase{schema::ROPE_SCALING_LLAMA3, false, HeadAggregation::Max},
        TriCase{schema::ROPE_SCALING_YARN, false, HeadAggregation::Mean},
        TriCase{schema::ROPE_SCALING_YARN, true, HeadAggregation::Max}));

// combine=zmax: each query head's float64 series standardised over the
// keys scored (mean 0, deviation 1), then the maximum over the heads.
TEST(TriAttention, StandardisedMaxStandardisesEachHeadOverTheKeys) {
  constexpr int64_t d = 64, heads = 4, keys = 300;
  cpu::RopeFrequencies freqs =
      frequencies(schema::ROPE_SCALING_LLAMA3, false, d);
  std::vector<QueryCentre> centres = randomCentres(heads, d / 2, 11);
  // Heads whose logits spread differently: the largest would decide a
  // plain maximum alone.
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t f = 0; f < d / 2; ++f) {
      centres[h].re[f] *= double(1 + 3 * h);
      centres[h].im[f] *= double(1 + 3 * h);
      centres[h].magnitude[f] *= double(1 + 3 * h);
    }
  std::vector<float> pre = gaussians(size_t(keys * d), 12), cached(pre.size());
  std::vector<int32_t> positions(keys);
  for (int64_t i = 0; i < keys; ++i)
    positions[i] = int32_t(i * 5 + i % 3);
  cpu::ThreadPool pool(1);
  cpu::rope(pool, freqs, pre.data(), keys, 1, d, positions.data(),
            cached.data());
  const int64_t t = positions.back() + 1;
  const std::vector<double> grid = geometricDistances();
  TriAttentionScorer scorer(freqs, d, centres.data(), heads, t, grid,
                            HeadAggregation::StandardisedMax);
  std::vector<float> scores(keys);
  scorer.score(cached.data(), d, keys, scores.data());

  std::vector<double> expected(keys, -INFINITY);
  std::vector<int64_t> winner(keys, -1);
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<double> head(keys);
    double mean = 0, squares = 0;
    for (int64_t i = 0; i < keys; ++i) {
      head[i] =
          referenceTriAttention(freqs, d, {centres[h]}, t, grid, &cached[i * d],
                                positions[i], HeadAggregation::Mean);
      mean += head[i] / keys;
      squares += head[i] * head[i] / keys;
    }
    const double deviation = std::sqrt(squares - mean * mean);
    for (int64_t i = 0; i < keys; ++i)
      if ((head[i] - mean) / deviation > expected[i]) {
        expected[i] = (head[i] - mean) / deviation;
        winner[i] = h;
      }
  }
  for (int64_t i = 0; i < keys; ++i)
    EXPECT_NEAR(scores[i], expected[i], 1e-3) << "key " << i;
  // Standardised, the heads whose logits spread least still decide keys.
  EXPECT_GT(std::count_if(winner.begin(), winner.end(),
                          [&](int64_t h) { return h < heads - 1; }),
            keys / 10);
}

// With statistics measured on sampled queries and E|q_f| = |E q_f| (no
// magnitude term), the score is the real RoPE logit q.k averaged over the
// sampled queries placed at t + D (over a^2, YaRN's factor on both sides).
TEST(TriAttention, IsTheMeanLogitOfCalibrationQueries) {
  constexpr int64_t d = 32, samples = 50, keys = 20;
  cpu::RopeFrequencies freqs = frequencies(schema::ROPE_SCALING_YARN, false, d);
  std::vector<float> queries = gaussians(size_t(samples * d), 3);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < d; ++i)
      queries[s * d + i] += float(i % 3) - 1.0f; // Non-zero centres.
  QueryCentre centre;
  for (int64_t f = 0; f < d / 2; ++f) {
    double re = 0, im = 0;
    for (int64_t s = 0; s < samples; ++s) {
      re += queries[s * d + f] / double(samples);
      im += queries[s * d + f + d / 2] / double(samples);
    }
    centre.re.push_back(re);
    centre.im.push_back(im);
    centre.magnitude.push_back(std::hypot(re, im));
  }
  std::vector<float> pre = gaussians(size_t(keys * d), 4), cached(pre.size());
  std::vector<int32_t> positions(keys);
  std::iota(positions.begin(), positions.end(), 100);
  cpu::ThreadPool pool(1);
  cpu::rope(pool, freqs, pre.data(), keys, 1, d, positions.data(),
            cached.data());
  const int64_t t = 130;
  std::vector<double> grid = geometricDistances(1024);
  TriAttentionScorer scorer(freqs, d, &centre, 1, t, grid);
  std::vector<float> scores(keys);
  scorer.score(cached.data(), d, keys, scores.data());
  std::vector<float> rotated(queries.size());
  for (int64_t i = 0; i < keys; ++i) {
    double logit = 0;
    for (double distance : grid) {
      std::vector<int32_t> at(samples, int32_t(t + distance));
      cpu::rope(pool, freqs, queries.data(), samples, 1, d, at.data(),
                rotated.data());
      for (int64_t s = 0; s < samples; ++s)
        for (int64_t j = 0; j < d; ++j)
          logit += double(rotated[s * d + j]) * cached[i * d + j];
    }
    double a2 = freqs.attentionFactor * freqs.attentionFactor;
    EXPECT_NEAR(scores[i], logit / double(samples * grid.size()) / a2, 1e-4)
        << "key " << i;
  }
}

TEST(TriAttention, ThePlanChoosesHowTheGroupCombines) {
  schema::EvictParams plan;
  EXPECT_EQ(groupCombination(plan), HeadAggregation::Mean);
  plan.set_combine(schema::EVICT_COMBINE_ZMAX);
  EXPECT_EQ(groupCombination(plan), HeadAggregation::StandardisedMax);
}

TEST(TriAttention, DistancesDoubleUpToTheHorizon) {
  for (uint32_t horizon : {1u, 512u, 4096u}) {
    schema::EvictParams plan;
    plan.set_horizon(horizon);
    std::vector<double> grid = futureDistances(plan);
    ASSERT_FALSE(grid.empty());
    EXPECT_EQ(grid.front(), 1.0);
    EXPECT_EQ(grid.back(), double(horizon));
    for (size_t i = 1; i < grid.size(); ++i)
      EXPECT_EQ(grid[i], 2 * grid[i - 1]);
  }
  // An artifact without a horizon scores as the reference code does.
  EXPECT_EQ(futureDistances(schema::EvictParams()).back(), kReferenceHorizon);
}

TEST(TriAttention, UnropeInvertsRope) {
  constexpr int64_t d = 64, rows = 30, heads = 2;
  for (bool interleaved : {false, true}) {
    cpu::RopeFrequencies freqs =
        frequencies(schema::ROPE_SCALING_YARN, interleaved, d);
    ASSERT_GT(freqs.attentionFactor, 1.0);
    std::vector<float> x = gaussians(size_t(rows * heads * d), 5),
                       rotated(x.size()), back(x.size());
    std::vector<int32_t> positions(rows);
    for (int64_t r = 0; r < rows; ++r)
      positions[r] = int32_t(r * 1000 + 7);
    cpu::ThreadPool pool(1);
    cpu::rope(pool, freqs, x.data(), rows, heads, d, positions.data(),
              rotated.data());
    unrope(freqs, rotated.data(), rows, heads, d, positions.data(),
           back.data());
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(back[i], x[i], 1e-5 * (1 + std::fabs(x[i])));
  }
}

TEST(Baselines, StreamingKeepsSinksAndRecent) {
  std::vector<float> scores(10);
  streamingScores(10, 2, scores.data());
  SelectionParams params;
  params.budget = 5;
  auto kept = selectKept(scores.data(), 1, 10, 10, params);
  EXPECT_EQ(kept[0], (std::vector<uint64_t>{0, 1, 7, 8, 9}));
}

TEST(Baselines, H2OAggregatesRunningSums) {
  std::vector<float> acc = gaussians(3 * 20, 6);
  std::vector<float> mean(17), max(17);
  h2oScores(acc.data(), 3, 20, 17, HeadAggregation::Mean, mean.data());
  h2oScores(acc.data(), 3, 20, 17, HeadAggregation::Max, max.data());
  for (int i = 0; i < 17; ++i) {
    double a = acc[i], b = acc[20 + i], c = acc[40 + i];
    EXPECT_NEAR(mean[i], (a + b + c) / 3, 1e-6);
    EXPECT_EQ(max[i], float(std::max({a, b, c})));
  }
}

TEST(Baselines, SnapKVPoolsTheWindowVotes) {
  constexpr int64_t heads = 3, window = 4, stride = 40, count = 33;
  std::vector<float> w = gaussians(size_t(heads * window * stride), 9);
  for (float &x : w)
    x = std::fabs(x);
  for (int64_t kernel : {1, 4, 7}) {
    std::vector<float> scores(count);
    snapkvScores(w.data(), heads, window, stride, count, kernel, scores.data());
    for (int64_t i = 0; i < count; ++i) {
      // F.max_pool1d(votes, kernel, stride=1, padding=kernel // 2): output
      // i covers padded inputs [i, i + kernel), i.e. i - kernel/2 onwards.
      double expected = 0;
      for (int64_t h = 0; h < heads; ++h) {
        double best = -INFINITY;
        for (int64_t j = i - kernel / 2; j < i - kernel / 2 + kernel; ++j) {
          if (j < 0 || j >= count)
            continue;
          double vote = 0;
          for (int64_t q = 0; q < window; ++q)
            vote += w[(h * window + q) * stride + j];
          best = std::max(best, vote);
        }
        expected += best;
      }
      EXPECT_NEAR(scores[i], expected, 1e-5) << "kernel " << kernel;
    }
  }
}

/// Selection by its definition: protected entries, then the others sorted
/// by (score descending, index ascending) until the budget.
std::vector<uint64_t> referenceSelect(const std::vector<double> &s,
                                      const SelectionParams &p) {
  uint64_t n = s.size();
  std::vector<bool> keep(n, n <= p.budget);
  uint64_t kept = 0;
  for (uint64_t i = 0; i < n && n > p.budget; ++i)
    if (i < p.sinks || i + p.recent >= n) {
      keep[i] = true;
      ++kept;
    }
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](uint64_t a, uint64_t b) {
    double va = std::isnan(s[a]) ? -INFINITY : s[a];
    double vb = std::isnan(s[b]) ? -INFINITY : s[b];
    return va > vb;
  });
  for (uint64_t i : order)
    if (!keep[i] && kept < p.budget) {
      keep[i] = true;
      ++kept;
    }
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < n; ++i)
    if (keep[i])
      out.push_back(i);
  return out;
}

TEST(Selection, MatchesSortingEveryEntry) {
  constexpr int64_t heads = 3, stride = 130;
  std::mt19937 rng(12);
  for (int trial = 0; trial < 40; ++trial) {
    uint64_t count = 1 + rng() % 120;
    std::vector<float> scores(heads * stride);
    for (float &x : scores)
      x = float(int(rng() % 9)); // Many ties.
    scores[5] = NAN;
    SelectionParams p;
    p.budget = rng() % 100;
    p.sinks = rng() % 6;
    p.recent = rng() % 40;
    p.aggregation = trial % 2 ? HeadAggregation::Max : HeadAggregation::Mean;
    auto perHead = selectKept(scores.data(), heads, stride, count, p);
    ASSERT_EQ(perHead.size(), size_t(heads));
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> row(scores.begin() + h * stride,
                              scores.begin() + h * stride + count);
      EXPECT_EQ(perHead[h], referenceSelect(row, p)) << "trial " << trial;
    }
    p.shared = true;
    auto shared = selectKept(scores.data(), heads, stride, count, p);
    ASSERT_EQ(shared.size(), 1u);
    std::vector<double> combined(count);
    for (uint64_t i = 0; i < count; ++i) {
      double sum = 0, best = -INFINITY;
      for (int64_t h = 0; h < heads; ++h) {
        double v = scores[h * stride + i];
        v = std::isnan(v) ? -INFINITY : v;
        sum += v;
        best = std::max(best, v);
      }
      combined[i] = p.aggregation == HeadAggregation::Mean ? sum / heads : best;
    }
    EXPECT_EQ(shared[0], referenceSelect(combined, p)) << "trial " << trial;
    uint64_t protectedCount =
        std::min<uint64_t>(count, std::min(p.sinks, count) + p.recent);
    EXPECT_EQ(shared[0].size(),
              count <= p.budget ? count : std::max(p.budget, protectedCount));
  }
}

} // namespace

TEST(Selection, RankKeysOrderAsTheScoresThenTheEarlierEntry) {
  // rankKey() is what the GPU's selection ranks by: its order must be the
  // comparison of the floats (NaN as -inf, -0 equal to +0), then the index.
  const std::vector<float> values = {-INFINITY, -3.5f, -1e-40f,  -0.0f, 0.0f,
                                     1e-40f,    2.0f,  INFINITY, NAN};
  for (size_t a = 0; a < values.size(); ++a)
    for (size_t b = 0; b < values.size(); ++b)
      for (uint32_t i : {0u, 7u})
        for (uint32_t j : {0u, 7u}) {
          if (a == b && i == j)
            continue;
          auto value = [](float v) { return std::isnan(v) ? -INFINITY : v; };
          const float va = value(values[a]), vb = value(values[b]);
          const bool better = va != vb ? va > vb : i < j;
          EXPECT_EQ(rankKey(values[a], i) > rankKey(values[b], j), better)
              << values[a] << "@" << i << " against " << values[b] << "@" << j;
        }
}

TEST(Selection, KeysReachingTheKthLargestAreTheKeptCandidates) {
  // The GPU keeps the candidates whose rankKey() reaches the k-th largest
  // (radix select): the same entries as selectKept().
  std::mt19937 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    const uint64_t count = 1 + rng() % 200;
    std::vector<float> scores(count);
    for (float &x : scores)
      x = trial % 2 ? float(int(rng() % 7)) : float(rng()) / 1e9f;
    SelectionParams p;
    p.budget = rng() % 150;
    p.sinks = rng() % 5;
    p.recent = rng() % 30;
    const KeptLayout layout = keptLayout(count, p);
    std::vector<uint64_t> keys;
    for (uint64_t i = layout.sinks; i < layout.recentStart; ++i)
      keys.push_back(rankKey(scores[i], uint32_t(i)));
    std::sort(keys.rbegin(), keys.rend());
    std::vector<uint64_t> kept;
    for (uint64_t i = 0; i < count; ++i)
      if (i < layout.sinks || i >= layout.recentStart ||
          (layout.free &&
           rankKey(scores[i], uint32_t(i)) >= keys[layout.free - 1]))
        kept.push_back(i);
    const auto expected =
        selectKept(scores.data(), 1, int64_t(count), count, p);
    EXPECT_EQ(kept, expected[0]) << "trial " << trial;
    EXPECT_EQ(kept.size(), layout.kept(count)) << "trial " << trial;
  }
}
