//===- PagedCache.h - Fixed-size pages of cached keys and values -*- C++
//-*-===//
//
// Each layer has a pool of pages of `pageSize` tokens and each sequence a
// page table per layer, as in vLLM. Per KV head, a page holds one area of
// encoded keys and one of encoded values (their layout is the codec's, see
// Codec.h), per token the position it was stored at (kept as is when later
// passes evict tokens) and, for sparse selection, summaries of its blocks
// of keys.
//
// New tokens first go to the sequence's tail, a float copy of the keys and
// values not encoded yet: attention reads the tail as it is, so a prefill
// attends to its own tokens before they are quantized (as vLLM and KIVI
// do), and a KIVI layer keeps its `tailWindow` most recent tokens there in
// bf16. A layer with `sinkTokens` also keeps an exact copy of each
// sequence's first tokens beside their encoded entries (low-rank caches:
// the attention sink is what a rank cut hurts most), which attention reads
// instead. takeTail() hands the tokens that may leave the tail to the backend,
// `flushGroup` at a time (KIVI quantizes keys a group of tokens at once).
// The cache manages memory only; backends encode and decode the entries.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_PAGEDCACHE_H
#define KVRT_CACHE_PAGEDCACHE_H

#include "kvrt/Status.h"
#include "runtime/src/sparse/BoundCodes.h"

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvrt {

/// The shape of one layer's pages.
struct CacheLayerShape {
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  /// A multiple of flushGroup.
  uint32_t pageSize = 0;
  /// Bytes of one KV head's key (value) area in a page.
  uint64_t keyHeadBytes = 0;
  uint64_t valueHeadBytes = 0;
  /// Most recent tokens kept in the tail once older ones can be encoded.
  uint32_t tailWindow = 0;
  /// Tokens that leave the tail together.
  uint32_t flushGroup = 1;
  /// Pages the layer's pool may hold.
  uint64_t capacityPages = 0;
  /// Slots per block summary (a divisor of pageSize), for sparse
  /// selection; 0: the layer keeps none.
  uint32_t summaryBlock = 0;
  /// A sequence's first tokens kept exact (in sinks()) besides encoded.
  uint32_t sinkTokens = 0;
  /// One position per KV head and slot instead of one per slot: the
  /// layer's eviction keeps different entries per head (docs/eviction.md).
  bool headPositions = false;

  /// Where KV head `head`'s positions start in Page::positions.
  uint64_t positionOffset(uint32_t head) const {
    return headPositions ? uint64_t(head) * pageSize : 0;
  }
  /// Heads with positions of their own: kvHeads, or 1 when they share.
  uint32_t positionHeads() const { return headPositions ? kvHeads : 1; }

  /// Block summaries of one page, over all KV heads.
  uint64_t summariesPerPage() const {
    return summaryBlock ? uint64_t(kvHeads) * (pageSize / summaryBlock) : 0;
  }
  /// Their bytes (codes and exponents).
  uint64_t summaryBytes() const {
    return sparse::summaryBytesPerPage(kvHeads, headDim, pageSize,
                                       summaryBlock);
  }
};

/// One page: the key area of head `h` starts at `keys + h * keyHeadBytes`
/// (likewise values), so one head's tokens are contiguous. Slot `s` of head
/// `h` was stored at `positions[shape.positionOffset(h) + s]`.
struct Page {
  std::unique_ptr<uint8_t[]> keys;
  std::unique_ptr<uint8_t[]> values;
  std::unique_ptr<int32_t[]> positions;
  /// Block summaries when the layer keeps them (sparse/BlockSummary.h):
  /// per KV head and block of summaryBlock slots, the codes of headDim
  /// lower and then headDim upper bounds of its encoded keys, and the
  /// block's exponent.
  std::unique_ptr<uint8_t[]> keyBounds;
  std::unique_ptr<int8_t[]> boundExponents;
  /// Slots whose position is recorded; entries below the sequence's
  /// encoded() count are in the areas, the others still in its tail.
  uint32_t count = 0;
  /// How many times the page was taken from its pool: a page's index and
  /// generation name one sequence's use of it (offload/DevicePages.h).
  uint32_t generation = 0;
};

/// A sequence's tokens not encoded yet (or, as sinks(), its first tokens),
/// oldest first: per KV head, token i's keys at `keys[head].data() + i *
/// headDim` (the layout of an f32 page area, so the f32 codec reads it).
struct Tail {
  uint32_t headDim = 0;
  std::vector<std::vector<float>> keys;
  std::vector<std::vector<float>> values;
  size_t tokens() const { return keys.empty() ? 0 : keys[0].size() / headDim; }
  /// Adds one token: kvHeads * headDim keys and values.
  void push(const float *keys, const float *values);
};

class PagedCache {
public:
  explicit PagedCache(std::vector<CacheLayerShape> layers);

  Status addSequence(uint64_t sequence);
  /// Adds `sequence` holding the first `tokens` tokens of `from`, which must
  /// fill whole pages of encoded entries in every layer (see
  /// shareableTokens()): it takes those pages as they are, each counted
  /// once in the pools, and copies the sinks among them. Neither sequence
  /// writes the shared pages again, since appends go past them; a layer
  /// whose entries move in place (eviction) must not share.
  Status share(uint64_t from, uint64_t sequence, uint64_t tokens);
  /// The most of the first `tokens` tokens of `from` that share() can
  /// give a new sequence: whole pages of encoded entries in every layer.
  uint64_t shareableTokens(uint64_t from, uint64_t tokens) const;
  /// Returns the sequence's pages to their pools (a shared page once no
  /// sequence holds it).
  void removeSequence(uint64_t sequence);
  bool contains(uint64_t sequence) const;

  /// Attaches enough pages for `tokens` more tokens of each listed sequence
  /// in every layer; when any pool is short, attaches none and says so.
  Status reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens);
  /// Adds one token of `sequence` at `position` to the tail of `layer`:
  /// kvHeads * headDim keys and values. Room must have been reserved.
  void append(uint32_t layer, uint64_t sequence, int32_t position,
              const float *keys, const float *values);
  /// How many of the tail's oldest tokens may be encoded now: all but the
  /// window, in whole flush groups.
  uint64_t flushable(uint32_t layer, uint64_t sequence) const;
  /// Removes the `tokens` oldest tail tokens (at most flushable()) after
  /// `encode(first, count, tail)` has stored them: `first` is the sequence
  /// index of the first one.
  template <typename Encode>
  void flush(uint32_t layer, uint64_t sequence, uint64_t tokens,
             const Encode &encode);

  /// The pages of `sequence` in `layer`, in token order (the last may be
  /// partly filled or, after reserve(), empty).
  const std::vector<uint32_t> &pages(uint32_t layer, uint64_t sequence) const;
  const Page &page(uint32_t layer, uint32_t index) const {
    return *layers_[layer].pages[index];
  }
  Page &page(uint32_t layer, uint32_t index) {
    return *layers_[layer].pages[index];
  }
  const CacheLayerShape &shape(uint32_t layer) const {
    return layers_[layer].shape;
  }
  /// Tokens stored for `sequence` in `layer`, encoded or in the tail.
  uint64_t length(uint32_t layer, uint64_t sequence) const;
  /// Tokens of `sequence` in `layer` that are encoded in pages; the rest
  /// are in tail().
  uint64_t encoded(uint32_t layer, uint64_t sequence) const;
  const Tail &tail(uint32_t layer, uint64_t sequence) const;
  /// Exact copies of the sequence's first min(length, sinkTokens) tokens.
  const Tail &sinks(uint32_t layer, uint64_t sequence) const;
  /// The position stored for token `index` of the sequence in KV head
  /// `head` (the same for every head unless the layer has headPositions).
  int32_t position(uint32_t layer, uint64_t sequence, uint64_t index,
                   uint32_t head = 0) const;
  /// After the caller has moved the encoded entries it keeps to indices
  /// [0, encoded) in every head and the tail's positions right after them (see
  /// evict/Compact.h): sets the counts and frees the pages beyond those
  /// the tokens left and the room reserved before need.
  void shrink(uint32_t layer, uint64_t sequence, uint64_t encoded);

  /// Bytes of encoded keys and values one token takes across all layers
  /// (page areas and block summaries divided by the page size: metadata
  /// included).
  double bytesPerToken() const;
  /// Bytes of the pages attached to sequences and of the windows and sinks
  /// held exact (at 2 bytes a value, as bf16), now and at most so far.
  uint64_t bytesInUse() const { return bytesInUse_; }
  /// Tokens the pools hold over all sequences: the least of the layers'.
  uint64_t capacityTokens() const;
  uint64_t peakBytes() const { return peakBytes_; }

private:
  struct Layer {
    CacheLayerShape shape;
    uint64_t pageBytes = 0;
    /// Pages are allocated when first needed and reused once freed.
    std::vector<std::unique_ptr<Page>> pages;
    /// Sequences holding each page (by index): more than one after share().
    std::vector<uint32_t> holders;
    std::vector<uint32_t> free;
    uint64_t inUse = 0;
  };
  struct Sequence {
    std::vector<std::vector<uint32_t>> pages;
    std::vector<uint64_t> length;
    std::vector<uint64_t> encoded;
    std::vector<Tail> tails;
    std::vector<Tail> sinks;
  };
  uint32_t takePage(Layer &layer);
  /// Drops one holder of page `p`; the last returns it to the pool.
  void releasePage(Layer &layer, uint32_t p);
  /// Bytes a tail of `tokens` tokens counts for in `layer`: only a window
  /// the layer keeps (KIVI) is part of the cache's footprint; a prefill's
  /// tokens passing through are not.
  uint64_t tailBytes(const Layer &layer, uint64_t tokens) const;
  /// Bytes of `tokens` exact tokens (as bf16).
  static uint64_t exactBytes(const CacheLayerShape &shape, uint64_t tokens);
  void track(int64_t delta);

  std::vector<Layer> layers_;
  std::unordered_map<uint64_t, Sequence> sequences_;
  uint64_t bytesInUse_ = 0;
  uint64_t peakBytes_ = 0;
};

template <typename Encode>
void PagedCache::flush(uint32_t layer, uint64_t sequence, uint64_t tokens,
                       const Encode &encode) {
  if (tokens == 0)
    return;
  Sequence &s = sequences_.at(sequence);
  Tail &tail = s.tails[layer];
  uint64_t before = tail.tokens();
  encode(s.encoded[layer], tokens, std::as_const(tail));
  size_t width = size_t(tokens) * tail.headDim;
  for (auto *side : {&tail.keys, &tail.values})
    for (std::vector<float> &head : *side)
      head.erase(head.begin(), head.begin() + width);
  s.encoded[layer] += tokens;
  const Layer &l = layers_[layer];
  track(int64_t(tailBytes(l, tail.tokens())) - int64_t(tailBytes(l, before)));
}

} // namespace kvrt

#endif // KVRT_CACHE_PAGEDCACHE_H
