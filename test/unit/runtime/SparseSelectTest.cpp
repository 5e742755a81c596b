//===- SparseSelectTest.cpp - Two-level selection against float64 ---------===//
//
// The entries a decode query attends to under a two-level policy must be
// those a float64 evaluation of the rule in sparse/TwoLevel.h chooses from
// the same inputs (the codec's decoded keys and prepared queries): block
// bounds from minima and maxima rounded outward to FP8 codes (with an
// exponent per block), ranked across the group's heads, then exact scores
// inside the top blocks. And attention
// over a selection must equal float64 attention over exactly those entries
// and the tail.
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"
#include "runtime/src/backends/cpu/Eviction.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/cache/codecs/Minifloat.h"
#include "runtime/src/sparse/BlockSummary.h"
#include "runtime/src/sparse/TwoLevel.h"
#include "test/unit/BestByRank.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

using namespace kvrt;

namespace {

using kvopt::test::bestByRank;

constexpr uint32_t kKvHeads = 2, kGroup = 3, kD = 64;
constexpr uint64_t kSequence = 7;

/// The values a bound's code may take, ascending: zero and E4M3's normal
/// numbers (bounds are never subnormal codes).
const std::vector<double> &boundGrid() {
  static const std::vector<double> grid = [] {
    std::vector<double> g{0.0};
    for (uint32_t code = 0x08; code < sparse::kBoundNaN; ++code) {
      g.push_back(codecs::decodeMinifloat(code, codecs::kE4M3));
      g.push_back(-g.back());
    }
    std::sort(g.begin(), g.end());
    return g;
  }();
  return grid;
}

/// The exponent of a block whose bounds reach `largest`: the smallest e in
/// the allowed range with largest <= 448 * 2^e.
int referenceExponent(double largest) {
  int e = sparse::kMinBoundExponent;
  while (e < sparse::kMaxBoundExponent && largest > std::ldexp(448.0, e))
    ++e;
  return e;
}

/// The lower and upper bound of `x` in a block of exponent `e`: the nearest
/// grid values times 2^e on either side.
double boundBelow(double x, int e) {
  const std::vector<double> &g = boundGrid();
  return std::ldexp(
      *std::prev(std::upper_bound(g.begin(), g.end(), std::ldexp(x, -e))), e);
}
double boundAbove(double x, int e) { return -boundBelow(-x, e); }

TEST(BlockSummary, BoundsAreTheNearestCodesOutside) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> exponents(sparse::kMinBoundExponent,
                                               sparse::kMaxBoundExponent);
  for (int i = 0; i < 20000; ++i) {
    const int e = exponents(rng);
    // Within the block's range, down to far below its smallest code.
    const float x = std::ldexp(
        normal(rng), e + std::uniform_int_distribution<>(-30, 7)(rng));
    if (std::fabs(std::ldexp(double(x), -e)) > 448)
      continue;
    const uint8_t below = sparse::boundCode(x, e, false);
    const uint8_t above = sparse::boundCode(x, e, true);
    EXPECT_EQ(double(sparse::boundValue(below, e)), boundBelow(x, e))
        << x << " 2^" << e;
    EXPECT_EQ(double(sparse::boundValue(above, e)), boundAbove(x, e))
        << x << " 2^" << e;
  }
  for (float x : {0.0f, -0.0f})
    for (bool upper : {false, true})
      EXPECT_EQ(sparse::boundValue(sparse::boundCode(x, 0, upper), 0), 0.0f);
  // Beyond 448 * 2^e (only where e is clamped at its largest): NaN.
  EXPECT_TRUE(std::isnan(sparse::boundValue(
      sparse::boundCode(1e38f, sparse::kMaxBoundExponent, true), 0)));
  EXPECT_TRUE(std::isnan(sparse::boundValue(
      sparse::boundCode(-INFINITY, sparse::kMaxBoundExponent, false), 0)));
}

TEST(BlockSummary, ExponentIsTheSmallestThatHoldsTheBlock) {
  std::mt19937 rng(6);
  std::vector<float> xs = {0.0f, 1e-45f, 1e-38f, 448.0f, 449.0f, 3.0e38f};
  for (int i = 0; i < 20000; ++i)
    xs.push_back(std::ldexp(std::uniform_real_distribution<float>(1, 2)(rng),
                            std::uniform_int_distribution<>(-126, 127)(rng)));
  for (float x : xs)
    EXPECT_EQ(sparse::boundExponent(x), referenceExponent(x)) << x;
  EXPECT_EQ(sparse::boundExponent(INFINITY), sparse::kMaxBoundExponent);
}

TEST(BlockSummary, ValuesAreTheCodesTimesTheExponent) {
  for (int e : {sparse::kMinBoundExponent, -7, 0, sparse::kMaxBoundExponent})
    for (uint32_t code = 0; code < 256; ++code) {
      const double want =
          std::ldexp(codecs::decodeMinifloat(code, codecs::kE4M3), e);
      const float got = sparse::boundValue(uint8_t(code), e);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(got)) << code;
      else
        EXPECT_EQ(double(got), want) << code << " 2^" << e;
    }
}

TEST(BlockSummary, DecodedBoundsAreTheCodesValues) {
  std::vector<uint8_t> codes(2 * 128);
  std::iota(codes.begin(), codes.end(), 0); // every code once
  std::vector<float> lower(128), upper(128);
  for (int e = sparse::kMinBoundExponent; e <= sparse::kMaxBoundExponent; ++e) {
    sparse::decodeBounds({codes.data(), 128, e}, lower.data(), upper.data());
    for (uint32_t c = 0; c < 256; ++c) {
      const float want = sparse::boundValue(uint8_t(c), e);
      const float got = c < 128 ? lower[c] : upper[c - 128];
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(got)) << c << " 2^" << e;
      else
        EXPECT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
            << c << " 2^" << e << ": " << got << " against " << want;
    }
  }
}

schema::Encoding encoding(schema::EncodingKind kind, uint32_t bits = 0,
                          uint32_t group = 0) {
  schema::Encoding e;
  e.set_kind(kind);
  e.set_bits(bits);
  e.set_group(group);
  e.set_seed(3);
  if (kind == schema::ENCODING_FP8)
    e.set_scale_mode(schema::SCALE_MODE_DYNAMIC);
  return e;
}

/// One layer of `tokens` random keys and values, every one encoded (the
/// tail emptied), with block summaries of `block` entries; appended and
/// encoded `chunk` tokens at a time (0: all at once), as decode steps
/// append one.
struct Layer {
  std::unique_ptr<Codec> keys, values, tail;
  cpu::CacheCodecs codecs;
  std::unique_ptr<PagedCache> cache;

  Layer(const schema::Encoding &key, uint32_t pageSize, uint32_t block,
        uint32_t tokens, uint32_t seed, uint32_t chunk = 0) {
    CodecContext context;
    context.kvHeads = kKvHeads;
    context.headDim = kD;
    keys = test::makeCodecOrDie(key, context);
    context.side = CacheSide::Value;
    values = test::makeCodecOrDie(encoding(schema::ENCODING_BF16), context);
    tail = test::makeCodecOrDie(encoding(schema::ENCODING_F32), context);
    codecs = {keys.get(), values.get(), tail.get(), true, true};
    CacheLayerShape shape;
    shape.kvHeads = kKvHeads;
    shape.headDim = kD;
    shape.pageSize = pageSize;
    shape.keyHeadBytes = keys->headBytes(pageSize);
    shape.valueHeadBytes = values->headBytes(pageSize);
    shape.flushGroup = keys->groupTokens();
    shape.capacityPages = tokens / pageSize + 2;
    shape.summaryBlock = block;
    cache = std::make_unique<PagedCache>(std::vector<CacheLayerShape>{shape});
    EXPECT_TRUE(cache->addSequence(kSequence).isOk());
    // Room for one more token, which a test leaves in the tail.
    EXPECT_TRUE(cache->reserve({{kSequence, tokens + 1}}).isOk());
    // Channels of uneven scale and mean, as real keys have, so that block
    // bounds differ between blocks.
    std::vector<float> scales, means;
    for (uint32_t c = 0; c < kKvHeads * kD; ++c) {
      scales.push_back(c % 11 == 0 ? 4.0f : 0.5f + float(c % 5) * 0.4f);
      means.push_back(c % 7 == 0 ? 1.5f : 0.0f);
    }
    std::vector<float> k =
        test::randomRows(tokens, kKvHeads * kD, seed, scales, means);
    std::vector<float> v = test::randomRows(tokens, kKvHeads * kD, seed + 1);
    std::vector<uint64_t> sequences(tokens, kSequence);
    std::vector<int32_t> positions(tokens);
    std::iota(positions.begin(), positions.end(), 0);
    cpu::ThreadPool pool(2);
    const uint32_t step = chunk ? chunk : tokens;
    for (uint32_t first = 0; first < tokens; first += step) {
      const uint32_t n = std::min(step, tokens - first);
      const size_t row = size_t(first) * kKvHeads * kD;
      cpu::append(pool, *cache, 0, codecs, k.data() + row, v.data() + row, n,
                  sequences.data(), positions.data() + first);
      cpu::encodeTails(pool, *cache, 0, codecs, &kSequence, 1);
    }
  }

  /// The bytes of the summaries (codes, then exponents) of every page that
  /// holds encoded entries (not the reserved one after them).
  std::vector<uint8_t> summaryBytes() const {
    const CacheLayerShape &shape = cache->shape(0);
    const std::vector<uint32_t> &pages = cache->pages(0, kSequence);
    const uint64_t used =
        (cache->encoded(0, kSequence) + shape.pageSize - 1) / shape.pageSize;
    std::vector<uint8_t> bytes;
    for (uint64_t p = 0; p < used; ++p) {
      const Page &page = cache->page(0, pages[p]);
      const uint8_t *codes = page.keyBounds.get();
      const auto *exponents =
          reinterpret_cast<const uint8_t *>(page.boundExponents.get());
      bytes.insert(bytes.end(), codes,
                   codes + shape.summariesPerPage() * 2 * shape.headDim);
      bytes.insert(bytes.end(), exponents,
                   exponents + shape.summariesPerPage());
    }
    return bytes;
  }

  /// Entry `index` of KV head `head` as the key codec decodes it.
  std::vector<float> key(uint32_t head, uint64_t index) const {
    const CacheLayerShape &shape = cache->shape(0);
    const Page &page =
        cache->page(0, cache->pages(0, kSequence)[index / shape.pageSize]);
    std::vector<float> out(kD);
    keys->decode(page.keys.get() + head * shape.keyHeadBytes,
                 uint32_t(index % shape.pageSize), out.data());
    return out;
  }
};

/// max_h (x[h][i] - max_j x[h][j]), NaN-free inputs.
std::vector<double> rankAcrossHeads(const std::vector<std::vector<double>> &x) {
  std::vector<double> rank(x[0].size(),
                           -std::numeric_limits<double>::infinity());
  for (const std::vector<double> &head : x) {
    double best = *std::max_element(head.begin(), head.end());
    for (size_t i = 0; i < head.size(); ++i)
      rank[i] = std::max(rank[i], head[i] - best);
  }
  return rank;
}

/// The float64 selection of sparse/TwoLevel.h for KV head `head`.
std::vector<uint64_t>
referenceSelection(const Layer &layer, uint32_t head,
                   const std::vector<std::vector<float>> &prepared,
                   const sparse::SelectPolicy &policy) {
  uint64_t n = layer.cache->encoded(0, kSequence);
  std::vector<std::vector<float>> keys;
  for (uint64_t i = 0; i < n; ++i)
    keys.push_back(layer.key(head, i));
  uint64_t blocks = (n + policy.block - 1) / policy.block;
  std::vector<std::vector<double>> bound(prepared.size(),
                                         std::vector<double>(blocks));
  for (uint64_t b = 0; b < blocks; ++b) {
    std::vector<double> lo(kD, std::numeric_limits<double>::infinity()),
        hi(kD, -std::numeric_limits<double>::infinity());
    for (uint64_t i = b * policy.block;
         i < std::min<uint64_t>(n, (b + 1) * policy.block); ++i)
      for (uint32_t c = 0; c < kD; ++c) {
        lo[c] = std::min<double>(lo[c], keys[i][c]);
        hi[c] = std::max<double>(hi[c], keys[i][c]);
      }
    double largest = 0;
    for (uint32_t c = 0; c < kD; ++c)
      largest = std::max({largest, std::fabs(lo[c]), std::fabs(hi[c])});
    const int e = referenceExponent(largest);
    for (uint32_t c = 0; c < kD; ++c) {
      lo[c] = boundBelow(lo[c], e);
      hi[c] = boundAbove(hi[c], e);
    }
    for (size_t h = 0; h < prepared.size(); ++h)
      for (uint32_t c = 0; c < kD; ++c)
        bound[h][b] += std::max(prepared[h][c] * lo[c], prepared[h][c] * hi[c]);
  }
  std::vector<double> blockRank = rankAcrossHeads(bound);
  blockRank.front() = blockRank.back() =
      std::numeric_limits<double>::infinity();
  std::vector<uint64_t> candidates;
  for (uint64_t b : bestByRank(blockRank, policy.topBlocks))
    for (uint64_t i = b * policy.block;
         i < std::min<uint64_t>(n, (b + 1) * policy.block); ++i)
      candidates.push_back(i);
  std::vector<std::vector<double>> score(
      prepared.size(), std::vector<double>(candidates.size()));
  for (size_t h = 0; h < prepared.size(); ++h)
    for (size_t i = 0; i < candidates.size(); ++i)
      for (uint32_t c = 0; c < kD; ++c)
        score[h][i] += double(prepared[h][c]) * keys[candidates[i]][c];
  std::vector<uint64_t> selected;
  for (uint64_t i : bestByRank(rankAcrossHeads(score), policy.topTokens))
    selected.push_back(candidates[i]);
  return selected;
}

struct SelectCase {
  const char *name;
  schema::Encoding key;
  uint32_t pageSize, block, topBlocks, topTokens;
};

void PrintTo(const SelectCase &c, std::ostream *os) { *os << c.name; }

class TwoLevelSelection : public ::testing::TestWithParam<SelectCase> {};

