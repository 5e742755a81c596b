//===- Schedule.h - When a sequence is compacted and to what ----*- C++ -*-===//
//
// The decisions of an `evict` call (kvpkg.proto EvictParams) that do not
// depend on the cache's contents: a sequence's budget, whether a call makes
// it due, the selection's sinks and protected window, and TriAttention's
// future distances. The CPU backend
// (backends/cpu/Eviction.cpp) and the CUDA backend (DeviceEviction.cpp)
// both decide by these, so they compact the same sequences to the same
// counts. docs/eviction.md.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_EVICT_SCHEDULE_H
#define KVRT_EVICT_SCHEDULE_H

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/evict/Select.h"

#include <cstdint>
#include <vector>

namespace kvrt::evict {

/// Entries kept of a sequence that has appended `seen` tokens:
/// budget_tokens, or budget_fraction of `seen` rounded up.
uint64_t budgetFor(const schema::EvictParams &plan, uint64_t seen);

/// Whether a sequence holding `length` entries, `seen` appended in all and
/// `appended` by this call, is compacted after the call: when it holds more
/// than its budget and either the call was a prefill (several tokens) or
/// it holds `interval` entries beyond the budget.
bool compactionDue(const schema::EvictParams &plan, uint64_t length,
                   uint64_t seen, uint64_t appended);

/// The selection of a compaction after `seen` tokens: the budget, the
/// sinks, the recent window capped at half the budget (so that a small
/// budget still leaves the scores entries to choose), shared or per KV head.
SelectionParams selectionFor(const schema::EvictParams &plan, uint64_t seen);

/// TriAttention's future query distances: 1, 2, 4, ..., up to the plan's
/// horizon (kReferenceHorizon when it gives none).
std::vector<double> futureDistances(const schema::EvictParams &plan);

/// How TriAttention combines a KV group's query heads under `plan`.
HeadAggregation groupCombination(const schema::EvictParams &plan);

} // namespace kvrt::evict

#endif // KVRT_EVICT_SCHEDULE_H
