//===- DeviceEviction.h - The plan's evict calls on the GPU -----*- C++ -*-===//
//
// What backends/cpu/Eviction.cpp does after each layer's attention, for the
// CUDA backend: after a call's steps (outside any captured graph), every
// sequence the call made due (evict/Schedule.h: a prefill beyond the
// budget, or `interval` entries beyond it) is scored, selected and
// compacted in every layer by the kernels of EvictKernels.h, and its pages
// beyond the kept entries go back to the ledger. A layer's compaction only
// changes that layer's cache, which no later layer of the call reads, so
// compacting every layer after the call keeps what the CPU keeps.
//
// The device pool keeps one page list and length per sequence for all
// layers, so every cache layer must evict by the same plan (they then keep
// as many entries); each layer keeps its entries' positions per KV head
// ([pages][kvHeads][pageSize]) here. Attention tests its entries' stored
// positions only for causality, which every kept entry passes for every
// later query, so it reads the pool's positions as before.
//
// SnapKV keeps each layer's last `observe` queries of every sequence in a
// ring on the device, [layers][ledger slots][observe][qHeads * d] floats:
// the steps record each row among the last `observe` of its sequence in
// the call at its position modulo `observe` (recordObserved(), from the
// plan's evict call, inside a captured graph too), and the scores read
// them (EvictSnapKv.cu).
//
// H2O keeps, beside the per-head positions, the attention each entry has
// accumulated per KV head (summed over the group's query heads): zeroed as
// a token is stored in a slot, added to at the plan's evict step by every
// row of a call (accumulate(), inside captured graphs too), moved by the
// compaction with the positions, and read as the scores.
//
// Refused with one sentence: layers that keep tokens exact beside
// their codes, KIVI, offloaded or sparsely selecting layers, sliding
// windows, TriAttention over polar keys.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DEVICEEVICTION_H
#define KVRT_BACKENDS_CUDA_DEVICEEVICTION_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/EvictKernels.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

namespace kvrt {
class Artifact;
}

namespace kvrt::cuda {

class DeviceKvPool;
class PageLedger;
struct DeviceLayerSpec;

/// One evict call of the plan with what the backend knows of its layer.
struct EvictCall {
  schema::EvictParams plan;
  /// TriAttention: the call's centre and magnitude tensors.
  uint32_t centres = 0, magnitudes = 0;
  /// The layer's query heads and RoPE, its attention's scale, and whether
  /// it attends through a sliding window.
  int64_t qHeads = 0;
  float scale = 1.0f;
  cpu::RopeFrequencies rope;
  bool slidingWindow = false;
};

/// A sequence of a call, as the eviction decides on it.
struct EvictCallSequence {
  uint64_t sequence = 0;
  /// Tokens the call appended, and those stored after it.
  uint64_t appended = 0, length = 0;
  /// The position of its last row, and its row of the batch's page tables.
  int32_t lastPosition = 0;
  int32_t tableRow = 0;
};

/// Whether every cache layer evicts by one plan (the layer numbers
/// aside): the device pool keeps one length per sequence for all layers.
/// `cacheLayers` are the layers that have a cache.
Status checkUniformEviction(const std::vector<EvictCall> &calls,
                            const std::vector<uint32_t> &cacheLayers);

/// The compactions after a call: each due sequence with its kept count
/// and selection (host only, tested without a GPU). `seen` holds the
/// tokens each sequence has appended so far and is updated.
std::vector<EvictSequence>
dueCompactions(const schema::EvictParams &plan,
               const std::vector<EvictCallSequence> &call,
               std::unordered_map<uint64_t, uint64_t> &seen);

/// SnapKV: the ring row each row of a call is recorded in, its sequence's
/// ledger slot (`slotOf`) when it is among the last `observe` rows of its
/// sequence in the call, else -1, so that no two rows of a call meet in
/// one place (host only, tested without a GPU).
std::vector<int32_t>
observedRowMarks(const uint64_t *rowSequences, uint32_t rows, uint32_t observe,
                 const std::function<uint32_t(uint64_t)> &slotOf);

/// TriAttentionCentres' arrays in one block of doubles (re, im, spread
/// [heads][half]; frequency, meanRe, meanIm [half]) from the artifact's
/// centres [heads][half][2] and magnitudes [heads][half] and the future
/// query `distances` (evict::futureDistances of the plan), as
/// evict::TriAttentionScorer computes them; and the view of such a block
/// uploaded to `device`.
std::vector<double> triAttentionCentreValues(
    const std::vector<float> &centres, const std::vector<float> &magnitudes,
    const cpu::RopeFrequencies &rope, const std::vector<double> &distances,
    size_t heads, size_t half);
TriAttentionCentres triAttentionCentresView(const double *device, size_t heads,
                                            size_t half,
                                            const cpu::RopeFrequencies &rope);

class DeviceEviction {
public:
  /// `calls` by layer (every cache layer), `layers` the pool's specs.
  static StatusOr<std::unique_ptr<DeviceEviction>>
  create(const Artifact &artifact, std::vector<EvictCall> calls,
         const std::vector<DeviceLayerSpec> &layers,
         const std::vector<uint32_t> &cacheLayers);

