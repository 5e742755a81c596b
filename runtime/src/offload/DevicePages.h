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
#include <list>
#include <unordered_map>
#include <vector>

namespace kvrt::offload {

/// KV head `head`'s part of a page of one layer's pool in one of its
/// lives.
inline uint64_t pageKey(uint32_t index, uint32_t head, uint32_t generation) {
  return uint64_t(generation & 0xffffffu) << 40 | uint64_t(head & 0xffu) << 32 |
         index;
}

struct PageCounts {
  /// Pages decode attentions read, and how many were resident.
  uint64_t read = 0, hits = 0, misses = 0;
  /// Hits on pages a prefetch brought in.
  uint64_t prefetchHits = 0;
  /// Pages copied ahead of need, and dense reads of pages not resident.
  uint64_t prefetched = 0, streamed = 0;
};

class DevicePages {
public:
  explicit DevicePages(uint64_t slots) : slots_(slots) {}

  uint64_t slots() const { return slots_; }
  const PageCounts &counts() const { return counts_; }

  /// Starts a step: pages read or prefetched before it may make room.
  void beginStep() { ++step_; }
  /// `page` was written on the device (an append): resident, no copy.
  void written(uint64_t page);
  /// Makes `pages` (distinct) resident for one attention that reads them
  /// together: the resident ones are hits, the others misses fetched on
  /// demand into the least recently used slots. Fails when they need more
  /// slots than there are.
  Status acquire(const std::vector<uint64_t> &pages);
  /// A dense attention reads `pages` one after another (a prefill): those
  /// not resident are streamed through the slots.
  void stream(const std::vector<uint64_t> &pages);
  /// Copies in those of `pages` not resident, while a slot is free or
  /// holds a page not read in this step.
  void prefetch(const std::vector<uint64_t> &pages);

private:
  struct Entry {
    std::list<uint64_t>::iterator position;
    uint64_t lastStep = 0;
    /// Brought in by a prefetch and not read since.
    bool prefetched = false;
  };
  /// Makes `page` the most recently used, inserting it; false when no slot
  /// may be given up (every one holds a page of this step).
  bool bringIn(uint64_t page, bool evictCurrent);

  uint64_t slots_;
  uint64_t step_ = 1;
  PageCounts counts_;
  /// Most recently used first.
  std::list<uint64_t> order_;
  std::unordered_map<uint64_t, Entry> resident_;
};

} // namespace kvrt::offload

#endif // KVRT_OFFLOAD_DEVICEPAGES_H
