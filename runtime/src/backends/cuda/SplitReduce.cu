//===- SplitReduce.cu - Merging flash-decoding splits ---------------------===//
//
// One block per query row: with M the largest split maximum (log2 units)
// and w_s = 2^(m_s - M), out = sum_s w_s o_s / sum_s w_s l_s. Splits that
// saw no entry (l_s = 0) are skipped, their partial output never read; a
// row with none gets zeros. Polar's rows go back from the rotated domain
// in the same block.
//
// Latent values (DecodeAttention.h): the code splits' partials are sums of
// latents z and the exact splits' of values v. The merge sums each kind
// apart, then maps the latents back once for the row: out = sum_exact w_s
// o_s / T + mu * (sum_code w_s l_s / T) + B (sum_code w_s o_s / T), T the
// total; the same products as the CPU codec's finishOutput(), summed in
// another order. The head's basis comes into shared memory by one bulk
// copy at the block's start, so that the map-back waits on no load.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/AsyncCopy.cuh"
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/DependentLaunch.cuh"
#include "runtime/src/backends/cuda/RotateRows.cuh"
#include "runtime/src/backends/cuda/WarpReduce.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace kvrt::cuda {
namespace {

/// Every thread of the block (whole warps): each split's weight exp2(max_s -
/// max) in `weights` (0 for a split that saw no entry), and 1 / sum_s w_s l_s
/// (0 where no split saw one) returned; `scratch` holds a float a warp. One
/// split a thread at a time and two block-wide reductions, so that no
/// warp waits on one warp's loop over the splits (warp 0 alone took the
/// merge's barriers to 14.5 of its stall cycles an issue at 128 splits:
/// ncu, H100, 2026-12-06). Ends with a barrier.
__device__ float splitWeights(const float2 *maxSum, uint32_t splits,
                              float *weights, float *scratch) {
  const uint32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const uint32_t warps = blockDim.x / 32;
  float m = -INFINITY;
  for (uint32_t s = threadIdx.x; s < splits; s += blockDim.x) {
    const float2 ms = maxSum[s];
    if (ms.y > 0.0f)
      m = fmaxf(m, ms.x);
  }
  m = warpMax(m);
  if (lane == 0)
    scratch[warp] = m;
  __syncthreads();
  float most = -INFINITY;
  for (uint32_t w = 0; w < warps; ++w)
    most = fmaxf(most, scratch[w]);
  float total = 0.0f;
  for (uint32_t s = threadIdx.x; s < splits; s += blockDim.x) {
    const float2 ms = maxSum[s];
    const float w = ms.y > 0.0f ? exp2f(ms.x - most) : 0.0f;
    weights[s] = w;
    total = fmaf(w, ms.y, total);
  }
  total = warpSum(total);
  // Every thread has read the maxima before they are overwritten.
  __syncthreads();
  if (lane == 0)
    scratch[warp] = total;
  __syncthreads();
  total = 0.0f;
  for (uint32_t w = 0; w < warps; ++w)
    total += scratch[w];
  return total > 0.0f ? 1.0f / total : 0.0f;
}

/// sum_s weights[s] partial[s * stride] over splits [first, end), the
/// loads of several splits in flight at once (one split after another,
/// each a dependent load, cost 7 us a call at batch 1).
__device__ float weightedSum(const float *weights, const float *partial,
                             uint32_t first, uint32_t end, uint32_t stride) {
  float acc = 0.0f;
#pragma unroll 8
  for (uint32_t s = first; s < end; ++s)
    if (weights[s] != 0.0f)
      acc = fmaf(weights[s], partial[size_t(s) * stride], acc);
  return acc;
}

/// Block `row`, headDim x slices threads: thread (k, d) sums coordinate d
/// over the k-th of `slices` runs of the splits, so that a long row's
/// loads are in flight in several threads at once (one thread per
/// coordinate left 16 rounds of 8 dependent loads at 128 splits); thread d
/// then adds the runs' sums and, where `rotates`, the first headDim
/// threads turn the row back from polar's rotated domain (one launch
/// fewer) at a barrier of their own, the others gone.
__global__ void splitReduceKernel(const float *partialOut,
                                  const float *partialMaxSum, float *out,
                                  uint32_t splits, uint32_t headDim,
                                  bool rotates, RotationSigns signs) {
  awaitPreviousKernel();
  // scratch [32], weights [splits], sums [slices][D]
  extern __shared__ float shared[];
  float *scratch = shared, *weights = shared + 32, *sums = shared + 32 + splits;
  const size_t row = blockIdx.x;
  const uint32_t slices = blockDim.x / headDim;
  const uint32_t slice = threadIdx.x / headDim, d = threadIdx.x % headDim;
  const float inverse = splitWeights(
      reinterpret_cast<const float2 *>(partialMaxSum) + row * splits, splits,
      weights, scratch);
  const uint32_t run = (splits + slices - 1) / slices;
  const uint32_t first = min(slice * run, splits);
  sums[threadIdx.x] =
      weightedSum(weights, partialOut + row * splits * headDim + d, first,
                  min(first + run, splits), headDim);
  __syncthreads();
  if (threadIdx.x >= headDim)
    return;
  // Thread d alone reads and writes column d.
  float total = sums[d];
  for (uint32_t k = 1; k < slices; ++k)
    total += sums[k * headDim + d];
  sums[d] = total * inverse;
  if (rotates)
    rotateRowsInShared(sums, 1, headDim, signs.bits, true, d, headDim, [=] {
      asm volatile("bar.sync 1, %0;" ::"r"(headDim) : "memory");
    });
  out[row * headDim + d] = sums[d];
}

struct LatentMerge {
  uint32_t splits, codedSplits, headDim, rank, qHeads, group;
  const float *basis;
};

/// Block `row`, headDim threads. Thread 0 first starts one bulk copy of the
/// row's KV head's basis into shared memory (its headDim rows of rank + 1
/// floats are contiguous), which lands while warp 0 computes the splits'
/// weights and thread j the latents' sum j (j = rank: their weight) and
/// thread d its exact tokens' sum; then thread d maps its coordinate back
/// from shared memory. The block's global loads are the bulk copy and the
/// weighted sums, as splitReduceKernel's; before, a warp per coordinate
/// read its basis row and then the exact splits' partials, 32 coordinates
/// one after another per warp, each waiting on its loads (by estimate
/// most of lowrank64's 45.9 us at batch 1, L = 8K, against bf16's 26.2).
__global__ void latentMergeKernel(const float *partialOut,
                                  const float *partialMaxSum, float *out,
                                  LatentMerge m) {
  // barrier (16 bytes), axes [headDim][rank + 1], weights [splits],
  // latent [rank + 1], scratch [32].
  extern __shared__ __align__(16) float shared[];
  const uint32_t columns = m.rank + 1, d = threadIdx.x;
  uint64_t *barrier = reinterpret_cast<uint64_t *>(shared);
  float *axes = shared + 4, *weights = axes + m.headDim * columns,
        *latent = weights + m.splits, *scratch = latent + columns;
  const size_t row = blockIdx.x;
  const uint32_t kvHead = uint32_t(row % m.qHeads) / m.group;
  if (d == 0) {
    const uint32_t bytes = m.headDim * columns * 4;
    initBarrier(barrier, 1);
    fenceBarrierInit();
    arriveExpecting(barrier, bytes);
    copyBulk(axes, m.basis + size_t(kvHead) * m.headDim * columns, bytes,
             barrier);
  }
  const float2 *maxSum =
      reinterpret_cast<const float2 *>(partialMaxSum) + row * m.splits;
  const float inverse = splitWeights(maxSum, m.splits, weights, scratch);
  const float *partial = partialOut + row * m.splits * m.headDim;
  if (d < columns)
    latent[d] =
        d < m.rank
            ? weightedSum(weights, partial + d, 0, m.codedSplits, m.headDim)
            : weightedSum(weights, &maxSum[0].y, 0, m.codedSplits, 2);
  float sum =
      weightedSum(weights, partial + d, m.codedSplits, m.splits, m.headDim);
  __syncthreads();
  waitBarrier(barrier, 0);
  // Row d of the axes: with an even row length, from column d on
  // (cyclically), so that the warp's 32 rows fall in 32 banks.
  const float *axesRow = axes + d * columns;
  uint32_t j = columns % 2 ? 0 : d % columns;
#pragma unroll 8
  for (uint32_t n = 0; n < columns; ++n) {
    sum = fmaf(axesRow[j], latent[j], sum);
    j = j + 1 == columns ? 0 : j + 1;
  }
  out[row * m.headDim + d] = sum * inverse;
}

} // namespace

