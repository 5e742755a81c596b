//===- BlockSummaries.cu - Per-block key bounds of bf16 pages -------------===//
//
// One thread block per (page, KV head) or (row, KV head). A block's
// entries are read 16 bytes a thread: thread t takes chunk t % (D / 8) of
// every (128 / (D / 8))-th entry, keeps the minimum and maximum of its 8
// channels, and the threads' partial bounds meet in shared memory. The
// minimum and maximum of bf16 values are bf16 values, so the bounds are
// stored exactly (the CPU rounds outward, which changes nothing here).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/GatherEntries.cuh"
#include "runtime/src/backends/cuda/SparseKernels.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

/// Writes the lower then upper bounds of entries [first, first + count)
/// (count >= 1) of the key area at `area` to `out`; all threads take part.
template <int D>
__device__ void summariseBlock(const uint8_t *area, int first, int count,
                               uint16_t *out) {
  constexpr int kChunks = D / 8, kRows = kSummaryThreads / kChunks;
  __shared__ float partial[2][kRows][D];
  const int tid = threadIdx.x, chunk = tid % kChunks, row = tid / kChunks;
  float lo[8], hi[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    lo[i] = INFINITY;
    hi[i] = -INFINITY;
  }
  for (int e = row; e < count; e += 4 * kRows) {
    // Four entries' loads in flight; past the end, the last entry again
    // (it changes no bound).
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      v[u] = *reinterpret_cast<const uint4 *>(
          area + size_t(first + min(e + u * kRows, count - 1)) * 2 * D +
          chunk * 16);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const uint32_t w[4] = {v[u].x, v[u].y, v[u].z, v[u].w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float x0 = __uint_as_float(w[k] << 16);
        const float x1 = __uint_as_float(w[k] & 0xffff0000u);
        lo[2 * k] = fminf(lo[2 * k], x0);
        hi[2 * k] = fmaxf(hi[2 * k], x0);
        lo[2 * k + 1] = fminf(lo[2 * k + 1], x1);
        hi[2 * k + 1] = fmaxf(hi[2 * k + 1], x1);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    partial[0][row][chunk * 8 + i] = lo[i];
    partial[1][row][chunk * 8 + i] = hi[i];
  }
  __syncthreads();
  for (int c = tid; c < 2 * D; c += kSummaryThreads) {
    const int side = c / D, channel = c % D;
    float bound = partial[side][0][channel];
    for (int r = 1; r < kRows; ++r)
      bound = side ? fmaxf(bound, partial[side][r][channel])
                   : fminf(bound, partial[side][r][channel]);
    out[c] = uint16_t(__float_as_uint(bound) >> 16);
  }
  __syncthreads();
}

__device__ uint16_t *summaryOf(const SparseKernelParams &p, int page, int head,
                               int blockInPage, int D) {
  return p.summaries +
         ((size_t(page) * p.kvHeads + head) * p.blocksPerPage + blockInPage) *
             2 * D;
}

template <int D>
__global__ void __launch_bounds__(kSummaryThreads)
    buildKernel(const SparseKernelParams p, const int32_t *pages,
                const int32_t *slots) {
  const int page = pages[blockIdx.x], stored = slots[blockIdx.x];
  const int head = blockIdx.y, block = int(p.block);
  const uint8_t *area =
      p.keys + size_t(page) * p.keyPageStride + head * p.keyAreaStride;
  for (int j = 0; j * block < stored && j < int(p.blocksPerPage); ++j)
    summariseBlock<D>(area, j * block, min(block, stored - j * block),
                      summaryOf(p, page, head, j, D));
}

template <int D>
__global__ void __launch_bounds__(kSummaryThreads)
    updateKernel(const SparseKernelParams p) {
  const int head = blockIdx.x, b = blockIdx.y, block = int(p.block);
  const int selectable = p.lengths[b] - 1;
  if (selectable < 1)
    return;
  const int first = (selectable - 1) / block * block;
  const int page =
      p.pageTables[size_t(b) * p.pageTableStride + first / int(p.pageSize)];
  const int slot = first % int(p.pageSize);
  // An offloaded layer's resident page is read on the device.
  const EntryAreas areas =
      entryAreas(p.keys, p.slotKeys, p.keyPageStride, p.keyAreaStride, head);
  const uint8_t *area =
      areaAt(areas, entryPage(p.slotOf, page, int(p.kvHeads), head));
  summariseBlock<D>(area, slot, selectable - first,
                    summaryOf(p, page, head, slot / block, D));
}

} // namespace

bool launchBuildSummaries(const SparseKernelParams &p, uint32_t headDim,
                          const int32_t *pages, const int32_t *slots,
                          uint32_t count, cudaStream_t stream) {
  if (count == 0)
    return true;
  const dim3 grid(count, p.kvHeads);
  if (headDim == 64)
    buildKernel<64><<<grid, kSummaryThreads, 0, stream>>>(p, pages, slots);
  else if (headDim == 128)
    buildKernel<128><<<grid, kSummaryThreads, 0, stream>>>(p, pages, slots);
  else
    return false;
  return cudaPeekAtLastError() == cudaSuccess;
}

bool launchUpdateSummaries(const SparseKernelParams &p, uint32_t headDim,
                           uint32_t batch, cudaStream_t stream) {
  if (batch == 0)
    return true;
  const dim3 grid(p.kvHeads, batch);
  if (headDim == 64)
    updateKernel<64><<<grid, kSummaryThreads, 0, stream>>>(p);
  else if (headDim == 128)
    updateKernel<128><<<grid, kSummaryThreads, 0, stream>>>(p);
  else
    return false;
  return cudaPeekAtLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
