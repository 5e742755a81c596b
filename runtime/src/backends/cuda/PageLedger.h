//===- PageLedger.h - Which device pages each sequence holds ----*- C++ -*-===//
//
// The host's bookkeeping of the device page pool (DeviceKvPool.h): each
// sequence's page list (shared by every layer: a backend that evicts
// evicts alike in every layer, DeviceEviction.h) and length, and the free
// pages. Host code only, so that
// CI tests it without a GPU.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_PAGELEDGER_H
#define KVRT_BACKENDS_CUDA_PAGELEDGER_H

#include "kvrt/Status.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvrt::cuda {

class PageLedger {
public:
  /// `name` says what is full when a reservation fails.
  PageLedger(uint32_t pageSize, uint32_t capacityPages,
             std::string name = "the device KV cache");

  Status addSequence(uint64_t sequence);
  /// Adds `sequence` holding the first `tokens` tokens of `from`, a whole
  /// number of its pages, which the two then share: a page returns to the
  /// free list once no sequence holds it, and is counted in use once.
  /// Neither writes them again (appends go past them); a backend whose
  /// entries move in place (eviction) must not share.
  Status share(uint64_t from, uint64_t sequence, uint64_t tokens);
  /// Returns the sequence's pages to the free list (shared ones once no
  /// other sequence holds them).
  void removeSequence(uint64_t sequence);
  bool contains(uint64_t sequence) const {
    return sequences_.count(sequence) != 0;
  }
  /// Attaches pages for tokens[i].second more tokens of each sequence;
  /// when the pool is short, attaches none and says so.
  Status reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens);
  /// Tokens stored for `sequence`.
  uint64_t length(uint64_t sequence) const {
    return sequences_.at(sequence).length;
  }
  /// Commits tokens written into the reserved pages.
  void setLength(uint64_t sequence, uint64_t length) {
    sequences_.at(sequence).length = length;
  }
  /// After a compaction left `length` tokens (fewer than stored): sets the
  /// length and returns the pages beyond those they fill to the free list.
  void shrink(uint64_t sequence, uint64_t length);
  /// A small number naming the sequence while it is in the ledger, below
  /// slots(): the index of its row in per-sequence device stores
  /// (ExactTokens.h). A removed sequence's slot is given to the next one.
  uint32_t slot(uint64_t sequence) const {
    return sequences_.at(sequence).slot;
  }
  /// How many slots have been given out at most: one more than the
  /// largest slot() so far.
  uint32_t slots() const { return slots_; }
  /// The sequence's pages in token order (the last ones may be reserved
  /// and not yet written).
  const std::vector<int32_t> &pages(uint64_t sequence) const {
    return sequences_.at(sequence).pages;
  }
  /// How many times `page` was attached to a sequence: with its index it
  /// names one use of the page (offload/DevicePages.h).
  uint32_t generation(int32_t page) const { return generations_[page]; }
  uint32_t pageSize() const { return pageSize_; }
  uint64_t capacityPages() const { return generations_.size(); }
  uint64_t pagesInUse() const { return pagesInUse_; }
  uint64_t sequenceCount() const { return sequences_.size(); }
  uint64_t peakPages() const { return peakPages_; }

private:
  struct Sequence {
    std::vector<int32_t> pages;
    uint64_t length = 0;
    uint32_t slot = 0;
  };
  /// Drops one holder of `page`; the last returns it to the free list.
  void release(int32_t page);

  uint32_t pageSize_;
  std::string name_;
  /// Sequences holding each page: more than one after share().
  std::vector<uint32_t> holders_;
  std::vector<int32_t> free_;
  std::vector<uint32_t> freeSlots_;
  uint32_t slots_ = 0;
  std::vector<uint32_t> generations_;
  uint64_t pagesInUse_ = 0;
  uint64_t peakPages_ = 0;
  std::unordered_map<uint64_t, Sequence> sequences_;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_PAGELEDGER_H
