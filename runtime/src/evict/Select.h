//===- Select.h - Which cached entries a budget keeps -----------*- C++ -*-===//
//
// Given scores per (KV head, entry), keeps the attention sinks, the recent
// window and the best-scored others up to a budget. Selections are per KV
// head, or one per layer shared by its heads (what the paged cache can
// compact today: its pages record one position per token for all heads).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_EVICT_SELECT_H
#define KVRT_EVICT_SELECT_H

#include "runtime/src/evict/RankKey.h"
#include "runtime/src/evict/Scores.h"

#include <cstdint>
#include <vector>

namespace kvrt::evict {

struct SelectionParams {
  /// Entries kept in all, sinks and recent window included; when these
  /// alone exceed it, they are all kept anyway.
  uint64_t budget = 0;
  /// The first entries of the sequence, always kept.
  uint64_t sinks = 0;
  /// The last entries of the sequence, always kept.
  uint64_t recent = 0;
  /// One selection for all KV heads, on their scores combined by
  /// `aggregation`, instead of one per head.
  bool shared = false;
  HeadAggregation aggregation = HeadAggregation::Mean;
};

/// Where a selection of `count` entries keeps what: the first `sinks`, every
/// entry from `recentStart` on, and the `free` best scored between them;
/// everything (sinks = recentStart = count) when count <= budget.
struct KeptLayout {
  uint64_t sinks = 0, recentStart = 0, free = 0;
  uint64_t kept(uint64_t count) const {
    return sinks + (count - recentStart) + free;
  }
};
KeptLayout keptLayout(uint64_t count, const SelectionParams &params);

/// Shifts and scales one head's scores to mean 0 and deviation 1 (of the
/// finite ones, in double), so that heads whose logits spread more do not
/// decide a shared selection alone; unchanged unless two finite scores
/// spread. What the backends do to TriAttention's scores.
void standardise(float *scores, uint64_t count);

/// The scores a shared selection ranks by: per entry the mean (in double)
/// or the maximum over the heads, NaN as -inf; with StandardisedMax, each
/// head's scores standardised first (a copy).
std::vector<float> combineHeads(const float *scores, int64_t kvHeads,
                                int64_t stride, uint64_t count,
                                HeadAggregation aggregation);

/// The indices kept of `count` entries, ascending, per KV head (one list
/// when params.shared); scores[h * stride + i] is entry i's score for KV
/// head h. Higher scores win, ties go to the earlier entry, NaN counts as
/// -inf. Keeps everything when count <= budget.
std::vector<std::vector<uint64_t>> selectKept(const float *scores,
                                              int64_t kvHeads, int64_t stride,
                                              uint64_t count,
                                              const SelectionParams &params);

} // namespace kvrt::evict

#endif // KVRT_EVICT_SELECT_H
