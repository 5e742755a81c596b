//===- GatherEntries.cuh - Unrolled gathers of selected bf16 entries ------===//
//
// The sparse kernels read listed entries (page, slot) of a bf16 area, four
// entries a warp: an eight of lanes per entry, lane `part` holding its
// 16-byte chunks part, part + 8, ... All U entries' loads are issued before
// any is used, so a warp waits for one round trip, not U.
//
// An entry names its page by a signed index: x >= 0 is an area of `near`
// (the pool, or an offloaded layer's device slots), x < 0 the page -1 - x
// of `far` (an offloaded layer's pages in host memory, read over the bus
// where the device holds no copy: docs/offload.md).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH
#define KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH

#include <cstdint>
#include <cuda_runtime.h>

namespace kvrt::cuda {

/// One KV head's areas of one side, as gatherEntries() reads them.
struct EntryAreas {
  const uint8_t *near = nullptr;
  uint64_t nearStride = 0;
  const uint8_t *far = nullptr;
  uint64_t farStride = 0;
};

/// The areas of KV head `head` of a pool whose pages are `pageStride`
/// bytes apart, its heads' areas `areaStride` apart; with `slots` (an
/// offloaded layer) the device slots, one head's area each, come first.
__device__ __forceinline__ EntryAreas entryAreas(const uint8_t *pool,
                                                 const uint8_t *slots,
                                                 uint64_t pageStride,
                                                 uint64_t areaStride,
                                                 int head) {
  const uint8_t *area = pool + head * areaStride;
  if (slots)
    return {slots, areaStride, area, pageStride};
  return {area, pageStride, nullptr, 0};
}

/// The signed index gatherEntries() reads `page` of KV head `head` at:
/// the page itself, or with `slotOf` ([pages][kvHeads], -1 where not
/// resident) its device slot or -1 - page.
__device__ __forceinline__ int entryPage(const int32_t *slotOf, int page,
                                         int kvHeads, int head) {
  if (!slotOf)
    return page;
  const int slot = slotOf[size_t(page) * kvHeads + head];
  return slot >= 0 ? slot : -1 - page;
}

/// The KV-head area that entryPage()'s signed index `at` names.
__device__ __forceinline__ const uint8_t *areaAt(const EntryAreas &areas,
                                                 int at) {
  return at >= 0 ? areas.near + size_t(at) * areas.nearStride
                 : areas.far + size_t(-1 - at) * areas.farStride;
}

/// Entries rows[base + 4u + item] for u < U of `areas` (D bf16 a slot)
/// into chunks[u]; past `n` the last entry is read again (the caller drops
/// it). `at[u]` says which was read.
template <int D, int U>
__device__ __forceinline__ void
gatherEntries(const EntryAreas &areas, const int2 *rows, int base, int item,
              int part, int n, uint4 (&chunks)[U][D / 64], int2 (&at)[U]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    at[u] = rows[min(base + 4 * u + item, n - 1)];
    const uint8_t *entry = areaAt(areas, at[u].x) + size_t(at[u].y) * 2 * D;
#pragma unroll
    for (int c = 0; c < D / 64; ++c)
      chunks[u][c] =
          *reinterpret_cast<const uint4 *>(entry + (part + 8 * c) * 16);
  }
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH
