//===- EvictCompactTest.cpp - Compacting a sequence in the paged cache ----===//
//
// After compactSequence() the cache must hold exactly the kept entries, in
// order, at their original positions, with the tail behind them and the
// freed pages back in the pool: attention over it equals float64 attention
// over the kept entries and, bit for bit, attention over a cache that only
// ever received them.
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/evict/Compact.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

using namespace kvrt;
using namespace kvrt::evict;

namespace {

constexpr uint32_t kKvHeads = 2, kGroup = 2, kD = 64, kPageSize = 16,
                   kTailWindow = 5;
constexpr uint64_t kSequence = 7;

TEST(CompactionPlan, MovesEachKeptEntryOnceForward) {
  std::vector<uint64_t> kept = {0, 1, 4, 5, 9, 10, 11, 30};
  std::vector<EntryMove> moves = compactionPlan(kept);
  ASSERT_EQ(moves.size(), 6u);
  // Simulate on an array: every source is read before anything writes it.
  std::vector<int> slots(31);
  for (int i = 0; i < 31; ++i)
    slots[i] = i;
  std::vector<bool> written(31, false);
  for (const EntryMove &m : moves) {
    EXPECT_LT(m.to, m.from);
    EXPECT_FALSE(written[m.from]);
    slots[m.to] = slots[m.from];
    written[m.to] = true;
  }
  for (size_t i = 0; i < kept.size(); ++i)
    EXPECT_EQ(slots[i], int(kept[i]));
  EXPECT_TRUE(compactionPlan({0, 1, 2}).empty());
}

/// The indices 0 .. n - 1.
std::vector<uint64_t> upTo(uint64_t n) {
  std::vector<uint64_t> indices(n);
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

struct Tokens {
  std::vector<float> keys, values; // [n][kKvHeads][kD]
  std::vector<int32_t> positions;
};

Tokens randomTokens(uint32_t n, uint32_t seed) {
  Tokens t;
  t.keys = test::randomRows(n, kKvHeads * kD, seed);
  t.values = test::randomRows(n, kKvHeads * kD, seed + 1);
  for (uint32_t i = 0; i < n; ++i)
    t.positions.push_back(int32_t(3 * i + 1));
  return t;
}

/// One layer's cache and codecs for `kind` on both sides.
struct Stored {
  std::unique_ptr<Codec> key, value, tail;
  cpu::CacheCodecs codecs;
  std::unique_ptr<PagedCache> cache;
  cpu::ThreadPool pool{2};

  explicit Stored(schema::EncodingKind kind, bool headPositions = false) {
    schema::Encoding encoding, f32;
    encoding.set_kind(kind);
    if (kind == schema::ENCODING_POLAR) {
      encoding.set_bits(4);
      encoding.set_seed(3);
    }
    f32.set_kind(schema::ENCODING_F32);
    CodecContext context;
    // fp8 per_head keeps its calibrated head scale at the start of each
    // area, before the entries that move.
    if (kind == schema::ENCODING_FP8) {
      encoding.set_scale_mode(schema::SCALE_MODE_PER_HEAD);
      context.scales = {0.011f, 0.013f};
    }
    context.kvHeads = kKvHeads;
    context.headDim = kD;
    key = test::makeCodecOrDie(encoding, context);
    tail = test::makeCodecOrDie(f32, context);
    context.side = CacheSide::Value;
    value = test::makeCodecOrDie(encoding, context);
    bool round = kind != schema::ENCODING_F32;
    codecs = {key.get(), value.get(), tail.get(), round, round};
    CacheLayerShape shape;
    shape.kvHeads = kKvHeads;
    shape.headDim = kD;
    shape.pageSize = kPageSize;
    shape.keyHeadBytes = key->headBytes(kPageSize);
    shape.valueHeadBytes = value->headBytes(kPageSize);
    shape.tailWindow = kTailWindow;
    shape.capacityPages = 100;
    shape.headPositions = headPositions;
    cache = std::make_unique<PagedCache>(std::vector<CacheLayerShape>{shape});
    EXPECT_TRUE(cache->addSequence(kSequence).isOk());
  }

  /// Appends tokens `indices` of `t`, `reserveExtra` more reserved.
  void add(const Tokens &t, const std::vector<uint64_t> &indices,
           uint64_t reserveExtra = 0) {
    ASSERT_TRUE(
        cache->reserve({{kSequence, indices.size() + reserveExtra}}).isOk());
    for (uint64_t i : indices) {
      uint64_t seq = kSequence;
      cpu::append(pool, *cache, 0, codecs, &t.keys[i * kKvHeads * kD],
                  &t.values[i * kKvHeads * kD], 1, &seq, &t.positions[i]);
    }
    uint64_t seq = kSequence;
    cpu::encodeTails(pool, *cache, 0, codecs, &seq, 1);
  }

  std::vector<float> attend(const std::vector<float> &q, int32_t position) {
    cpu::AttentionParams params;
    params.cache = cache.get();
    params.codecs = codecs;
    params.scale = 0.125f;
    std::vector<float> out(q.size());
    std::vector<std::vector<float>> scratch;
    uint64_t seq = kSequence;
    cpu::attention(pool, params, q.data(), 1, kKvHeads * kGroup, &seq,
                   &position, out.data(), scratch, nullptr);
    return out;
  }
};

/// Float64 attention of q over tokens `indices` of t, stored as `kind`
/// (bf16 rounds keys and values).
std::vector<double> referenceAttention(const std::vector<float> &q,
                                       const Tokens &t,
                                       const std::vector<uint64_t> &indices,
                                       schema::EncodingKind kind) {
  auto stored = [&](float v) {
    return kind == schema::ENCODING_BF16
               ? double(cpu::bf16ToFloat(cpu::floatToBf16(v)))
               : double(v);
  };
  std::vector<double> out(q.size(), 0.0);
  for (uint32_t h = 0; h < kKvHeads * kGroup; ++h) {
    uint32_t g = h / kGroup;
    std::vector<double> w;
    double max = -INFINITY, sum = 0;
    for (uint64_t i : indices) {
      double s = 0;
      for (uint32_t j = 0; j < kD; ++j)
        s +=
            double(q[h * kD + j]) * stored(t.keys[(i * kKvHeads + g) * kD + j]);
      w.push_back(s * 0.125);
      max = std::max(max, w.back());
    }
    for (double &x : w) {
      x = std::exp(x - max);
      sum += x;
    }
    for (size_t e = 0; e < indices.size(); ++e)
      for (uint32_t j = 0; j < kD; ++j)
        out[h * kD + j] +=
            w[e] / sum * stored(t.values[(indices[e] * kKvHeads + g) * kD + j]);
  }
  return out;
}

class CompactTest : public ::testing::TestWithParam<schema::EncodingKind> {};

TEST_P(CompactTest, AttentionSeesExactlyTheKeptEntries) {
  const schema::EncodingKind kind = GetParam();
  constexpr uint32_t n = 150;
  Tokens t = randomTokens(n + 1, 20);
  const std::vector<uint64_t> all = upTo(n);
  Stored full(kind);
  full.add(t, all, /*reserveExtra=*/3);
  PagedCache &cache = *full.cache;
  const uint64_t encoded = cache.encoded(0, kSequence);
  ASSERT_EQ(encoded, n - kTailWindow);
  ASSERT_EQ(cache.pages(0, kSequence).size(), (n + 3 + 15) / 16);

  // A random 30% of the encoded entries, the first and a run included.
  std::mt19937 rng(5);
  std::vector<uint64_t> kept;
  for (uint64_t i = 0; i < encoded; ++i)
    if (i == 0 || (i >= 40 && i < 48) || rng() % 10 < 3)
      kept.push_back(i);
  uint64_t bytesBefore = cache.bytesInUse();
  ASSERT_TRUE(compactSequence(cache, 0, kSequence, *full.key, *full.value, kept)
                  .isOk());

  // What survives: the kept entries, then the tail.
  std::vector<uint64_t> survivors = kept;
  for (uint64_t i = encoded; i < n; ++i)
    survivors.push_back(i);
  EXPECT_EQ(cache.encoded(0, kSequence), kept.size());
  EXPECT_EQ(cache.length(0, kSequence), survivors.size());
  for (uint64_t i = 0; i < survivors.size(); ++i)
    EXPECT_EQ(cache.position(0, kSequence, i), t.positions[survivors[i]]);
  // The room the attached pages had left (the 3 reserved tokens rounded up
  // to the page) is kept; the other pages are freed.
  const size_t room = (n + 3 + 15) / 16 * 16 - n;
  size_t pagesLeft = (survivors.size() + room + 15) / 16;
  EXPECT_EQ(cache.pages(0, kSequence).size(), pagesLeft);
  uint64_t pageBytes =
      kKvHeads * (cache.shape(0).keyHeadBytes + cache.shape(0).valueHeadBytes) +
      kPageSize * sizeof(int32_t);
  EXPECT_EQ(bytesBefore - cache.bytesInUse(),
            ((n + 3 + 15) / 16 - pagesLeft) * pageBytes);

  std::vector<float> q = test::randomRows(1, kKvHeads * kGroup * kD, 30);
  Stored fresh(kind);
  fresh.add(t, survivors);
  const int32_t now = t.positions[n - 1] + 1;
  std::vector<float> got = full.attend(q, now);
  EXPECT_EQ(got, fresh.attend(q, now));
  if (kind == schema::ENCODING_F32 || kind == schema::ENCODING_BF16) {
    std::vector<double> expected = referenceAttention(q, t, survivors, kind);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], expected[i], 2e-5);
  }

