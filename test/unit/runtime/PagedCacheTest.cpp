//===- PagedCacheTest.cpp - Pages, page tables, exhaustion ---------------===//
#include "runtime/src/cache/PagedCache.h"

#include <gtest/gtest.h>

using namespace kvrt;

namespace {

/// Two layers with different page sizes, 2 heads of 8 f32 keys and values.
PagedCache makeCache(uint64_t pagesPerLayer) {
  return PagedCache(
      {{2, 4, 32, 32, pagesPerLayer}, {2, 3, 32, 32, pagesPerLayer}});
}

TEST(PagedCache, AllocatesPagesAsTokensArrive) {
  PagedCache cache = makeCache(10);
  ASSERT_TRUE(cache.addSequence(1).isOk());
  EXPECT_EQ(cache.bytesPerToken(), 2u * 2 * (32 + 32));
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
    cache.append(1, 7, p);
  EXPECT_EQ(cache.length(1, 7), 6u);
  EXPECT_EQ(cache.length(0, 7), 0u);
  std::vector<int32_t> stored;
  for (uint32_t p : cache.pages(1, 7)) {
    const Page &page = cache.page(1, p);
    for (uint32_t s = 0; s < page.count; ++s)
      stored.push_back(page.positions[s]);
  }
  EXPECT_EQ(stored, positions);
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
      cache.append(layer, 1, p);
  uint64_t before = cache.bytesInUse();
  // Layer 0: sequence 1 grows to 6 tokens (one more page), sequence 2 needs
  // two; one page is in use, so two are free.
  Status s = cache.reserve({{1, 2}, {2, 6}});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(),
            "KV cache pool exhausted: layer 0 needs 3 more pages of 4 tokens "
            "but 2 of its 3 are free; remove finished sequences or raise "
            "EngineOptions::cacheTokens");
  EXPECT_EQ(cache.bytesInUse(), before);
  EXPECT_EQ(cache.pages(0, 2).size(), 0u);
  EXPECT_EQ(cache.pages(0, 1).size(), 1u);
}

} // namespace
