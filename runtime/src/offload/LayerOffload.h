//===- LayerOffload.h - One layer's offload schedule ------------*- C++ -*-===//
//
// After each offloaded layer's attention a backend describes the call (its
// sequences, the pages each decode row read) and LayerOffload runs the
// schedule of DevicePages.h on it: the pages the call's appends wrote are
// resident, those the selecting rows read are acquired together (hits and
// misses), the runners-up prefetched, and a sequence that attended densely
// streams its earlier pages (docs/offload.md). The CPU backend only counts
// what would be copied; the CUDA backend copies it.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_OFFLOAD_LAYEROFFLOAD_H
#define KVRT_OFFLOAD_LAYEROFFLOAD_H

#include "kvrt/Runtime.h"
#include "runtime/src/offload/DevicePages.h"

#include <functional>

namespace kvrt::offload {

/// One offloaded layer's call, as the schedule sees it.
struct LayerCall {
  struct Sequence {
    /// Tokens stored after the call, and rows the call appended.
    uint64_t length = 0, rows = 0;
    /// Whether its decode row attended to a selection (pagesRead says
    /// what it read); otherwise it attended densely.
    bool selected = false;
  };
  uint32_t pageSize = 0;
  std::vector<Sequence> sequences;
  /// pageKey() of sequence s's page at table position p, KV head h.
  std::function<uint64_t(size_t s, uint64_t p, uint32_t h)> pageKey;
  /// For a selected sequence s and KV head h: appends the table positions
  /// of the pages its row read, and of those predicted for the next step.
  std::function<void(size_t s, uint32_t h, std::vector<uint64_t> &read,
                     std::vector<uint64_t> &predicted)>
      pagesOf;
};

class LayerOffload {
public:
  /// `devicePages` slots (KV-head pages) for layer `layer` of `kvHeads`
  /// KV heads whose decode rows read at most `topBlocks` blocks per head.
  LayerOffload(uint32_t layer, uint32_t kvHeads, uint64_t devicePages,
               uint32_t topBlocks)
      : layer_(layer), kvHeads_(kvHeads), topBlocks_(topBlocks),
        pages_(devicePages, kvHeads) {}

  uint32_t layer() const { return layer_; }
  const PageCounts &counts() const { return pages_.counts(); }
  DevicePages &pages() { return pages_; }

  /// Whether a batch with `decodeRows` decode rows fits the device: each
  /// may read top_blocks KV-head pages per KV head at once. Checked before
  /// the batch stores anything.
  Status admit(uint64_t decodeRows) const;

  /// Runs the schedule after the layer's attention over `call`.
  Status run(const LayerCall &call);

private:
  uint32_t layer_;
  uint32_t kvHeads_;
  uint32_t topBlocks_;
  DevicePages pages_;
};

/// Adds `counts` of a layer whose KV-head pages take `pageBytes` to
/// `stats`: what a step read and what was copied in.
void addCounts(const PageCounts &counts, uint64_t pageBytes,
               EngineStats::Offload &stats);

} // namespace kvrt::offload

#endif // KVRT_OFFLOAD_LAYEROFFLOAD_H