  /// Bytes of positions one page takes across the layers.
  uint64_t pageBytes() const;
  /// Allocates the layers' positions for `capacityPages` pages.
  Status allocate(uint32_t capacityPages, uint32_t pageSize);

  /// Before a call's steps: its rows' positions into every layer's.
  Status storePositions(const int32_t *slots, const int32_t *positions,
                        uint32_t rows, cudaStream_t stream);
  /// After a call's steps: decides which sequences are due and enqueues
  /// their compactions in every layer, reading the batch's page tables.
  /// Returns the sequences compacted and their kept counts, for the caller
  /// to shrink in the ledger once the stream has run.
  StatusOr<std::vector<std::pair<uint64_t, uint64_t>>>
  afterCall(const std::vector<EvictCallSequence> &call, DeviceKvPool &pool,
            const int32_t *pageTables, uint32_t pageTableStride,
            cudaStream_t stream);
  void removeSequence(uint64_t sequence) {
    seen_.erase(sequence);
    observing_.erase(sequence);
  }

  /// SnapKV: whether the steps record queries, how many of a sequence's
  /// last ones, and before a call's steps, the ring grown to the ledger's
  /// slots and new sequences' places emptied. H2O: whether the steps add
  /// their attention to the entries' mass; before a call, its workspace
  /// sized for `rows` rows of at most `maxLength` entries.
  bool observes() const { return observe_ > 0; }
  uint32_t observe() const { return observe_; }
  bool accumulates() const { return accumulates_; }
  Status beforeCall(const PageLedger &ledger, const uint64_t *rowSequences,
                    uint32_t rows, uint32_t maxLength, cudaStream_t stream);
  /// H2O: layer `layer`'s mass ([pages][kvHeads][pageSize] floats), to
  /// which the decode attention adds its rows' weights; null where the
  /// layer does not evict by H2O.
  float *mass(uint32_t layer);
  /// H2O, at layer `layer`'s evict call: the attention weights of rows
  /// the decode attention did not take (a prefill's) added to their
  /// sequences' entries (EvictKernels.h, accumulateH2o()).
  Status accumulate(uint32_t layer, const H2oRows &calls,
                    const DeviceKvPool &pool, const int32_t *pageTables,
                    uint32_t pageTableStride, cudaStream_t stream);
  /// At layer `layer`'s evict call: records the rows' queries (q: the
  /// call's input, `qStride` floats a row; positions: the rows'; marks:
  /// observedRowMarks() of the call's rows, on the device with the batch).
  Status record(uint32_t layer, const float *q, uint64_t qStride, uint32_t rows,
                const int32_t *positions, const int32_t *marks,
                cudaStream_t stream);
  /// Times the ring or H2O's workspace moved (captured graphs hold them).
  uint64_t moves() const { return moves_; }

  /// The positions of layer `layer`'s first `length` entries of a sequence
  /// holding `pages`, per KV head (synchronous; for checks).
  StatusOr<std::vector<std::vector<int32_t>>>
  positions(uint32_t layer, const std::vector<int32_t> &pages,
            uint64_t length) const;

  uint64_t compactions() const { return compactions_; }
  uint64_t evictedEntries() const { return evicted_; }

private:
  struct Layer {
    EvictCall call;
    uint32_t headDim = 0;
    /// TriAttention: TriAttentionCentres' arrays, in one buffer.
    DeviceBuffer centres;
    TriAttentionCentres view;
  };
  DeviceEviction() = default;
  /// layers_'s index of cache layer `layer`, or layers_.size().
  size_t layerIndex(uint32_t layer) const;
  /// Layer l's operands: its pages, the batch's page tables, its positions
  /// (and H2O's mass), query heads and scale.
  EvictLaunch layerLaunch(size_t l, const DeviceKvPool &pool,
                          const int32_t *pageTables,
                          uint32_t pageTableStride) const;

  std::vector<Layer> layers_;
  /// The layers' KV heads and largest head dimension.
  uint32_t kvHeads_ = 0, headDim_ = 0, pageSize_ = 0;
  uint64_t layerStride_ = 0;
  DeviceBuffer positions_, sequences_, workspace_;
  std::unordered_map<uint64_t, uint64_t> seen_;
  /// SnapKV: the queries a sequence keeps, the widest layer's query row
  /// (qHeads * d), the ring's rows, its queries and their positions
  /// ([layers][ringRows][observe]; -1: none yet), and the sequences whose
  /// ring row is cleared.
  uint32_t observe_ = 0, queryWidth_ = 0, ringRows_ = 0;
  DeviceBuffer ring_, ringPositions_;
  /// H2O: whether the layers evict by it, their mass ([layers][pages]
  /// [kvHeads][pageSize] floats, as positions_) and the softmax partials.
  bool accumulates_ = false;
  DeviceBuffer mass_, h2oPartials_;
  std::unordered_map<uint64_t, uint32_t> observing_;
  uint64_t moves_ = 0;
  uint64_t compactions_ = 0, evicted_ = 0;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEVICEEVICTION_H
