//===- EvictLayerTest.cpp - One layer's eviction against float64 ----------===//
//
// LayerEviction after a prefill: the entries it keeps must be the ones a
// float64 evaluation of the method's definition keeps (docs/eviction.md):
// H2O's attention summed over every query, SnapKV's vote of the last
// `observe` queries, max-pooled, StreamingLLM's sinks and most recent; each
// with the recent window protected, with one selection for all KV heads or
// one per KV head (EvictParams.heads).
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"
#include "EvictReference.h"
#include "runtime/src/backends/cpu/Eviction.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/PagedCache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace kvrt;

namespace {

constexpr int64_t kKvHeads = 2, kGroup = 2, kQHeads = 4, kD = 16;
constexpr int64_t kTokens = 40;
constexpr uint64_t kBudget = 12, kWindow = 3, kSequence = 1;
constexpr double kScale = 0.25;

struct Prefill {
  std::vector<float> keys, values, queries;
  std::vector<int32_t> positions;
  std::vector<uint64_t> sequences;
};

Prefill randomPrefill() {
  Prefill p;
  p.keys = test::randomRows(kTokens, kKvHeads * kD, 11);
  p.values = test::randomRows(kTokens, kKvHeads * kD, 12);
  p.queries = test::randomRows(kTokens, kQHeads * kD, 13);
  for (int64_t i = 0; i < kTokens; ++i) {
    p.positions.push_back(int32_t(2 * i + 5));
    p.sequences.push_back(kSequence);
  }
  return p;
}

/// float64 softmax weights [qHead][key] of query row r over keys 0..r.
std::vector<std::vector<double>> weights(const Prefill &p, int64_t r) {
  std::vector<std::vector<double>> w(kQHeads, std::vector<double>(kTokens, 0));
  for (int64_t h = 0; h < kQHeads; ++h) {
    int64_t g = h / kGroup;
    std::vector<double> logits(size_t(r + 1));
    for (int64_t i = 0; i <= r; ++i) {
      double dot = 0;
      for (int64_t d = 0; d < kD; ++d)
        dot += double(p.queries[(r * kQHeads + h) * kD + d]) *
               p.keys[(i * kKvHeads + g) * kD + d];
      logits[size_t(i)] = dot * kScale;
    }
    double top = *std::max_element(logits.begin(), logits.end()), sum = 0;
    for (double &l : logits)
      sum += (l = std::exp(l - top));
    for (int64_t i = 0; i <= r; ++i)
      w[size_t(h)][size_t(i)] = logits[size_t(i)] / sum;
  }
  return w;
}

/// The kept entries for per-KV-head scores [kvHead][key]: mean over heads,
/// the last `window` protected, the best others up to kBudget.
std::vector<int32_t> keptPositions(const Prefill &p,
                                   const std::vector<std::vector<double>> &s,
                                   uint64_t sinks = 0,
                                   uint64_t window = kWindow) {
  std::vector<double> mean(kTokens, 0);
  for (const std::vector<double> &head : s)
    for (int64_t i = 0; i < kTokens; ++i)
      mean[size_t(i)] += head[size_t(i)] / double(s.size());
  std::vector<int64_t> candidates;
  for (int64_t i = int64_t(sinks); i < kTokens - int64_t(window); ++i)
    candidates.push_back(i);
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](int64_t a, int64_t b) { return mean[a] > mean[b]; });
  candidates.resize(kBudget - window - sinks);
  for (uint64_t i = 0; i < sinks; ++i)
    candidates.push_back(int64_t(i));
  for (int64_t i = kTokens - int64_t(window); i < kTokens; ++i)
    candidates.push_back(i);
  std::sort(candidates.begin(), candidates.end());
  std::vector<int32_t> positions;
  for (int64_t i : candidates)
    positions.push_back(p.positions[size_t(i)]);
  return positions;
}

using HeadPositions = std::vector<std::vector<int32_t>>;

/// The same kept positions in every KV head.
HeadPositions everyHead(const std::vector<int32_t> &positions) {
  return HeadPositions(kKvHeads, positions);
}

/// Per KV head, the kept entries of its own scores.
HeadPositions eachHead(const Prefill &p,
                       const std::vector<std::vector<double>> &s) {
  HeadPositions kept;
  for (const std::vector<double> &head : s)
    kept.push_back(keptPositions(p, {head}));
  return kept;
}

/// Runs the eviction of `method` on the prefill; the positions left in each
/// KV head. With `exactWindow`, the cache keeps that many recent tokens in
/// its tail, as an encoding's exact window does.
HeadPositions evictAfterPrefill(const Prefill &p, schema::EvictParams plan,
                                uint64_t window = kWindow,
                                uint32_t exactWindow = 0,
                                std::vector<evict::QueryCentre> centres = {},
                                cpu::RopeFrequencies rope = {}) {
  schema::Encoding f32;
  f32.set_kind(schema::ENCODING_F32);
  CodecContext context;
  context.kvHeads = kKvHeads;
  context.headDim = kD;
  std::unique_ptr<Codec> codec = test::makeCodecOrDie(f32, context);
  cpu::CacheCodecs codecs{codec.get(), codec.get(), codec.get(), false, false};
  CacheLayerShape shape;
  shape.kvHeads = kKvHeads;
  shape.headDim = kD;
  shape.pageSize = 16;
  shape.keyHeadBytes = shape.valueHeadBytes = codec->headBytes(16);
  shape.capacityPages = 8;
  shape.tailWindow = exactWindow;
  shape.headPositions = plan.heads() == schema::EVICT_HEADS_EACH;
  PagedCache cache({shape});
  EXPECT_TRUE(cache.addSequence(kSequence).isOk());
  EXPECT_TRUE(cache.reserve({{kSequence, kTokens}}).isOk());
  cpu::ThreadPool pool(2);
  cpu::append(pool, cache, 0, codecs, p.keys.data(), p.values.data(), kTokens,
              p.sequences.data(), p.positions.data());
  cpu::AttentionParams attention;
  attention.cache = &cache;
  attention.codecs = codecs;
  attention.scale = float(kScale);
  plan.set_budget_tokens(kBudget);
  plan.set_window(uint32_t(window));
  plan.set_interval(1);
  cpu::LayerEviction eviction({plan, std::move(centres), rope}, attention);
  Status ran = eviction.run(pool, cache, p.queries.data(), kTokens, kQHeads,
                            p.sequences.data(), p.positions.data());
  EXPECT_TRUE(ran.isOk()) << ran.message();
  // One length for all heads: each keeps as many entries.
  HeadPositions left(kKvHeads);
  for (uint32_t h = 0; h < kKvHeads; ++h)
    for (uint64_t i = 0; i < cache.length(0, kSequence); ++i)
      left[h].push_back(cache.position(0, kSequence, i, h));
  EXPECT_LE(cache.tail(0, kSequence).tokens(), window);
  return left;
}

/// H2O's score per KV head in float64: the attention every prefill query
/// paid each entry, summed, then averaged over the group's query heads.
std::vector<std::vector<double>> h2oScores(const Prefill &p) {
  std::vector<std::vector<double>> perKvHead(kKvHeads,
                                             std::vector<double>(kTokens, 0));
  for (int64_t r = 0; r < kTokens; ++r) {
    std::vector<std::vector<double>> w = weights(p, r);
    for (int64_t h = 0; h < kQHeads; ++h)
      for (int64_t i = 0; i < kTokens; ++i)
        perKvHead[size_t(h / kGroup)][size_t(i)] +=
            w[size_t(h)][size_t(i)] / kGroup;
  }
  return perKvHead;
}

TEST(LayerEviction, H2OKeepsTheMostAttendedEntries) {
  Prefill p = randomPrefill();
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_H2O);
  EXPECT_EQ(evictAfterPrefill(p, plan),
            everyHead(keptPositions(p, h2oScores(p))));
}

TEST(LayerEviction, H2OPerHeadKeepsEachHeadsMostAttendedEntries) {
  Prefill p = randomPrefill();
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_H2O);
  plan.set_heads(schema::EVICT_HEADS_EACH);
  HeadPositions kept = evictAfterPrefill(p, plan);
  EXPECT_EQ(kept, eachHead(p, h2oScores(p)));
  // The heads disagree on these random entries, so the test tells per-head
  // selection from shared.
  EXPECT_NE(kept[0], kept[1]);
  EXPECT_EQ(kept[0].size(), kBudget);
}

TEST(LayerEviction, TheRecentWindowTakesAtMostHalfTheBudget) {
  // A window of 10 in a budget of 12 would leave 2 scored entries; it is
  // cut to 6, leaving 6 to the score.
  Prefill p = randomPrefill();
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_H2O);
  EXPECT_EQ(evictAfterPrefill(p, plan, 10),
            everyHead(keptPositions(p, h2oScores(p), 0, kBudget / 2)));
}

TEST(LayerEviction, AnExactWindowOfTheEncodingYieldsToTheBudget) {
  // The encoding keeps 20 recent tokens exact, more than the budget of 12:
  // the eviction keeps what it keeps without them, and of the exact
  // window only its own recent window.
  Prefill p = randomPrefill();
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_H2O);
  EXPECT_EQ(evictAfterPrefill(p, plan, kWindow, 20),
            everyHead(keptPositions(p, h2oScores(p))));
}

