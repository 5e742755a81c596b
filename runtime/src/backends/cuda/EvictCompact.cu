//===- EvictCompact.cu - Moving the kept entries to the front -------------===//
//
// One block per (KV head, sequence) and side: kept entry i of the head
// moves from index kept[i] to i in the sequence's pages, a chunk of
// destinations at a time; every thread loads its share of the chunk's
// sources into registers, the block waits, then stores them, so each
// entry is read once and written once and no source is overwritten before
// it is read (kept ascending: a chunk's destinations lie below every later
// chunk's sources). Entries already in place are not copied, nor are
// chunks whose last entry is (the sinks). The key side's blocks move the
// head's positions too. Words of up to sixteen bytes, as wide as the
// entries' alignment allows. EvictKernels.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 512;
/// Words a thread holds per chunk.
constexpr int kHeld = 4;

struct SideArgs {
  uint8_t *pool;
  DeviceSideLayout layout;
  bool keys;
};

template <typename Word>
__global__ void __launch_bounds__(kThreads)
    compactKernel(EvictLaunch p, const int32_t *keptAll, SideArgs side) {
  const EvictSequence s = p.sequences[blockIdx.y];
  const int h = blockIdx.x, kvHeads = int(p.cache.kvHeads);
  const int pageSize = int(p.cache.pageSize), tid = threadIdx.x;
  const int32_t *table =
      p.cache.pageTables + size_t(s.tableRow) * p.cache.pageTableStride;
  const int32_t *kept =
      keptAll + (size_t(blockIdx.y) * kvHeads + (p.shared ? 0 : h)) * p.maxKept;
  const DeviceSideLayout &layout = side.layout;
  const int words = int(layout.entryBytes / sizeof(Word));
  const int chunk = kThreads * kHeld / words;
  auto entry = [&](int index) {
    const size_t page = size_t(table[index / pageSize]);
    return reinterpret_cast<Word *>(
        side.pool + (page * kvHeads + h) * layout.areaStride +
        layout.codesOffset + size_t(index % pageSize) * layout.entryBytes);
  };
  auto position = [&](int index) {
    return p.positions +
           (size_t(table[index / pageSize]) * kvHeads + h) * pageSize +
           index % pageSize;
  };
  for (int first = 0; first < s.kept; first += chunk) {
    const int last = min(first + chunk, s.kept) - 1;
    if (kept[last] == last)
      continue; // Ascending from kept[i] >= i: the whole chunk is in place.
    // A chunk holds at most kThreads * kHeld words and as many entries.
    Word held[kHeld];
    int32_t heldPositions[kHeld];
#pragma unroll
    for (int r = 0; r < kHeld; ++r) {
      const int t = tid + r * kThreads, i = first + t / words;
      if (i <= last && kept[i] != i)
        held[r] = entry(kept[i])[t % words];
      const int j = first + t;
      if (side.keys && j <= last && kept[j] != j)
        heldPositions[r] = *position(kept[j]);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kHeld; ++r) {
      const int t = tid + r * kThreads, i = first + t / words;
      if (i <= last && kept[i] != i)
        entry(i)[t % words] = held[r];
      const int j = first + t;
      if (side.keys && j <= last && kept[j] != j)
        *position(j) = heldPositions[r];
    }
    __syncthreads();
  }
}

/// The widest word that divides the entries and their offsets.
uint32_t wordBytes(const DeviceSideLayout &side) {
  uint32_t bytes = 16;
  while (bytes > 1 && (side.entryBytes % bytes || side.codesOffset % bytes ||
                       side.areaStride % bytes))
    bytes /= 2;
  return bytes;
}

Status launchSide(const EvictLaunch &p, const SideArgs &side,
                  cudaStream_t stream) {
  const dim3 grid(p.cache.kvHeads, p.count);
  const int32_t *kept = keptIndices(p);
  switch (wordBytes(side.layout)) {
  case 16:
    compactKernel<uint4><<<grid, kThreads, 0, stream>>>(p, kept, side);
    break;
  case 8:
    compactKernel<uint2><<<grid, kThreads, 0, stream>>>(p, kept, side);
    break;
  case 4:
    compactKernel<uint32_t><<<grid, kThreads, 0, stream>>>(p, kept, side);
    break;
  case 2:
    compactKernel<uint16_t><<<grid, kThreads, 0, stream>>>(p, kept, side);
    break;
  default:
    compactKernel<uint8_t><<<grid, kThreads, 0, stream>>>(p, kept, side);
    break;
  }
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the cache compaction", e);
  return Status::ok();
}

__global__ void storeHeadPositionsKernel(int32_t *positions,
                                         uint64_t layerStride, uint32_t layers,
                                         uint32_t kvHeads, uint32_t pageSize,
                                         const int32_t *slots,
                                         const int32_t *rowPositions) {
  const int32_t slot = slots[blockIdx.x], value = rowPositions[blockIdx.x];
  const size_t page = size_t(slot / int32_t(pageSize));
  const uint32_t inPage = uint32_t(slot % int32_t(pageSize));
  for (uint32_t t = threadIdx.x; t < layers * kvHeads; t += blockDim.x) {
    const uint32_t layer = t / kvHeads, h = t % kvHeads;
    positions[layer * layerStride + (page * kvHeads + h) * pageSize + inPage] =
        value;
  }
}

} // namespace

bool evictCompacts(const DeviceSideLayout &side) {
  // Entries of at most 2 KB: a chunk holds at least one.
  return side.kind != DeviceSideLayout::Kind::Kivi &&
         side.entryBytes <= kThreads * kHeld && side.entryBytes > 0;
}

Status compactEntries(const EvictLaunch &p, cudaStream_t stream) {
  if (!p.count)
    return Status::ok();
  for (bool keys : {true, false}) {
    const DeviceSideLayout &layout = keys ? p.cache.key : p.cache.value;
    if (!evictCompacts(layout))
      return Status::error("the GPU compacts caches of one fixed-size entry "
                           "per token of at most 2 KB, not KIVI's groups");
    SideArgs side{const_cast<uint8_t *>(keys ? p.cache.keys : p.cache.values),
                  layout, keys};
    KVRT_RETURN_IF_ERROR(launchSide(p, side, stream));
  }
  return Status::ok();
}

Status storeHeadPositions(int32_t *positions, uint64_t layerStride,
                          uint32_t layers, uint32_t kvHeads, uint32_t pageSize,
                          const int32_t *slots, const int32_t *rowPositions,
                          uint32_t rows, cudaStream_t stream) {
  if (!rows || !layers)
    return Status::ok();
  storeHeadPositionsKernel<<<rows, 128, 0, stream>>>(
      positions, layerStride, layers, kvHeads, pageSize, slots, rowPositions);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("storing the evicting layers' positions", e);
  return Status::ok();
}

} // namespace kvrt::cuda
