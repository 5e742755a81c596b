//===- TwoLevel.h - Two-level sparse selection of entries -------*- C++ -*-===//
//
// Which encoded entries a decode query attends to (Quest; AsyncTLS):
//   1. every block of `block` entries gets, per query head h of the KV
//      group, Quest's bound b_h = sum_d max(p_hd lo_d, p_hd hi_d) from its
//      summaries (BlockSummary.h), p_h the query in the key codec's domain;
//   2. the group ranks blocks by max_h (b_h - max over blocks of b_h): a
//      block is as important as it is to the head it matters most to, each
//      head measured from its own best block;
//   3. the first block (the attention sink) and the newest are always
//      kept, with the best others up to `topBlocks`; their entries scored
//      exactly, s_h = p_h . k in the codec's domain, ranked likewise by
//      max_h (s_h - max over entries of s_h);
//   4. the `topTokens` best entries are attended to.
// Sums are in double and ties go to the older block or entry, so a
// float64 evaluation of the same rule on the same inputs chooses the same
// entries. Entries still in the sequence's tail are attended to anyway.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SPARSE_TWOLEVEL_H
#define KVRT_SPARSE_TWOLEVEL_H

#include <cstdint>
#include <vector>

namespace kvrt {
class Codec;
class PagedCache;

namespace sparse {

/// A layer's selection (SelectParams in kvpkg.proto); block 0: none.
struct SelectPolicy {
  uint32_t block = 0;
  uint32_t topBlocks = 0;
  uint32_t topTokens = 0;
  bool enabled() const { return block != 0; }
};

/// Buffers selectEntries() reuses between calls.
struct SelectScratch {
  std::vector<double> perHead;
  std::vector<double> rank;
  std::vector<uint64_t> order;
  std::vector<uint64_t> candidates;
  std::vector<float> decoded;
  std::vector<double> columns;
};

/// Chooses the encoded entries of `sequence` in `layer` that the `group`
/// prepared queries at `prepared` (one every `preparedStride` floats) of
/// KV head `head` attend to, into `selected` in index order. Returns false,
/// leaving `selected` empty, when the sequence has at most topTokens
/// encoded entries: then every entry is attended to. With
/// `runnerUpBlocks`, also the `runnersUp` blocks ranked just below the
/// kept ones (what offload prefetches), in index order.
bool selectEntries(const PagedCache &cache, uint32_t layer, uint64_t sequence,
                   const Codec &keys, uint32_t head, const float *prepared,
                   int64_t preparedStride, int64_t group,
                   const SelectPolicy &policy, SelectScratch &scratch,
                   std::vector<uint64_t> &selected, uint32_t runnersUp = 0,
                   std::vector<uint64_t> *runnerUpBlocks = nullptr);

} // namespace sparse
} // namespace kvrt

#endif // KVRT_SPARSE_TWOLEVEL_H
