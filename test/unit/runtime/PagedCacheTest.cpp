//===- PagedCacheTest.cpp - Pages, page tables, tails, exhaustion --------===//
#include "runtime/src/cache/PagedCache.h"

#include <gtest/gtest.h>

using namespace kvrt;

namespace {

/// A layer of 2 heads of 8 f32 keys and values per token.
CacheLayerShape f32Layer(uint32_t pageSize, uint64_t pages) {
  CacheLayerShape s;
  s.kvHeads = 2;
  s.headDim = 8;
  s.pageSize = pageSize;
  s.keyHeadBytes = s.valueHeadBytes = uint64_t(pageSize) * 8 * 4;
  s.capacityPages = pages;
  return s;
}

/// Two layers with different page sizes.
PagedCache makeCache(uint64_t pagesPerLayer) {
  return PagedCache({f32Layer(4, pagesPerLayer), f32Layer(3, pagesPerLayer)});
}

/// Appends one token whose 16 keys are all `value` (values: -value).
void appendToken(PagedCache &cache, uint32_t layer, uint64_t sequence,
                 int32_t position, float value) {
  std::vector<float> keys(16, value), values(16, -value);
  cache.append(layer, sequence, position, keys.data(), values.data());
}

TEST(PagedCache, AllocatesPagesAsTokensArrive) {
  PagedCache cache = makeCache(10);
  ASSERT_TRUE(cache.addSequence(1).isOk());
  EXPECT_EQ(cache.bytesPerToken(), 2.0 * 2 * (32 + 32));
  EXPECT_EQ(cache.capacityTokens(), 30u) << "10 pages of 3 tokens bound it";
  ASSERT_TRUE(cache.reserve({{1, 5}}).isOk());
  EXPECT_EQ(cache.pages(0, 1).size(), 2u); // 5 tokens in pages of 4
  EXPECT_EQ(cache.pages(1, 1).size(), 2u); // and of 3
  uint64_t page0 = 2 * 4 * 64 + 4 * 4, page1 = 2 * 3 * 64 + 3 * 4;
  EXPECT_EQ(cache.bytesInUse(), 2 * page0 + 2 * page1);
  ASSERT_TRUE(cache.reserve({{1, 1}}).isOk());
  EXPECT_EQ(cache.pages(0, 1).size(), 2u);
  EXPECT_FALSE(cache.addSequence(1).isOk());
}

TEST(PagedCache, KeepsPositionsAndOrder) {
  PagedCache cache = makeCache(10);
  ASSERT_TRUE(cache.addSequence(7).isOk());
  ASSERT_TRUE(cache.reserve({{7, 6}}).isOk());
  std::vector<int32_t> positions = {0, 3, 4, 9, 10, 42};
  for (int32_t p : positions)
    appendToken(cache, 1, 7, p, float(p));
  EXPECT_EQ(cache.length(1, 7), 6u);
  EXPECT_EQ(cache.length(0, 7), 0u);
  std::vector<int32_t> stored;
  for (uint64_t i = 0; i < cache.length(1, 7); ++i)
    stored.push_back(cache.position(1, 7, i));
  EXPECT_EQ(stored, positions);
  // Nothing is encoded until the backend flushes the tail.
  EXPECT_EQ(cache.encoded(1, 7), 0u);
  EXPECT_EQ(cache.tail(1, 7).tokens(), 6u);
  EXPECT_EQ(cache.tail(1, 7).keys[1][5 * 8], 42.0f);
}

TEST(PagedCache, FlushesWholeGroupsBeyondTheWindow) {
  CacheLayerShape kivi = f32Layer(8, 10);
  kivi.tailWindow = 3;
  kivi.flushGroup = 4;
  PagedCache cache({kivi});
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.reserve({{1, 13}}).isOk());
  for (int32_t p = 0; p < 6; ++p)
    appendToken(cache, 0, 1, p, float(p));
  EXPECT_EQ(cache.flushable(0, 1), 0u); // 6 - 3 is less than a group
  appendToken(cache, 0, 1, 6, 6.0f);
  ASSERT_EQ(cache.flushable(0, 1), 4u);
  // The window is counted at 2 bytes a value, as bf16.
  uint64_t pages = 2 * (2 * 8 * 8 * 4 * 2 + 8 * 4);
  EXPECT_EQ(cache.bytesInUse(), pages + 7 * 2 * 8 * 2 * 2);
  std::vector<float> firstKeys;
  cache.flush(0, 1, 4, [&](uint64_t first, uint64_t count, const Tail &tail) {
    EXPECT_EQ(first, 0u);
    EXPECT_EQ(count, 4u);
    for (uint64_t t = 0; t < count; ++t)
      firstKeys.push_back(tail.keys[0][t * 8]);
  });
  EXPECT_EQ(firstKeys, (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(cache.encoded(0, 1), 4u);
  EXPECT_EQ(cache.tail(0, 1).tokens(), 3u);
  EXPECT_EQ(cache.tail(0, 1).values[1][0], -4.0f);
  EXPECT_EQ(cache.bytesInUse(), pages + 3 * 2 * 8 * 2 * 2);
  cache.removeSequence(1);
  EXPECT_EQ(cache.bytesInUse(), 0u);
}

TEST(PagedCache, FreeingReturnsPages) {
  PagedCache cache = makeCache(4);
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.addSequence(2).isOk());
  ASSERT_TRUE(cache.reserve({{1, 9}}).isOk()); // 3 pages in both layers
  uint64_t peak = cache.bytesInUse();
  EXPECT_FALSE(cache.reserve({{2, 5}}).isOk());
  cache.removeSequence(1);
  EXPECT_EQ(cache.bytesInUse(), 0u);
  EXPECT_EQ(cache.peakBytes(), peak);
  EXPECT_FALSE(cache.contains(1));
  ASSERT_TRUE(cache.reserve({{2, 12}}).isOk());
  EXPECT_EQ(cache.pages(1, 2).size(), 4u);
}

TEST(PagedCache, ExhaustionIsAnErrorThatChangesNothing) {
  PagedCache cache = makeCache(3);
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.addSequence(2).isOk());
  ASSERT_TRUE(cache.reserve({{1, 4}}).isOk());
  for (uint32_t layer : {0u, 1u})
    for (int32_t p = 0; p < 4; ++p)
      appendToken(cache, layer, 1, p, 1.0f);
  uint64_t before = cache.bytesInUse();
  // Layer 0: sequence 1 grows to 6 tokens (one more page), sequence 2 needs
  // two; one page is in use, so two are free.
  Status s = cache.reserve({{1, 2}, {2, 6}});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(),
            "KV cache pool exhausted: layer 0 needs 3 more pages of 4 tokens "
            "but 2 of its 3 are free; remove finished sequences or raise "
            "EngineOptions::cacheTokens");
  EXPECT_TRUE(s.isCacheFull()) << "a scheduler could not preempt for it";
  EXPECT_EQ(cache.bytesInUse(), before);
  EXPECT_EQ(cache.pages(0, 2).size(), 0u);
  EXPECT_EQ(cache.pages(0, 1).size(), 1u);
}

/// Encodes every tail token of `sequence` in every layer (an f32 codec
/// would copy them into the pages).
void flushAll(PagedCache &cache, uint64_t sequence) {
  for (uint32_t layer : {0u, 1u})
    cache.flush(layer, sequence, cache.flushable(layer, sequence),
                [](uint64_t, uint64_t, const Tail &) {});
}

TEST(PagedCache, SharesWholeEncodedPagesWithAForkCountedOnce) {
  PagedCache cache = makeCache(6);
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.reserve({{1, 14}}).isOk());
  for (uint32_t layer : {0u, 1u})
    for (int32_t p = 0; p < 14; ++p)
      appendToken(cache, layer, 1, 10 + p, float(p));
  // Nothing encoded yet: nothing to share.
  EXPECT_EQ(cache.shareableTokens(1, 14), 0u);
  flushAll(cache, 1);
  // Pages of 4 and of 3 tokens: 12 is the most both layers fill whole.
  EXPECT_EQ(cache.shareableTokens(1, 14), 12u);
  EXPECT_EQ(cache.shareableTokens(1, 11), 0u) << "4 and 3 divide no less";
  const uint64_t before = cache.bytesInUse();
  EXPECT_EQ(cache.share(1, 2, 11).message(),
            "cannot share 11 tokens of sequence 1: they do not fill whole "
            "pages of encoded entries");
  ASSERT_TRUE(cache.share(1, 2, 12).isOk());
  EXPECT_EQ(cache.bytesInUse(), before) << "shared pages counted twice";
  EXPECT_EQ(cache.length(0, 2), 12u);
  EXPECT_EQ(cache.encoded(1, 2), 12u);
  EXPECT_EQ(cache.position(1, 2, 11), 21);
  EXPECT_EQ(std::vector<uint32_t>(cache.pages(0, 2)),
            std::vector<uint32_t>(cache.pages(0, 1).begin(),
                                  cache.pages(0, 1).begin() + 3));
  // The fork's next token takes a page of its own in each layer.
  ASSERT_TRUE(cache.reserve({{2, 1}}).isOk());
  EXPECT_EQ(cache.pages(0, 2).size(), 4u);
  EXPECT_EQ(cache.pages(1, 2).size(), 5u);
  EXPECT_NE(cache.pages(0, 2)[3], cache.pages(0, 1)[3]);
  appendToken(cache, 0, 2, 30, 99.0f);
  EXPECT_EQ(cache.position(0, 2, 12), 30);
  EXPECT_EQ(cache.position(0, 1, 12), 22) << "the fork wrote the source's";
  // The source gone, the fork still holds the shared pages; both gone,
  // every page is free again.
  cache.removeSequence(1);
  EXPECT_EQ(cache.bytesInUse(),
            4 * (2 * 4 * 64 + 4 * 4) + 5 * (2 * 3 * 64 + 3 * 4));
  EXPECT_EQ(cache.position(0, 2, 5), 15);
  cache.removeSequence(2);
  EXPECT_EQ(cache.bytesInUse(), 0u);
  ASSERT_TRUE(cache.addSequence(3).isOk());
  EXPECT_TRUE(cache.reserve({{3, 18}}).isOk()) << "a shared page leaked";
}

