//===- Compact.h - Dropping evicted entries from the paged cache -*- C++
//-*-===//
//
// After a selection, a sequence's kept entries move to the front of its
// pages in order, each copied at most once (in-place forward compaction:
// kept entry i goes to index i <= kept[i], so no source is overwritten
// before it is read), keeping the positions they were stored at; pages no
// longer needed go back to the pool.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_EVICT_COMPACT_H
#define KVRT_EVICT_COMPACT_H

#include "kvrt/Status.h"

#include <cstdint>
#include <vector>

namespace kvrt {
class Codec;
class PagedCache;
} // namespace kvrt

namespace kvrt::evict {

/// One entry copied from sequence index `from` to `to` (< from).
struct EntryMove {
  uint64_t from = 0, to = 0;
};

/// The copies that bring the entries `kept` (strictly ascending) to indices
/// 0, 1, ..., in order: entries already in place are not copied.
std::vector<EntryMove> compactionPlan(const std::vector<uint64_t> &kept);

/// Keeps only the encoded entries `kept[h]` (strictly ascending, below
/// cache.encoded()) of KV head h of `sequence` in `layer`, stored by `keys`
/// and `values`, with their positions; one list keeps the same entries in
/// every head. Per-head lists must be as long as each other (the sequence
/// keeps one count for all heads) and need a layer with headPositions. The
/// tail's tokens follow the kept entries. Pages beyond those the remaining
/// tokens and the room reserved before need are freed. Refuses codecs that
/// encode several tokens together (KIVI keys) or whose areas are not one
/// fixed-size entry per slot after their sharedBytes().
Status compactSequence(PagedCache &cache, uint32_t layer, uint64_t sequence,
                       const Codec &keys, const Codec &values,
                       const std::vector<std::vector<uint64_t>> &kept);
/// The same entries `kept` of every KV head.
Status compactSequence(PagedCache &cache, uint32_t layer, uint64_t sequence,
                       const Codec &keys, const Codec &values,
                       const std::vector<uint64_t> &kept);

} // namespace kvrt::evict

#endif // KVRT_EVICT_COMPACT_H
