//===- BlockSummaries.cu - Per-block key bounds of the pages --------------===//
//
// One thread block per (page, KV head) that a prefill (or the pages a
// check builds) wrote: the bounds of each of the page's blocks below its
// stored slots (SummariseBlock.cuh). A decode step's newest token joins its
// block's bounds in the sparse attention's launch (SparseAttention.cu).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SummariseBlock.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

namespace kvrt::cuda {
namespace {

template <typename Rows, int D>
__global__ void __launch_bounds__(kSummaryThreads)
    buildKernel(const SparseKernelParams p, const int32_t *pages,
                const int32_t *slots) {
  __shared__ float levels[2][16];
  __shared__ SummaryScratch<D> scratch;
  loadLevels<Rows>(p, levels);
  const int page = pages[blockIdx.x], stored = slots[blockIdx.x];
  const int head = blockIdx.y, block = int(p.block);
  const uint8_t *area =
      p.keys + size_t(page) * p.keyPageStride + head * p.keyAreaStride;
  for (int j = 0; j * block < stored && j < int(p.blocksPerPage); ++j)
    summariseBlock<Rows, D>(area, p.keyForm, levels[0], j * block,
                            min(block, stored - j * block),
                            summaryOf(p, page, head, j, D), scratch);
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

} // namespace kvrt::cuda
