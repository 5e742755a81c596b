//===- BlockSummary.h - Key bounds per block of entries ---------*- C++ -*-===//
//
// Sparse selection (TwoLevel.h) ranks blocks of cached entries by Quest's
// upper bound on q.k, sum_d max(q_d lo_d, q_d hi_d), from the per-channel
// minimum and maximum of the block's keys. The bounds are kept per page
// (Page::keyBounds) and updated as entries are encoded, in the key codec's
// domain (rotated for polar: the query is rotated once, as attention
// does), from the codec's own decode of each entry, so they bound exactly
// what attention scores. They are stored as bf16 rounded outward (lower
// bounds down, upper bounds up), so rounding never tightens them.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SPARSE_BLOCKSUMMARY_H
#define KVRT_SPARSE_BLOCKSUMMARY_H

#include <cstdint>

namespace kvrt {
class Codec;
class PagedCache;
struct Page;

namespace sparse {

/// The largest bf16 value not above `x` (NaN stays NaN).
uint16_t bf16Below(float x);
/// The smallest bf16 value not below `x` (NaN stays NaN).
uint16_t bf16Above(float x);

/// The bounds of KV head `head`'s block `block` of `page` (block counts in
/// the page's slots / summaryBlock): headDim lower, then headDim upper.
const uint16_t *blockBounds(const PagedCache &cache, uint32_t layer,
                            const Page &page, uint32_t head, uint32_t block);

/// Updates the summaries of KV head `head` for the `count` encoded entries
/// of `sequence` from index `first` on (the first entry of a block starts
/// its bounds anew). `scratch` holds headDim floats.
void summarise(PagedCache &cache, uint32_t layer, uint64_t sequence,
               const Codec &keys, uint32_t head, uint64_t first, uint64_t count,
               float *scratch);

} // namespace sparse
} // namespace kvrt

#endif // KVRT_SPARSE_BLOCKSUMMARY_H
