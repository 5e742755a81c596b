//===- BlockSummaries.cu - Per-block key bounds of the pages --------------===//
//
// One thread block per (page, KV head) or (row, KV head). A block's
// entries are read as the sparse kernels read them (GatherEntries.cuh):
// thread t takes part t % 8 of every 16th entry, decodes its D / 8
// channels, keeps their minimum and maximum, and the threads' partial
// bounds meet in shared memory. The bounds are stored rounded outward to
// bf16, as the CPU stores them (sparse/BlockSummary.h): of bf16 keys they
// are exact.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DependentLaunch.cuh"
#include "runtime/src/backends/cuda/GatherEntries.cuh"
#include "runtime/src/backends/cuda/SparseKernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

namespace kvrt::cuda {
namespace {

/// Writes the lower then upper bounds of entries [first, first + count)
/// (count >= 1) of the key area whose codes start at `codes` to `out`; all
/// threads take part.
template <typename Rows, int D>
__device__ void summariseBlock(const uint8_t *codes, const EntryForm &form,
                               const float *levels, int first, int count,
                               uint16_t *out) {
  constexpr int kDims = D / 8, kRows = kSummaryThreads / 8, kUnroll = 4;
  __shared__ float partial[2][kRows][D];
  const int tid = threadIdx.x, part = tid % 8, row = tid / 8;
  float lo[kDims], hi[kDims];
#pragma unroll
  for (int i = 0; i < kDims; ++i) {
    lo[i] = INFINITY;
    hi[i] = -INFINITY;
  }
  for (int e = row; e < count; e += kUnroll * kRows) {
    // Four entries' loads in flight; past the end, the last entry again
    // (it changes no bound).
    typename Rows::Raw raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      Rows::load(codes, first + min(e + u * kRows, count - 1), form, part,
                 raw[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float x[kDims];
      Rows::decode(raw[u], levels, x);
#pragma unroll
      for (int i = 0; i < kDims; ++i) {
        lo[i] = fminf(lo[i], x[i]);
        hi[i] = fmaxf(hi[i], x[i]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kDims; ++i) {
    partial[0][row][Rows::dim(part, i)] = lo[i];
    partial[1][row][Rows::dim(part, i)] = hi[i];
  }
  __syncthreads();
  for (int c = tid; c < 2 * D; c += kSummaryThreads) {
    const int side = c / D, channel = c % D;
    float bound = partial[side][0][channel];
    for (int r = 1; r < kRows; ++r)
      bound = side ? fmaxf(bound, partial[side][r][channel])
                   : fminf(bound, partial[side][r][channel]);
    out[c] = __bfloat16_as_ushort(side ? __float2bfloat16_ru(bound)
                                       : __float2bfloat16_rd(bound));
  }
  __syncthreads();
}

__device__ uint16_t *summaryOf(const SparseKernelParams &p, int page, int head,
                               int blockInPage, int D) {
  return p.summaries +
         ((size_t(page) * p.kvHeads + head) * p.blocksPerPage + blockInPage) *
             2 * D;
}

template <typename Rows, int D>
__global__ void __launch_bounds__(kSummaryThreads)
    buildKernel(const SparseKernelParams p, const int32_t *pages,
                const int32_t *slots) {
  __shared__ float levels[2][16];
  loadLevels<Rows>(p, levels);
  const int page = pages[blockIdx.x], stored = slots[blockIdx.x];
  const int head = blockIdx.y, block = int(p.block);
  const uint8_t *area =
      p.keys + size_t(page) * p.keyPageStride + head * p.keyAreaStride;
  for (int j = 0; j * block < stored && j < int(p.blocksPerPage); ++j)
    summariseBlock<Rows, D>(area, p.keyForm, levels[0], j * block,
                            min(block, stored - j * block),
                            summaryOf(p, page, head, j, D));
}

template <typename Rows, int D>
__global__ void __launch_bounds__(kSummaryThreads)
    updateKernel(const SparseKernelParams p) {
  awaitPreviousKernel();
  __shared__ float levels[2][16];
  loadLevels<Rows>(p, levels);
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
  summariseBlock<Rows, D>(area, p.keyForm, levels[0], slot, selectable - first,
                          summaryOf(p, page, head, slot / block, D));
}

/// fn(Rows, D) for the cache's entries and head dimension 64 or 128;
/// false for another.
template <typename Fn>
bool withRows(SparseEntries entries, uint32_t headDim, const Fn &fn) {
  auto forDim = [&](auto d) {
    return withForm<decltype(d)::value>(entries,
                                        [&](auto rows) { return fn(rows, d); });
  };
  return headDim == 64    ? forDim(std::integral_constant<int, 64>{})
         : headDim == 128 ? forDim(std::integral_constant<int, 128>{})
                          : false;
}

} // namespace

bool launchBuildSummaries(const SparseKernelParams &p, uint32_t headDim,
                          const int32_t *pages, const int32_t *slots,
                          uint32_t count, cudaStream_t stream) {
  if (count == 0)
    return true;
  return withRows(p.entries, headDim, [&](auto rows, auto d) {
    buildKernel<decltype(rows), decltype(d)::value>
        <<<dim3(count, p.kvHeads), kSummaryThreads, 0, stream>>>(p, pages,
                                                                 slots);
    return cudaPeekAtLastError() == cudaSuccess;
  });
}

bool launchUpdateSummaries(const SparseKernelParams &p, uint32_t headDim,
                           uint32_t batch, cudaStream_t stream) {
  if (batch == 0)
    return true;
  return withRows(p.entries, headDim, [&](auto rows, auto d) {
    return launchDependent(&updateKernel<decltype(rows), decltype(d)::value>,
                           dim3(p.kvHeads, batch), dim3(kSummaryThreads), 0,
                           stream, p) == cudaSuccess;
  });
}

} // namespace kvrt::cuda