TEST(PagedCache, AForkTakesTheExactSinksItSharesAndNoWindow) {
  CacheLayerShape windowed = f32Layer(4, 10);
  windowed.tailWindow = 3;
  windowed.sinkTokens = 2;
  CacheLayerShape plain = f32Layer(4, 10);
  PagedCache cache({windowed, plain});
  ASSERT_TRUE(cache.addSequence(1).isOk());
  ASSERT_TRUE(cache.reserve({{1, 10}}).isOk());
  for (uint32_t layer : {0u, 1u})
    for (int32_t p = 0; p < 10; ++p)
      appendToken(cache, layer, 1, p, float(p));
  flushAll(cache, 1);
  // The window keeps 3 of 10 tokens in the tail: 7 encoded, one page.
  EXPECT_EQ(cache.shareableTokens(1, 10), 4u);
  ASSERT_TRUE(cache.share(1, 2, 4).isOk());
  EXPECT_EQ(cache.tail(0, 2).tokens(), 0u);
  ASSERT_EQ(cache.sinks(0, 2).tokens(), 2u);
  EXPECT_EQ(cache.sinks(0, 2).keys[1][8], 1.0f);
  EXPECT_EQ(cache.sinks(1, 2).tokens(), 0u);
  cache.removeSequence(1);
  cache.removeSequence(2);
  EXPECT_EQ(cache.bytesInUse(), 0u) << "the sinks' bytes were not counted";
}

} // namespace