TEST(LayerEviction, SnapKVKeepsWhatTheLastQueriesVoteFor) {
  Prefill p = randomPrefill();
  const int64_t observe = 5, kernel = 3;
  std::vector<std::vector<double>> perKvHead(kKvHeads,
                                             std::vector<double>(kTokens, 0));
  std::vector<std::vector<double>> vote(kQHeads,
                                        std::vector<double>(kTokens, 0));
  for (int64_t r = kTokens - observe; r < kTokens; ++r) {
    std::vector<std::vector<double>> w = weights(p, r);
    for (int64_t h = 0; h < kQHeads; ++h)
      for (int64_t i = 0; i < kTokens; ++i)
        vote[size_t(h)][size_t(i)] += w[size_t(h)][size_t(i)];
  }
  // Max-pooled per head over i - 1 .. i + 1, summed over the group.
  for (int64_t h = 0; h < kQHeads; ++h)
    for (int64_t i = 0; i < kTokens; ++i) {
      double pooled = 0;
      for (int64_t j = std::max<int64_t>(0, i - kernel / 2);
           j <= std::min<int64_t>(kTokens - 1, i + kernel / 2); ++j)
        pooled = std::max(pooled, vote[size_t(h)][size_t(j)]);
      perKvHead[size_t(h / kGroup)][size_t(i)] += pooled;
    }
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_SNAPKV);
  plan.set_observe(observe);
  plan.set_kernel(kernel);
  EXPECT_EQ(evictAfterPrefill(p, plan), everyHead(keptPositions(p, perKvHead)));
  plan.set_heads(schema::EVICT_HEADS_EACH);
  HeadPositions kept = evictAfterPrefill(p, plan);
  EXPECT_EQ(kept, eachHead(p, perKvHead));
  EXPECT_NE(kept[0], kept[1]);
}

TEST(LayerEviction, TriAttentionPerHeadKeepsEachHeadsBestScored) {
  Prefill p = randomPrefill();
  const cpu::RopeFrequencies rope =
      test::frequencies(schema::ROPE_SCALING_NONE, false, kD);
  const std::vector<evict::QueryCentre> centres =
      test::randomCentres(kQHeads, kD / 2, 21);
  // Scored for queries after the prefill's last one, as the cache holds the
  // keys (the prefill's rows stand for keys after RoPE), mean over the
  // group's query heads, at the distances up to the plan's horizon (none:
  // the reference's).
  const int64_t t = p.positions.back();
  std::vector<HeadPositions> byHorizon;
  for (uint32_t horizon : {0u, 16u}) {
    const std::vector<double> grid =
        evict::geometricDistances(horizon ? horizon : evict::kReferenceHorizon);
    std::vector<std::vector<double>> perKvHead(kKvHeads,
                                               std::vector<double>(kTokens));
    for (int64_t g = 0; g < kKvHeads; ++g) {
      std::vector<evict::QueryCentre> group(centres.begin() + g * kGroup,
                                            centres.begin() + (g + 1) * kGroup);
      for (int64_t i = 0; i < kTokens; ++i)
        perKvHead[size_t(g)][size_t(i)] = test::referenceTriAttention(
            rope, kD, group, t, grid, &p.keys[size_t((i * kKvHeads + g) * kD)],
            p.positions[size_t(i)], evict::HeadAggregation::Mean);
    }
    schema::EvictParams plan;
    plan.set_method(schema::EVICT_METHOD_TRIATTENTION);
    plan.set_heads(schema::EVICT_HEADS_EACH);
    plan.set_horizon(horizon);
    HeadPositions kept = evictAfterPrefill(p, plan, kWindow, 0, centres, rope);
    EXPECT_EQ(kept, eachHead(p, perKvHead)) << "horizon " << horizon;
    EXPECT_NE(kept[0], kept[1]);
    byHorizon.push_back(kept);
  }
  // The horizon reaches the scores.
  EXPECT_NE(byHorizon[0], byHorizon[1]);
}

TEST(LayerEviction, StreamingKeepsSinksAndTheMostRecent) {
  Prefill p = randomPrefill();
  std::vector<std::vector<double>> recency(kKvHeads,
                                           std::vector<double>(kTokens));
  for (std::vector<double> &head : recency)
    std::iota(head.begin(), head.end(), 0.0);
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_STREAMING);
  plan.set_sinks(2);
  EXPECT_EQ(evictAfterPrefill(p, plan),
            everyHead(keptPositions(p, recency, 2)));
}

} // namespace