bool launchSplitReduce(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t headDim, const uint32_t *inverseSigns,
                       cudaStream_t stream) {
  // The weights' reductions and the rotation's named barrier of the first
  // headDim threads count whole warps.
  if (!headDim || headDim > 1024 || headDim % 32 ||
      (inverseSigns && (headDim > 128 || (headDim & (headDim - 1)))))
    return false;
  // Runs of about 16 splits each, as many as 1024 threads allow.
  const uint32_t slices = std::clamp<uint32_t>(splits / 16, 1, 1024 / headDim);
  const size_t sharedBytes =
      (32 + size_t(splits) + size_t(slices) * headDim) * sizeof(float);
  if (sharedBytes > 48 * 1024)
    return false;
  RotationSigns signs{};
  if (inverseSigns)
    std::copy(inverseSigns, inverseSigns + 4, signs.bits);
  return launchDependent(&splitReduceKernel, dim3(rows), dim3(headDim * slices),
                         sharedBytes, stream, partialOut, partialMaxSum, out,
                         splits, headDim, inverseSigns != nullptr,
                         signs) == cudaSuccess;
}

bool launchLatentMerge(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t codedSplits, uint32_t headDim, uint32_t rank,
                       const float *basis, uint32_t qHeads, uint32_t group,
                       cudaStream_t stream) {
  // One bulk copy of a head's basis: 16-byte aligned, as headDim % 4 keeps
  // every head's.
  const size_t sharedBytes =
      16 +
      (size_t(headDim) * (rank + 1) + splits + rank + 1 + 32) * sizeof(float);
  if (sharedBytes > 200 * 1024 || headDim % 32 || headDim > 1024 ||
      rank >= headDim || !group || codedSplits > splits || !basis ||
      reinterpret_cast<uintptr_t>(basis) % 16)
    return false;
  if (sharedBytes > 48 * 1024 &&
      cudaFuncSetAttribute(latentMergeKernel,
                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(sharedBytes)) != cudaSuccess)
    return false;
  const LatentMerge m{splits, codedSplits, headDim, rank, qHeads, group, basis};
  latentMergeKernel<<<rows, headDim, sharedBytes, stream>>>(
      partialOut, partialMaxSum, out, m);
  return cudaPeekAtLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
