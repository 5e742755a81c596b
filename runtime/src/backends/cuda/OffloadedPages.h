//===- OffloadedPages.h - Offloaded layers' pages on the device -*- C++ -*-===//
//
// With kv-offload (docs/offload.md) an offloaded layer's pages live in
// mapped host memory (DeviceKvPool.h) and a budget of its KV-head pages
// in device slots. Each call, the layer's schedule (offload/
// LayerOffload.h, the one the CPU backend counts with) decides from what
// the call's decode rows selected which pages are resident; this class
// copies the difference in: one launch on a copy stream (PageCopies.h)
// moves the areas of the pages that arrived and writes the changed
// entries of the slot table. The next call's work waits for it with an
// event. Level 1 of the selection writes what it kept to mapped host
// memory as well, and a layer's schedule runs on the host as soon as that
// is done (the layer's attention says so in a word of mapped memory),
// while the GPU computes the later layers; the copies wait for the whole
// call.
//
// The kernels read through the slot table: the decode step's summary
// update, level 2 of the selection and the sparse attention read a
// resident page from its slot and any other from host memory over the bus
// (a miss, counted by the schedule, copied in for the steps after); a
// decode append writes the host page and, where the page is resident, its
// slot (AppendArgs::residentSlotOf). Dense reads (a prefill's earlier
// chunks, the keys its pages' summaries are built from) read host memory;
// the summaries themselves are on the device.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_OFFLOADEDPAGES_H
#define KVRT_BACKENDS_CUDA_OFFLOADEDPAGES_H

#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/backends/cuda/Append.h"
#include "runtime/src/backends/cuda/DeviceKvPool.h"
#include "runtime/src/backends/cuda/PageCopies.h"
#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/offload/LayerOffload.h"

#include <map>
#include <memory>

typedef struct CUevent_st *cudaEvent_t;

namespace kvrt::cuda {

/// One offloaded layer as the artifact's prefetch call gives it.
struct OffloadPlan {
  uint32_t layer = 0;
  /// Device KV-head pages, or (when 0) this fraction of the pool's.
  uint64_t slots = 0;
  double ratio = 0;
  SparsePolicy select;
};

class OffloadedPages {
public:
  ~OffloadedPages();

  /// The slots, slot tables and copy stream of `plans` (layers of `pool`
  /// whose specs are offloaded).
  static StatusOr<std::unique_ptr<OffloadedPages>>
  create(const DeviceKvPool &pool, const std::vector<OffloadPlan> &plans);

  /// Device bytes of slots and slot table per KV-head page of `spec`'s
  /// pool, and per slot.
  static uint64_t tableBytesPerPage(const DeviceLayerSpec &spec);
  static uint64_t slotBytes(const DeviceLayerSpec &spec);

  bool offloads(uint32_t layer) const { return layers_.count(layer) != 0; }
  /// Whether a call with `decodeRows` decode rows fits every layer's slots.
  Status admit(uint64_t decodeRows) const;
  /// Sizes the selections' copies for a call of `sequences` sequences and
  /// clears the layers' signals; moves() counts the times their host
  /// buffers moved (a captured graph holds their addresses).
  Status prepareCall(uint32_t sequences);
  uint64_t moves() const { return moves_; }
  /// Makes `stream` wait for the last call's copies.
  Status waitForCopies(cudaStream_t stream);

  ResidentPages resident(uint32_t layer) const;
  /// Sets `args`' resident fields for `layer`'s key (or value) side: its
  /// appends also store the entries of resident pages in their slots.
  void residentAppend(uint32_t layer, bool values, AppendArgs &args) const;
  /// Points `args`' hostBlockCounts and hostBlocks (level 1 writes them)
  /// at where `layer`'s schedule reads the selections of the call's table
  /// rows from `tableRow` on, and its hostSignal at the layer's signal,
  /// which the attention of the call's rows up to `rowsEnd` sets.
  void mirrorSelection(uint32_t layer, uint32_t tableRow, uint32_t rowsEnd,
                       SparseDecodeArgs &args) const;

  /// One sequence of a call: its ledger id, rows and tokens stored once
  /// the call has run.
  struct CallSequence {
    uint64_t id = 0;
    uint64_t rows = 0;
    uint64_t length = 0;
  };
  /// Once a call's work is enqueued on `stream` (it may still run): runs
  /// each layer's schedule over the call as that layer's selections
  /// arrive (its signal reaching `decodeEnd`, one past the call's last
  /// decode row), and enqueues the copies of what changed after the call.
  Status afterCall(const PageLedger &ledger,
                   const std::vector<CallSequence> &sequences,
                   uint32_t decodeEnd, cudaStream_t stream);

  void addStats(EngineStats::Offload &stats) const;

private:
  struct Layer;
  OffloadedPages() = default;
  /// Lists the copies and table writes of `layer`'s changed slots in it.
  void collectCopies(Layer &layer);
  /// Returns once `layer`'s signal reaches `decodeEnd`; an error if the
  /// call ends first.
  Status waitForSelections(const Layer &layer, uint32_t decodeEnd) const;

  std::map<uint32_t, std::unique_ptr<Layer>> layers_;
  /// Runs the layers' schedules side by side.
  std::unique_ptr<cpu::ThreadPool> threads_;
  uint32_t pageSize_ = 0;
  uint32_t sequenceCapacity_ = 0;
  uint64_t moves_ = 0;
  /// EngineStats::Offload's scheduledCalls and lateSchedules.
  uint64_t calls_ = 0, lateCalls_ = 0;
  cudaStream_t copyStream_ = nullptr;
  /// The last copies' end, and the end of the call they follow.
  cudaEvent_t copied_ = nullptr, called_ = nullptr;
  bool copiesPending_ = false;
  /// [layers] words of mapped memory (SparseDecodeArgs::hostSignal), one
  /// a layer in layers_'s order.
  HostBuffer signals_;
  /// The copies and table writes being collected, and the mapped host
  /// memory the launch reads them from.
  std::vector<PageCopy> copies_;
  std::vector<SlotWrite> writes_;
  HostBuffer descriptors_;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_OFFLOADEDPAGES_H
