//===- DevicePagesTest.cpp - The offload schedule's residency
//--------------===//
//
// DevicePages against a plain model of what it must do: every page an
// attention reads is resident when it runs (fetched on demand when it was
// not: a miss, counted), prefetches never evict a page read in the same
// step, a page freed and taken again is not mistaken for the old one, and
// asking for more pages at once than there are slots is an error, not a
// silent drop.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/offload/DevicePages.h"
#include "runtime/src/offload/LayerOffload.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <random>
#include <set>

using namespace kvrt;
using offload::DevicePages;
using offload::pageKey;

namespace {

TEST(DevicePages, CountsHitsAndMissesOfEachRead) {
  DevicePages pages(4, 1);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(1, 0, 0), pageKey(2, 0, 0)}).isOk());
  EXPECT_EQ(pages.counts().misses, 2u);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(2, 0, 0), pageKey(3, 0, 0)}).isOk());
  EXPECT_EQ(pages.counts().read, 4u);
  EXPECT_EQ(pages.counts().hits, 1u);
  EXPECT_EQ(pages.counts().misses, 3u);
}

TEST(DevicePages, TheLeastRecentlyUsedLeavesFirst) {
  DevicePages pages(2, 1);
  for (uint32_t p : {1, 2, 1, 3}) {
    pages.beginStep();
    ASSERT_TRUE(pages.acquire({pageKey(p, 0, 0)}).isOk());
  }
  // 2 was the least recently used when 3 came in.
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(1, 0, 0)}).isOk());
  ASSERT_TRUE(pages.acquire({pageKey(2, 0, 0)}).isOk());
  EXPECT_EQ(pages.counts().hits, 2u); // the second 1, and 1 again
  EXPECT_EQ(pages.counts().misses, 4u);
}

TEST(DevicePages, PrefetchesNeverEvictThisStepsPages) {
  DevicePages pages(3, 1);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(1, 0, 0), pageKey(2, 0, 0)}).isOk());
  pages.prefetch({pageKey(7, 0, 0), pageKey(8, 0, 0), pageKey(9, 0, 0)});
  // One free slot: 7 came in, 8 and 9 would have evicted 1 or 2.
  EXPECT_EQ(pages.counts().prefetched, 1u);
  pages.beginStep();
  ASSERT_TRUE(
      pages.acquire({pageKey(1, 0, 0), pageKey(2, 0, 0), pageKey(7, 0, 0)})
          .isOk());
  EXPECT_EQ(pages.counts().hits, 3u);
  EXPECT_EQ(pages.counts().prefetchHits, 1u);
  // In a later step the old pages make room.
  pages.beginStep();
  pages.prefetch({pageKey(8, 0, 0)});
  EXPECT_EQ(pages.counts().prefetched, 2u);
}

TEST(DevicePages, AReusedPageOrAnotherHeadIsNotTheOldOne) {
  DevicePages pages(4, 1);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(5, 0, 0)}).isOk());
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(5, 0, 1), pageKey(5, 1, 0)}).isOk());
  EXPECT_EQ(pages.counts().misses, 3u);
}

TEST(DevicePages, MorePagesThanSlotsIsAnError) {
  DevicePages pages(2, 1);
  pages.beginStep();
  Status s =
      pages.acquire({pageKey(1, 0, 0), pageKey(2, 0, 0), pageKey(3, 0, 0)});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "an attention reads 3 offloaded pages at once but "
                         "the device holds 2; raise the offload budget or "
                         "select fewer blocks");
}

