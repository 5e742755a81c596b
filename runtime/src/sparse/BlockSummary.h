//===- BlockSummary.h - Key bounds per block of entries ---------*- C++ -*-===//
//
// Sparse selection (TwoLevel.h) ranks blocks of cached entries by Quest's
// upper bound on q.k, sum_d max(q_d lo_d, q_d hi_d), from the per-channel
// minimum and maximum of the block's keys. The bounds are kept per page
// (Page::keyBounds) and updated as entries are encoded, in the key codec's
// domain (rotated for polar: the query is rotated once, as attention
// does), from the codec's own decode of each entry, so they bound exactly
// what attention scores. They are stored as FP8 codes with an exponent per
// block, rounded outward (BoundCodes.h), so rounding never tightens them.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SPARSE_BLOCKSUMMARY_H
#define KVRT_SPARSE_BLOCKSUMMARY_H

#include "runtime/src/sparse/BoundCodes.h"

#include <cstdint>

namespace kvrt {
class Codec;
class PagedCache;
struct Page;

namespace sparse {

/// The value a code stands for in a block of exponent `exponent`.
float boundValue(uint8_t code, int exponent);

/// One KV head's block summary as stored: 2 * headDim codes (the lower
/// bounds, then the upper ones) and the block's exponent.
struct BlockBounds {
  const uint8_t *codes;
  uint32_t headDim;
  int exponent;

  float lower(uint32_t channel) const {
    return boundValue(codes[channel], exponent);
  }
  float upper(uint32_t channel) const {
    return boundValue(codes[headDim + channel], exponent);
  }
};

/// The values of `bounds`' codes: lower[c] = bounds.lower(c) and
/// upper[c] = bounds.upper(c), for every channel at once.
void decodeBounds(const BlockBounds &bounds, float *lower, float *upper);

/// The bounds of KV head `head`'s block `block` of `page` (block counts in
/// the page's slots / summaryBlock).
BlockBounds blockBounds(const PagedCache &cache, uint32_t layer,
                        const Page &page, uint32_t head, uint32_t block);

/// Asks the CPU's caches for what blockBounds() of the same arguments and
/// decodeBounds() will read, without reading it.
void prefetchBounds(const PagedCache &cache, uint32_t layer, const Page &page,
                    uint32_t head, uint32_t block);

/// Stores the summary of a block whose keys lie within [lower[c], upper[c]]
/// (headDim each) at `codes` (2 * headDim) and `exponent`.
void storeBounds(const float *lower, const float *upper, uint32_t headDim,
                 uint8_t *codes, int8_t *exponent);

/// Brings the summaries of KV head `head` up to date for the `count`
/// encoded entries of `sequence` from index `first` on: each block they
/// touch is summarised anew from its first entry to the last encoded one
/// in the range. `scratch` holds 3 * headDim floats.
void summarise(PagedCache &cache, uint32_t layer, uint64_t sequence,
               const Codec &keys, uint32_t head, uint64_t first, uint64_t count,
               float *scratch);

} // namespace sparse
} // namespace kvrt

#endif // KVRT_SPARSE_BLOCKSUMMARY_H