  // Decoding goes on in the reserved room: one more token, then a second
  // compaction keeping every other entry.
  full.add(t, {n});
  fresh.add(t, {n});
  survivors.push_back(n);
  EXPECT_EQ(full.attend(q, now + 3), fresh.attend(q, now + 3));
  std::vector<uint64_t> again;
  for (uint64_t i = 0; i < cache.encoded(0, kSequence); i += 2)
    again.push_back(i);
  std::vector<uint64_t> survivors2;
  for (uint64_t i : again)
    survivors2.push_back(survivors[i]);
  for (uint64_t i = cache.encoded(0, kSequence); i < survivors.size(); ++i)
    survivors2.push_back(survivors[i]);
  ASSERT_TRUE(
      compactSequence(cache, 0, kSequence, *full.key, *full.value, again)
          .isOk());
  Stored fresh2(kind);
  fresh2.add(t, survivors2);
  EXPECT_EQ(full.attend(q, now + 3), fresh2.attend(q, now + 3));
  if (kind == schema::ENCODING_F32 || kind == schema::ENCODING_BF16) {
    std::vector<float> got2 = full.attend(q, now + 3);
    std::vector<double> expected = referenceAttention(q, t, survivors2, kind);
    for (size_t i = 0; i < got2.size(); ++i)
      EXPECT_NEAR(got2[i], expected[i], 2e-5);
  }
}