// Blocks smaller than pages list a page once per block: it is one read,
// and it takes one slot, whether it was resident or missing.
TEST(DevicePages, APageListedTwiceIsReadOnce) {
  DevicePages pages(2, 1);
  // Missing in the first step, resident in the second.
  for (const std::vector<uint32_t> &indices :
       {std::vector<uint32_t>{1, 2, 1, 2}, std::vector<uint32_t>{2, 2, 1, 1}}) {
    std::vector<uint64_t> read;
    for (uint32_t p : indices)
      read.push_back(pageKey(p, 0, 0));
    pages.beginStep();
    ASSERT_TRUE(pages.acquire(read).isOk());
  }
  EXPECT_EQ(pages.counts().read, 4u);
  EXPECT_EQ(pages.counts().misses, 2u);
  EXPECT_EQ(pages.counts().hits, 2u);
  // Three distinct pages, one of them resident, do not fit two slots, and
  // the refusal changes nothing.
  pages.beginStep();
  Status s = pages.acquire(
      {pageKey(1, 0, 0), pageKey(3, 0, 0), pageKey(1, 0, 0), pageKey(4, 0, 0)});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "an attention reads 3 offloaded pages at once but "
                         "the device holds 2; raise the offload budget or "
                         "select fewer blocks");
  EXPECT_EQ(pages.counts().read, 4u);
  EXPECT_NE(pages.slotOf(pageKey(2, 0, 0)), DevicePages::kNoPage);
}

TEST(DevicePages, WrittenAndStreamedPagesAreNotReads) {
  DevicePages pages(3, 1);
  pages.beginStep();
  pages.written(pageKey(9, 0, 0), false);
  pages.stream({pageKey(1, 0, 0), pageKey(2, 0, 0), pageKey(9, 0, 0)});
  EXPECT_EQ(pages.counts().streamed, 2u);
  EXPECT_EQ(pages.counts().read, 0u);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(9, 0, 0), pageKey(2, 0, 0)}).isOk());
  EXPECT_EQ(pages.counts().hits, 2u);
}

TEST(DevicePages, APageTakesTheSlotOfTheOneItEvicts) {
  DevicePages pages(2, 1);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(1, 0, 0), pageKey(2, 0, 0)}).isOk());
  EXPECT_EQ(pages.takeChangedSlots(), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(pages.holder(0), pageKey(1, 0, 0));
  EXPECT_EQ(pages.holder(1), pageKey(2, 0, 0));
  EXPECT_EQ(pages.holder(2), DevicePages::kNoPage);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(2, 0, 0)}).isOk());
  EXPECT_TRUE(pages.takeChangedSlots().empty());
  // Page 1 is the least recently used: page 3 takes its slot, then page 1
  // comes back into page 2's; each slot is listed once.
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(3, 0, 0)}).isOk());
  ASSERT_TRUE(pages.acquire({pageKey(1, 0, 0)}).isOk());
  EXPECT_EQ(pages.takeChangedSlots(), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(pages.slotOf(pageKey(3, 0, 0)), 0u);
  EXPECT_EQ(pages.slotOf(pageKey(1, 0, 0)), 1u);
  EXPECT_EQ(pages.slotOf(pageKey(2, 0, 0)), DevicePages::kNoPage);
}

TEST(DevicePages, APageKeyNamesItsIndexAndHead) {
  const uint64_t key = pageKey(70000, 7, 123456);
  EXPECT_EQ(offload::pageIndexOf(key), 70000u);
  EXPECT_EQ(offload::pageHeadOf(key), 7u);
  EXPECT_NE(key, pageKey(70000, 7, 123457));
}

TEST(DevicePages, APageTakenAgainIsNotTheOneResident) {
  DevicePages pages(2, 4);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(5, 3, 1)}).isOk());
  // Page 5 freed and taken again: its new life is a miss, and the old one
  // leaving its slot does not take the new one with it.
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(5, 3, 2)}).isOk());
  EXPECT_EQ(pages.counts().misses, 2u);
  EXPECT_EQ(pages.slotOf(pageKey(5, 3, 1)), DevicePages::kNoPage);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(6, 0, 2)}).isOk()); // evicts slot 0
  EXPECT_EQ(pages.holder(0), pageKey(6, 0, 2));
  EXPECT_EQ(pages.slotOf(pageKey(5, 3, 2)), 1u);
  pages.beginStep();
  ASSERT_TRUE(pages.acquire({pageKey(5, 3, 2)}).isOk());
  EXPECT_EQ(pages.counts().hits, 1u);
}

