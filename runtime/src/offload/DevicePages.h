//===- DevicePages.h - Offloaded cache pages on the device ------*- C++ -*-===//
//
// With kv-offload a layer's cache lives in host memory and a fixed number
// of its pages in device memory, shared by the layer's sequences (docs/
// offload.md). DevicePages decides which: the pages a decode attention
// reads must all be resident at once (those that are not are fetched on
// demand: misses); pages predicted for the next step are prefetched into
// slots no page read this step holds; the least recently used page leaves
// first. It decides and counts; a backend copies what it says (the CPU
// backend, whose "device" is host memory, only counts).
//
// Each resident page has a slot, its place in the device's array of KV-head
// pages: a page brought in takes the slot of the one it evicts (or the next
// unused one), and the slots whose page changed are listed for the backend
// to copy (takeChangedSlots()).
//
// The unit is one KV head's part of a page (its keys and values: each
// head selects for itself). Parts are named by PagedCache's page index,
// the KV head and the generation the page was taken in (its low 24 bits),
// so a page freed and taken again by another sequence is not mistaken for
// the one that was resident.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_OFFLOAD_DEVICEPAGES_H
#define KVRT_OFFLOAD_DEVICEPAGES_H

#include "kvrt/Status.h"

#include <cstdint>
#include <vector>

namespace kvrt::offload {

/// KV head `head`'s part of a page of one layer's pool in one of its
/// lives.
inline uint64_t pageKey(uint32_t index, uint32_t head, uint32_t generation) {
  return uint64_t(generation & 0xffffffu) << 40 | uint64_t(head & 0xffu) << 32 |
         index;
}
/// The page index and the KV head a pageKey() names.
inline uint32_t pageIndexOf(uint64_t key) { return uint32_t(key); }
inline uint32_t pageHeadOf(uint64_t key) { return uint32_t(key >> 32) & 0xffu; }

struct PageCounts {
  /// Pages decode attentions read, and how many were resident.
  uint64_t read = 0, hits = 0, misses = 0;
  /// Hits on pages a prefetch brought in.
  uint64_t prefetchHits = 0;
  /// Pages copied ahead of need, and dense reads of pages not resident.
  uint64_t prefetched = 0, streamed = 0;
  /// Pages an append wrote that were not resident but held earlier tokens
  /// (brought back whole).
  uint64_t refilled = 0;
};

class DevicePages {
public:
  /// What a slot holds before any page is brought into it.
  static constexpr uint64_t kNoPage = ~uint64_t(0);

  /// `slots` device pages of a layer of `kvHeads` KV heads.
  DevicePages(uint64_t slots, uint32_t kvHeads);

  uint64_t slots() const { return slots_; }
  const PageCounts &counts() const { return counts_; }

  /// Starts a step: pages read or prefetched before it may make room.
  void beginStep() { ++step_; }
  /// `page` was written by an append: resident. Copied in only when it was
  /// not resident and `holdsEarlierTokens` (counted as refilled).
  void written(uint64_t page, bool holdsEarlierTokens);
  /// Makes `pages` resident for one attention that reads them together
  /// (a page listed twice counts once): the resident ones are hits, the
  /// others misses fetched on demand into the least recently used slots.
  /// Fails when they need more slots than there are.
  Status acquire(const std::vector<uint64_t> &pages);
  /// A dense attention reads `pages` one after another (a prefill): those
  /// not resident are streamed through the slots.
  void stream(const std::vector<uint64_t> &pages);
  /// Copies in those of `pages` not resident, while a slot is free or
  /// holds a page not read in this step.
  void prefetch(const std::vector<uint64_t> &pages);

  /// The page `slot` holds, or kNoPage.
  uint64_t holder(uint64_t slot) const {
    return slot < slotInfo_.size() ? slotInfo_[slot].holder : kNoPage;
  }
  /// The slot `page` is in, or kNoPage when it is not resident.
  uint64_t slotOf(uint64_t page) const {
    const uint32_t slot = find(page);
    return slot == kNone ? kNoPage : slot;
  }
  /// The slots whose page changed since the last call, each once.
  std::vector<uint64_t> takeChangedSlots();

private:
  /// No slot.
  static constexpr uint32_t kNone = ~uint32_t(0);

  /// The slot holding `page`, or kNone.
  uint32_t find(uint64_t page) const;
  /// Starts loading where find() will look for `page`.
  void prefetchPlace(uint64_t page) const;
  /// How many pages ahead acquire() prefetches its lookups.
  static constexpr size_t kLookAhead = 16;
  /// Makes `slot` the most recently used.
  void touch(uint32_t slot);
  void unlink(uint32_t slot);
  void insert(uint64_t page, uint32_t slot);
  void erase(uint64_t page);
  /// Makes `page` the most recently used, inserting it; false when no slot
  /// may be given up (every one holds a page of this step).
  bool bringIn(uint64_t page, bool evictCurrent);

  uint64_t slots_;
  uint64_t step_ = 1;
  PageCounts counts_;
  /// Counts acquire() calls, which mark the resident slots they read.
  uint64_t acquisitions_ = 0;
  /// A slot used so far. One record, not an array per field: a step's
  /// schedule touches thousands of slots at random, and each layer's
  /// schedule finds its slots out of the caches where the other layers'
  /// left them, so a slot costs one cache miss instead of one per field.
  struct Slot {
    /// Its page.
    uint64_t holder = kNoPage;
    /// The step it was last used in, and the last acquire() that found it
    /// resident.
    uint64_t lastStep = 0, lastAcquired = 0;
    /// Its neighbours in the recency list (most recent first).
    uint32_t newer = kNone, older = kNone;
    /// Whether a prefetch brought it in and it was not read since, and
    /// whether takeChangedSlots() lists it.
    bool prefetched = false, listed = false;
  };
  std::vector<Slot> slotInfo_;
  uint32_t newest_ = kNone, oldest_ = kNone;
  /// Where page (index i, KV head h) is, at i * kvHeads + h: 0 when it is
  /// not resident, else its generation with kPresent above it (bits 32 and
  /// up) and its slot. One generation of a page at a time: a later one
  /// replaces an earlier one, which no attention reads again (its slot
  /// still holds it until it is the least recently used). Indexed, not hashed:
  /// a sequence's pages are near one another in it, so the lookups of a step
  /// stay in cache (a hash table of the slots missed it on every lookup and was
  /// half of the schedule's time).
  static constexpr uint64_t kPresent = uint64_t(1) << 24;
  uint64_t place(uint64_t page) const;
  uint32_t kvHeads_;
  std::vector<uint64_t> where_;
  std::vector<uint64_t> changed_;
};

} // namespace kvrt::offload

#endif // KVRT_OFFLOAD_DEVICEPAGES_H