/// Query heads of KV head `g` in an attention output of one row.
std::vector<float> groupOf(const std::vector<float> &out, uint32_t g) {
  return std::vector<float>(out.begin() + g * kGroup * kD,
                            out.begin() + (g + 1) * kGroup * kD);
}

TEST_P(CompactTest, EachHeadSeesExactlyItsKeptEntries) {
  const schema::EncodingKind kind = GetParam();
  constexpr uint32_t n = 150;
  Tokens t = randomTokens(n + 1, 40);
  const std::vector<uint64_t> all = upTo(n);
  Stored full(kind, /*headPositions=*/true);
  full.add(t, all, /*reserveExtra=*/3);
  PagedCache &cache = *full.cache;
  const uint64_t encoded = cache.encoded(0, kSequence);

  // Each head keeps entry 0 and the same number of others, drawn apart.
  const uint64_t count = 45;
  std::vector<std::vector<uint64_t>> kept(kKvHeads);
  for (uint32_t h = 0; h < kKvHeads; ++h) {
    std::vector<uint64_t> others(encoded - 1);
    for (uint64_t i = 0; i < others.size(); ++i)
      others[i] = i + 1;
    std::shuffle(others.begin(), others.end(), std::mt19937(7 + h));
    others.resize(count - 1);
    others.push_back(0);
    std::sort(others.begin(), others.end());
    kept[h] = others;
  }
  ASSERT_NE(kept[0], kept[1]);
  ASSERT_TRUE(compactSequence(cache, 0, kSequence, *full.key, *full.value, kept)
                  .isOk());
  EXPECT_EQ(cache.encoded(0, kSequence), count);
  EXPECT_EQ(cache.length(0, kSequence), count + (n - encoded));

  // Per head: its kept entries, then the tail, at their positions.
  std::vector<std::vector<uint64_t>> survivors = kept;
  for (std::vector<uint64_t> &list : survivors)
    for (uint64_t i = encoded; i < n; ++i)
      list.push_back(i);
  for (uint32_t h = 0; h < kKvHeads; ++h)
    for (uint64_t i = 0; i < survivors[h].size(); ++i)
      EXPECT_EQ(cache.position(0, kSequence, i, h),
                t.positions[survivors[h][i]]);

  // Head h attends, bit for bit, as a cache that only ever received its
  // entries (in every head) does in that head; a query older than some
  // kept entries checks the causal test on the head's own positions.
  std::vector<float> q = test::randomRows(1, kKvHeads * kGroup * kD, 50);
  const int32_t now = t.positions[n - 1] + 1, past = t.positions[90];
  std::vector<std::unique_ptr<Stored>> fresh;
  for (uint32_t h = 0; h < kKvHeads; ++h) {
    fresh.push_back(std::make_unique<Stored>(kind));
    fresh.back()->add(t, survivors[h]);
  }
  for (int32_t at : {now, past}) {
    std::vector<float> got = full.attend(q, at);
    for (uint32_t h = 0; h < kKvHeads; ++h)
      EXPECT_EQ(groupOf(got, h), groupOf(fresh[h]->attend(q, at), h))
          << "head " << h << " at " << at;
  }
  if (kind == schema::ENCODING_F32 || kind == schema::ENCODING_BF16) {
    std::vector<float> got = full.attend(q, now);
    for (uint32_t h = 0; h < kKvHeads; ++h) {
      std::vector<double> expected =
          referenceAttention(q, t, survivors[h], kind);
      for (size_t i = h * kGroup * kD; i < (h + 1) * kGroup * kD; ++i)
        EXPECT_NEAR(got[i], expected[i], 2e-5);
    }
  }

  // One more token, then a second compaction, every head keeping every
  // other entry of its own from a different start.
  full.add(t, {n});
  for (uint32_t h = 0; h < kKvHeads; ++h) {
    fresh[h]->add(t, {n});
    survivors[h].push_back(n);
  }
  const uint64_t encodedNow = cache.encoded(0, kSequence);
  std::vector<std::vector<uint64_t>> again(kKvHeads);
  for (uint32_t h = 0; h < kKvHeads; ++h)
    for (uint64_t i = h; again[h].size() < encodedNow / 2; i += 2)
      again[h].push_back(i);
  std::vector<std::vector<uint64_t>> survivors2(kKvHeads);
  for (uint32_t h = 0; h < kKvHeads; ++h) {
    for (uint64_t i : again[h])
      survivors2[h].push_back(survivors[h][i]);
    for (uint64_t i = encodedNow; i < survivors[h].size(); ++i)
      survivors2[h].push_back(survivors[h][i]);
  }
  ASSERT_TRUE(
      compactSequence(cache, 0, kSequence, *full.key, *full.value, again)
          .isOk());
  std::vector<float> got = full.attend(q, now + 3);
  for (uint32_t h = 0; h < kKvHeads; ++h) {
    Stored fresh2(kind);
    fresh2.add(t, survivors2[h]);
    EXPECT_EQ(groupOf(got, h), groupOf(fresh2.attend(q, now + 3), h))
        << "head " << h;
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, CompactTest,
                         ::testing::Values(schema::ENCODING_F32,
                                           schema::ENCODING_BF16,
                                           schema::ENCODING_FP8,
                                           schema::ENCODING_NVFP4,
                                           schema::ENCODING_POLAR));

TEST(Compact, RefusesKiviKeysAndBadIndices) {
  Stored s(schema::ENCODING_F32);
  Tokens t = randomTokens(40, 2);
  const std::vector<uint64_t> all = upTo(40);
  s.add(t, all);
  schema::Encoding kivi;
  kivi.set_kind(schema::ENCODING_INT);
  kivi.set_bits(2);
  kivi.set_group(32);
  CodecContext context;
  context.kvHeads = kKvHeads;
  context.headDim = kD;
  std::unique_ptr<Codec> kiviKeys = test::makeCodecOrDie(kivi, context);
  ASSERT_GT(kiviKeys->groupTokens(), 1u);
  Status refused =
      compactSequence(*s.cache, 0, kSequence, *kiviKeys, *s.value, {0, 3});
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.message().find("KIVI"), std::string::npos)
      << refused.message();
  EXPECT_FALSE(
      compactSequence(*s.cache, 0, kSequence, *s.key, *s.value, {3, 3}).isOk());
  EXPECT_FALSE(
      compactSequence(*s.cache, 0, kSequence, *s.key, *s.value, {0, 38})
          .isOk()); // 38 is in the tail.
  EXPECT_EQ(s.cache->encoded(0, kSequence), 40u - kTailWindow);
}