TEST_P(TwoLevelSelection, ChoosesWhatFloat64Chooses) {
  const SelectCase &c = GetParam();
  const uint32_t tokens = 36 * 16;
  Layer layer(c.key, c.pageSize, c.block, tokens, 21);
  ASSERT_EQ(layer.cache->encoded(0, kSequence), tokens);
  sparse::SelectPolicy policy{c.block, c.topBlocks, c.topTokens};
  sparse::SelectScratch scratch;
  std::vector<uint64_t> selected;
  for (uint32_t trial = 0; trial < 8; ++trial) {
    std::vector<float> q = test::randomRows(kGroup, kD, 100 + trial);
    for (uint32_t head = 0; head < kKvHeads; ++head) {
      std::vector<float> prepared(kGroup * kD);
      std::vector<std::vector<float>> rows;
      for (uint32_t h = 0; h < kGroup; ++h) {
        layer.keys->prepareQuery(q.data() + h * kD, head,
                                 prepared.data() + h * kD);
        rows.emplace_back(prepared.begin() + h * kD,
                          prepared.begin() + (h + 1) * kD);
      }
      ASSERT_TRUE(sparse::selectEntries(*layer.cache, 0, kSequence, *layer.keys,
                                        head, prepared.data(), kD, kGroup,
                                        policy, scratch, selected));
      EXPECT_EQ(selected.size(), std::min<uint64_t>(c.topTokens, tokens));
      EXPECT_EQ(selected, referenceSelection(layer, head, rows, policy))
          << "trial " << trial << ", KV head " << head;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Encodings, TwoLevelSelection,
    ::testing::Values(
        SelectCase{"quest_bf16", encoding(schema::ENCODING_BF16), 16, 16, 6,
                   96},
        SelectCase{"twolevel_bf16", encoding(schema::ENCODING_BF16), 64, 32, 5,
                   50},
        SelectCase{"twolevel_fp8", encoding(schema::ENCODING_FP8), 16, 16, 8,
                   40},
        SelectCase{"twolevel_nvfp4", encoding(schema::ENCODING_NVFP4), 32, 16,
                   8, 40},
        SelectCase{"twolevel_polar4", encoding(schema::ENCODING_POLAR, 4), 16,
                   16, 8, 40},
        SelectCase{"quest_kivi4", encoding(schema::ENCODING_INT, 4, 32), 32, 16,
                   6, 96}),
    [](const ::testing::TestParamInfo<SelectCase> &info) {
      return std::string(info.param.name);
    });

// A decode step adds one key to its block: the block is summarised anew
// from all its keys, so its codes and exponent are those a prefill of the
// same keys stores (a block's exponent grows as larger keys join it).
TEST(BlockSummary, OneTokenAtATimeStoresWhatAPrefillStores) {
  for (const schema::Encoding &key :
       {encoding(schema::ENCODING_BF16), encoding(schema::ENCODING_POLAR, 4)}) {
    Layer prefilled(key, 16, 16, 80, 5);
    Layer stepped(key, 16, 16, 80, 5, 1);
    EXPECT_EQ(prefilled.summaryBytes(), stepped.summaryBytes())
        << schema::EncodingKind_Name(key.kind());
  }
}

TEST(TwoLevelSelection, ShortSequencesAttendDensely) {
  Layer layer(encoding(schema::ENCODING_BF16), 16, 16, 64, 3);
  sparse::SelectPolicy policy{16, 2, 64};
  sparse::SelectScratch scratch;
  std::vector<uint64_t> selected{1, 2};
  std::vector<float> prepared(kGroup * kD, 0.5f);
  EXPECT_FALSE(sparse::selectEntries(*layer.cache, 0, kSequence, *layer.keys, 0,
                                     prepared.data(), kD, kGroup, policy,
                                     scratch, selected));
  EXPECT_TRUE(selected.empty());
}

TEST(TwoLevelSelection, EvictionRebuildsTheSummaries) {
  // StreamingLLM keeps 4 sinks and the most recent entries: every block
  // after the first holds other keys than before, and the selection must
  // still be the float64 one over the compacted cache.
  const uint32_t tokens = 576;
  Layer layer(encoding(schema::ENCODING_BF16), 16, 16, tokens, 31);
  cpu::AttentionParams attention;
  attention.cache = layer.cache.get();
  attention.codecs = layer.codecs;
  attention.scale = 0.125f;
  attention.select = {16, 4, 40};
  schema::EvictParams plan;
  plan.set_method(schema::EVICT_METHOD_STREAMING);
  plan.set_budget_tokens(203);
  plan.set_sinks(4);
  plan.set_interval(1);
  cpu::LayerEviction eviction({plan, {}, {}}, attention);
  cpu::ThreadPool pool(2);
  std::vector<float> q = test::randomRows(1, kKvHeads * kGroup * kD, 41);
  int32_t position = int32_t(tokens - 1);
  ASSERT_TRUE(eviction
                  .run(pool, *layer.cache, q.data(), 1, kKvHeads * kGroup,
                       &kSequence, &position)
                  .isOk());
  ASSERT_EQ(layer.cache->length(0, kSequence), 203u);

  sparse::SelectScratch scratch;
  std::vector<uint64_t> selected;
  for (uint32_t head = 0; head < kKvHeads; ++head) {
    std::vector<std::vector<float>> rows;
    for (uint32_t h = 0; h < kGroup; ++h)
      rows.emplace_back(q.begin() + (head * kGroup + h) * kD,
                        q.begin() + (head * kGroup + h + 1) * kD);
    ASSERT_TRUE(sparse::selectEntries(*layer.cache, 0, kSequence, *layer.keys,
                                      head, q.data() + head * kGroup * kD, kD,
                                      kGroup, attention.select, scratch,
                                      selected));
    EXPECT_EQ(selected, referenceSelection(layer, head, rows, attention.select))
        << "KV head " << head;
  }
}

TEST(TwoLevelSelection, AttentionReadsExactlyTheSelectedEntries) {
  // One decode row over 300 bf16 entries and a tail token: the output
  // must be float64 attention over the selection plus the tail.
  const uint32_t tokens = 300;
  Layer layer(encoding(schema::ENCODING_BF16), 16, 16, tokens, 8);
  // The last token stays in the tail: append it after encoding the rest.
  std::vector<float> k = test::randomRows(1, kKvHeads * kD, 91);
  std::vector<float> v = test::randomRows(1, kKvHeads * kD, 92);
  int32_t position = int32_t(tokens);
  cpu::ThreadPool pool(2);
  layer.cache->append(0, kSequence, position, k.data(), v.data());
  ASSERT_EQ(layer.cache->encoded(0, kSequence), tokens);

  cpu::AttentionParams params;
  params.cache = layer.cache.get();
  params.codecs = layer.codecs;
  params.scale = 0.125f;
  params.select = {16, 4, 40};
  std::vector<float> q = test::randomRows(1, kKvHeads * kGroup * kD, 93);
  std::vector<float> out(q.size());
  std::vector<std::vector<float>> scratch;
  cpu::attention(pool, params, q.data(), 1, kKvHeads * kGroup, &kSequence,
                 &position, out.data(), scratch, nullptr);

  const CacheLayerShape &shape = layer.cache->shape(0);
  const std::vector<uint32_t> &pages = layer.cache->pages(0, kSequence);
  for (uint32_t g = 0; g < kKvHeads; ++g) {
    std::vector<std::vector<float>> rows;
    for (uint32_t h = 0; h < kGroup; ++h)
      rows.emplace_back(q.begin() + (g * kGroup + h) * kD,
                        q.begin() + (g * kGroup + h + 1) * kD);
    std::vector<uint64_t> selected =
        referenceSelection(layer, g, rows, params.select);
    ASSERT_EQ(selected.size(), 40u);
    std::vector<std::vector<float>> keys, values;
    for (uint64_t i : selected) {
      keys.push_back(layer.key(g, i));
      const Page &page = layer.cache->page(0, pages[i / shape.pageSize]);
      std::vector<float> value(kD);
      layer.values->decode(page.values.get() + g * shape.valueHeadBytes,
                           uint32_t(i % shape.pageSize), value.data());
      values.push_back(value);
    }
    const Tail &tail = layer.cache->tail(0, kSequence);
    keys.emplace_back(tail.keys[g].begin(), tail.keys[g].end());
    values.emplace_back(tail.values[g].begin(), tail.values[g].end());
    for (uint32_t h = 0; h < kGroup; ++h) {
      std::vector<double> logits;
      for (const std::vector<float> &key : keys) {
        double dot = 0;
        for (uint32_t c = 0; c < kD; ++c)
          dot += double(rows[h][c]) * key[c];
        logits.push_back(dot * params.scale);
      }
      double top = *std::max_element(logits.begin(), logits.end()), sum = 0;
      for (double &l : logits)
        sum += (l = std::exp(l - top));
      for (uint32_t c = 0; c < kD; ++c) {
        double expected = 0;
        for (size_t i = 0; i < keys.size(); ++i)
          expected += logits[i] / sum * values[i][c];
        EXPECT_NEAR(out[(g * kGroup + h) * kD + c], expected, 1e-5)
            << "KV head " << g << ", query head " << h << ", channel " << c;
      }
    }
  }
}

} // namespace
