//===- Offload.h - One layer's offload schedule, counted --------*- C++ -*-===//
//
// The CPU backend keeps every page in host memory and has no device; it
// runs the offload schedule a GPU would (offload/DevicePages.h) after each
// offloaded layer's attention and counts what would be copied, so that the
// schedule's hit rate and traffic are measured on real selections
// (docs/offload.md).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_OFFLOAD_H
#define KVRT_BACKENDS_CPU_OFFLOAD_H

#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/offload/DevicePages.h"

namespace kvrt::cpu {

class LayerOffload {
public:
  /// `devicePages` slots (KV-head pages) for layer `layer` of `kvHeads`
  /// KV heads, whose attention selects under `select` and records into
  /// record().
  LayerOffload(uint32_t layer, uint32_t kvHeads, uint64_t devicePages,
               uint32_t runnersUp, sparse::SelectPolicy select);

  SelectionRecord &record() { return record_; }
  const offload::PageCounts &counts() const { return pages_.counts(); }

  /// Whether a batch with `decodeRows` decode rows fits the device: each
  /// may read top_blocks KV-head pages per KV head at once. Checked before
  /// the batch stores anything.
  Status admit(uint64_t decodeRows) const;

  /// After the layer's attention over `rows` rows: the newest page of each
  /// sequence was written on the device; the pages the selecting rows read
  /// are acquired together (hits and misses), the runners-up prefetched;
  /// a sequence that attended densely streams its pages.
  Status run(const PagedCache &cache, const uint64_t *sequences, int64_t rows);

private:
  uint32_t layer_;
  uint32_t kvHeads_;
  sparse::SelectPolicy select_;
  offload::DevicePages pages_;
  SelectionRecord record_;
};

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_OFFLOAD_H