TEST(Compact, PerHeadListsNeedHeadPositionsAndOneLength) {
  using Lists = std::vector<std::vector<uint64_t>>;
  Tokens t = randomTokens(40, 3);
  const std::vector<uint64_t> all = upTo(40);
  Stored shared(schema::ENCODING_F32);
  shared.add(t, all);
  Status refused = compactSequence(*shared.cache, 0, kSequence, *shared.key,
                                   *shared.value, Lists{{0, 2}, {1, 2}});
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.message().find("one position per token"), std::string::npos)
      << refused.message();
  Stored each(schema::ENCODING_F32, /*headPositions=*/true);
  each.add(t, all);
  refused = compactSequence(*each.cache, 0, kSequence, *each.key, *each.value,
                            Lists{{0, 2}, {1, 2, 3}});
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.message().find("as many entries"), std::string::npos)
      << refused.message();
  EXPECT_FALSE(compactSequence(*each.cache, 0, kSequence, *each.key,
                               *each.value, Lists{{0}, {1}, {2}})
                   .isOk());
  EXPECT_EQ(each.cache->encoded(0, kSequence), 40u - kTailWindow);
  EXPECT_TRUE(compactSequence(*each.cache, 0, kSequence, *each.key, *each.value,
                              Lists{{0, 2}, {1, 2}})
                  .isOk());
  EXPECT_EQ(each.cache->position(0, kSequence, 0, 0), t.positions[0]);
  EXPECT_EQ(each.cache->position(0, kSequence, 0, 1), t.positions[1]);
}

} // namespace
