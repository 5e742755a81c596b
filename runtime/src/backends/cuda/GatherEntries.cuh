//===- GatherEntries.cuh - Unrolled gathers of selected bf16 entries ------===//
//
// The sparse kernels read listed entries (page, slot) of a bf16 area, four
// entries a warp: an eight of lanes per entry, lane `part` holding its
// 16-byte chunks part, part + 8, ... All U entries' loads are issued before
// any is used, so a warp waits for one round trip, not U.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH
#define KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH

#include <cstdint>
#include <cuda_runtime.h>

namespace kvrt::cuda {

/// Entries rows[base + 4u + item] for u < U of `area` (pages every
/// `pageStride` bytes, D bf16 a slot) into chunks[u]; past `n` the last
/// entry is read again (the caller drops it). `at[u]` says which was read.
template <int D, int U>
__device__ __forceinline__ void
gatherEntries(const uint8_t *area, uint64_t pageStride, const int2 *rows,
              int base, int item, int part, int n, uint4 (&chunks)[U][D / 64],
              int2 (&at)[U]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    at[u] = rows[min(base + 4 * u + item, n - 1)];
    const uint8_t *entry =
        area + size_t(at[u].x) * pageStride + size_t(at[u].y) * 2 * D;
#pragma unroll
    for (int c = 0; c < D / 64; ++c)
      chunks[u][c] =
          *reinterpret_cast<const uint4 *>(entry + (part + 8 * c) * 16);
  }
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH
