//===- PagedCache.h - Fixed-size pages of cached keys and values -*- C++
//-*-===//
//
// Each layer has a pool of pages of `pageSize` tokens and each sequence a
// page table per layer, as in vLLM. A page holds, per KV head, the encoded
// keys and values of its tokens and, per token, the position it was stored
// at (kept as is when later passes evict tokens). The cache manages memory
// only; backends encode and decode the entries.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_PAGEDCACHE_H
#define KVRT_CACHE_PAGEDCACHE_H

#include "kvrt/Status.h"

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvrt {

/// The shape of one layer's pages.
struct CacheLayerShape {
  uint32_t kvHeads = 0;
  uint32_t pageSize = 0;
  /// Bytes of one token's key (or value) for one head, once encoded.
  uint32_t keyBytes = 0;
  uint32_t valueBytes = 0;
  /// Pages the layer's pool may hold.
  uint64_t capacityPages = 0;
};

/// One page: entry `slot` of head `h` starts at `keys + (h * pageSize +
/// slot) * keyBytes` (likewise values), so one head's tokens are contiguous.
struct Page {
  std::unique_ptr<uint8_t[]> keys;
  std::unique_ptr<uint8_t[]> values;
  std::unique_ptr<int32_t[]> positions;
  /// Slots in use.
  uint32_t count = 0;
};

class PagedCache {
public:
  explicit PagedCache(std::vector<CacheLayerShape> layers);

  Status addSequence(uint64_t sequence);
  /// Returns the sequence's pages to their pools.
  void removeSequence(uint64_t sequence);
  bool contains(uint64_t sequence) const;

  /// Attaches enough pages for `tokens` more tokens of each listed sequence
  /// in every layer; when any pool is short, attaches none and says so.
  Status reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens);
  /// Where the next token of `sequence` in `layer` goes; records its
  /// position. Room must have been reserved.
  std::pair<Page *, uint32_t> append(uint32_t layer, uint64_t sequence,
                                     int32_t position);

  /// The pages of `sequence` in `layer`, in token order (the last may be
  /// partly filled or, after reserve(), empty).
  const std::vector<uint32_t> &pages(uint32_t layer, uint64_t sequence) const;
  const Page &page(uint32_t layer, uint32_t index) const {
    return *layers_[layer].pages[index];
  }
  const CacheLayerShape &shape(uint32_t layer) const {
    return layers_[layer].shape;
  }
  /// Tokens stored for `sequence` in `layer`.
  uint64_t length(uint32_t layer, uint64_t sequence) const;

  /// Bytes of keys and values one token takes across all layers.
  uint64_t bytesPerToken() const;
  /// Bytes of the pages attached to sequences, now and at most so far.
  uint64_t bytesInUse() const { return bytesInUse_; }
  uint64_t peakBytes() const { return peakBytes_; }

private:
  struct Layer {
    CacheLayerShape shape;
    uint64_t pageBytes = 0;
    /// Pages are allocated when first needed and reused once freed.
    std::vector<std::unique_ptr<Page>> pages;
    std::vector<uint32_t> free;
    uint64_t inUse = 0;
  };
  struct Sequence {
    std::vector<std::vector<uint32_t>> pages;
    std::vector<uint64_t> length;
  };
  uint32_t takePage(Layer &layer);

  std::vector<Layer> layers_;
  std::unordered_map<uint64_t, Sequence> sequences_;
  uint64_t bytesInUse_ = 0;
  uint64_t peakBytes_ = 0;
};

} // namespace kvrt

#endif // KVRT_CACHE_PAGEDCACHE_H
