//===- DeviceKvPool.h - The paged cache in device memory --------*- C++ -*-===//
//
// Every layer's pages live in one device allocation per side, sized when
// the backend is created (as vLLM sizes its block pool): page i of the
// layer is at i * kvHeads * areaStride. An offloaded layer's pages are in
// mapped host memory instead, laid out the same, and the device holds a
// budget of them (OffloadedPages.h). The host keeps the bookkeeping in
// a PageLedger. Every layer holds as many tokens of a sequence (the CUDA
// backend evicts from all layers alike, DeviceEviction.h): one page list
// per sequence and one positions array serve all layers. A layer that keeps
// tokens exact beside their codes has a store with a row per sequence slot
// (ExactTokens.h), grown as more sequences are held at once.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DEVICEKVPOOL_H
#define KVRT_BACKENDS_CUDA_DEVICEKVPOOL_H

#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/LatentKeyOperands.h"
#include "runtime/src/backends/cuda/PageLedger.h"
#include "runtime/src/backends/cuda/SparseSelect.h"

#include <memory>
#include <utility>
#include <vector>

namespace kvrt::cuda {

struct DeviceLayerSpec {
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  DeviceSideLayout key, value;
  /// fp8 per_head: the scales of each side's KV heads; empty otherwise.
  std::vector<float> keyScales, valueScales;
  /// Latent values: their basis (PagedKvView::valueBasis); empty
  /// otherwise.
  std::vector<float> valueBasis;
  /// Latent keys: their basis (as valueBasis, for the append) and what the
  /// kernels read (LatentKeyOperands.h); empty otherwise.
  std::vector<float> keyBasis;
  LatentKeyOperands keyOperands;
  /// Sparse selection: slots per block summary (SparseSelect.h); 0: the
  /// layer keeps none.
  uint32_t summaryBlock = 0;
  /// Whether the layer's pages live in host memory (kv-offload).
  bool offloaded = false;
  /// Each sequence's first and most recent tokens kept exact (the larger
  /// of the two sides' sinks and windows, as the CPU backend keeps them);
  /// KIVI's window (its residual) leaves flushGroup tokens at a time.
  uint32_t exactSinks = 0, exactWindow = 0, flushGroup = 1;
  /// Entries of the store's ring of recent tokens: the window, and for
  /// KIVI the group that has yet to leave it (ExactTokens.h).
  uint32_t ringEntries() const {
    return exactWindow + (flushGroup > 1 ? flushGroup : 0);
  }
  bool keepsExact() const { return exactSinks || ringEntries(); }
  /// Bytes of one sequence slot's row of the exact-token store, per side.
  uint64_t exactSideBytes() const {
    return uint64_t(exactSinks + ringEntries()) * kvHeads * headDim * 2;
  }
};

class DeviceKvPool {
public:
  struct Layer {
    DeviceLayerSpec spec;
    /// The pages of each side: in device memory, or (offloaded) mapped
    /// host memory.
    uint8_t *keys() const {
      return spec.offloaded ? hostKeys.as<uint8_t>() : deviceKeys.as<uint8_t>();
    }
    uint8_t *values() const {
      return spec.offloaded ? hostValues.as<uint8_t>()
                            : deviceValues.as<uint8_t>();
    }
    DeviceBuffer deviceKeys, deviceValues, keyScales, valueScales, valueBasis;
    /// Latent keys: spec.keyBasis and spec.keyOperands' vectors.
    DeviceBuffer keyBasis, keyAxes, keyFrequencies, keyRotations,
        keyRopeInverse;
    HostBuffer hostKeys, hostValues;
    /// Block summaries where spec.summaryBlock is set, in SparseSelect.h's
    /// layout.
    DeviceBuffer summaryCodes, summaryExponents;
    BlockSummaries summaries() const {
      return {summaryCodes.as<uint8_t>(), summaryExponents.as<int8_t>()};
    }
    /// Where spec.keepsExact(): the stores of the exact tokens, a row per
    /// sequence slot.
    DeviceBuffer exactKeys, exactValues;
    /// The layer's exact tokens as the kernels read them, but for the
    /// call's rows (ExactTokensView::calls, own*), which the caller adds.
    ExactTokensView exact() const;
  };

  /// Bytes of one page's block summaries in a layer of `spec`.
  static uint64_t summaryPageBytes(const DeviceLayerSpec &spec,
                                   uint32_t pageSize);

  /// Allocates `capacityPages` pages of `pageSize` tokens for each layer.
  static StatusOr<std::unique_ptr<DeviceKvPool>>
  create(std::vector<DeviceLayerSpec> layers, uint32_t pageSize,
         uint32_t capacityPages);

  /// Which pages each sequence holds.
  PageLedger &ledger() { return ledger_; }
  const PageLedger &ledger() const { return ledger_; }
  /// The ledger's addSequence(), with room in the exact-token stores for
  /// its slot (they double when full: their addresses change, counted by
  /// exactMoves()).
  Status addSequence(uint64_t sequence);
  /// The ledger's share(), likewise.
  Status share(uint64_t from, uint64_t sequence, uint64_t tokens);
  /// The ledger's reserve(), keeping the peak of bytesInUse().
  Status reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens);
  uint64_t exactMoves() const { return exactMoves_; }

  uint32_t pageSize() const { return ledger_.pageSize(); }
  Layer &layer(size_t i) { return layers_[i]; }
  const Layer &layer(size_t i) const { return layers_[i]; }
  /// [capacityPages][pageSize]: each slot's position, all layers.
  int32_t *positions() const { return positions_.as<int32_t>(); }

  /// Bytes of keys and values one token takes across all layers (page
  /// areas and block summaries over the page size: metadata included), and
  /// bytes of pages attached to sequences and of their exact-token store
  /// rows, now and at most so far.
  double bytesPerToken() const;
  uint64_t bytesInUse() const {
    return ledger_.pagesInUse() * pageBytes_ +
           ledger_.sequenceCount() * exactSlotBytes_;
  }
  uint64_t peakBytes() const { return peakBytes_; }

private:
  DeviceKvPool(uint32_t pageSize, uint32_t capacityPages, std::string name)
      : ledger_(pageSize, capacityPages, std::move(name)) {}

  /// After the ledger added `sequence`: room for its slot's rows in the
  /// exact-token stores, or the sequence removed again.
  Status holdSlot(uint64_t sequence);
  /// Makes the exact-token stores hold at least `slots` rows.
  Status growExactStores(uint32_t slots);

  std::vector<Layer> layers_;
  DeviceBuffer positions_;
  /// One page of every layer.
  uint64_t pageBytes_ = 0;
  /// One sequence slot's row of every exact-token store, the rows they
  /// hold, and how often they moved.
  uint64_t exactSlotBytes_ = 0;
  uint32_t exactSlots_ = 0;
  uint64_t exactMoves_ = 0;
  uint64_t peakBytes_ = 0;
  PageLedger ledger_;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEVICEKVPOOL_H