TEST(DevicePages, AWrittenPageIsRefilledOnlyWithEarlierTokens) {
  DevicePages pages(1, 1);
  pages.beginStep();
  pages.written(pageKey(1, 0, 0), false);
  pages.written(pageKey(2, 0, 0), true);
  pages.written(pageKey(2, 0, 0), true);
  EXPECT_EQ(pages.counts().refilled, 1u);
}

TEST(DevicePages, MatchesAPlainLruModelOnRandomSteps) {
  // Reads and prefetches drawn at random; a list-based model of the same
  // rules says which reads hit.
  std::mt19937 rng(3);
  const uint64_t slots = 12;
  DevicePages pages(slots, 2);
  std::list<std::pair<uint64_t, uint64_t>> model; // (page, step), MRU first
  uint64_t hits = 0, misses = 0, prefetched = 0;
  auto find = [&](uint64_t page) {
    return std::find_if(model.begin(), model.end(),
                        [&](const auto &e) { return e.first == page; });
  };
  for (uint64_t step = 2; step < 400; ++step) {
    pages.beginStep();
    std::set<uint64_t> read;
    while (read.size() < 1 + rng() % 8)
      read.insert(pageKey(rng() % 30, rng() % 2, 0));
    std::vector<uint64_t> readList(read.begin(), read.end());
    ASSERT_TRUE(pages.acquire(readList).isOk());
    std::vector<uint64_t> missing;
    for (uint64_t p : readList) {
      auto it = find(p);
      if (it == model.end()) {
        missing.push_back(p);
        continue;
      }
      ++hits;
      model.erase(it);
      model.push_front({p, step});
    }
    for (uint64_t p : missing) {
      ++misses;
      if (model.size() >= slots)
        model.pop_back();
      model.push_front({p, step});
    }
    std::vector<uint64_t> predicted;
    for (int i = 0; i < 3; ++i)
      predicted.push_back(pageKey(rng() % 30, rng() % 2, 0));
    std::sort(predicted.begin(), predicted.end());
    predicted.erase(std::unique(predicted.begin(), predicted.end()),
                    predicted.end());
    pages.prefetch(predicted);
    for (uint64_t p : predicted) {
      if (find(p) != model.end())
        continue;
      if (model.size() >= slots) {
        if (model.back().second == step)
          break;
        model.pop_back();
      }
      model.push_front({p, step});
      ++prefetched;
    }
    // Every page read this step is resident after it, and each resident
    // page is in its own slot.
    for (uint64_t p : readList)
      ASSERT_NE(find(p), model.end());
    std::set<uint64_t> slotsUsed;
    for (const auto &[p, at] : model) {
      const uint64_t slot = pages.slotOf(p);
      ASSERT_LT(slot, slots);
      ASSERT_EQ(pages.holder(slot), p);
      ASSERT_TRUE(slotsUsed.insert(slot).second);
    }
  }
  EXPECT_EQ(pages.counts().hits, hits);
  EXPECT_EQ(pages.counts().misses, misses);
  EXPECT_EQ(pages.counts().prefetched, prefetched);
  EXPECT_GT(hits, 0u);
  EXPECT_GT(prefetched, 0u);
}

} // namespace

namespace {

TEST(LayerOffload, ABatchThatMayReadMorePagesThanSlotsIsRefusedAsCacheFull) {
  // 3 KV heads reading 4 blocks each: 12 pages a decode row, 30 slots.
  offload::LayerOffload layer(5, 3, 30, 4);
  EXPECT_TRUE(layer.admit(2).isOk());
  Status three = layer.admit(3);
  ASSERT_FALSE(three.isOk());
  EXPECT_TRUE(three.isCacheFull()) << "a scheduler could not preempt for it";
  EXPECT_EQ(three.message(),
            "layer 5 is offloaded with room for 30 KV-head pages on the "
            "device, but 3 decode rows may read 36 at once (top_blocks 4 for "
            "each of 3 KV heads); raise the offload budget or decode fewer "
            "sequences at a time");
}

} // namespace
