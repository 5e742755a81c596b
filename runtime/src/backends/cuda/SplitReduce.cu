//===- SplitReduce.cu - Merging flash-decoding splits ---------------------===//
//
// One block per query row: with M the largest split maximum (log2 units)
// and w_s = 2^(m_s - M), out = sum_s w_s o_s / sum_s w_s l_s. Splits that
// saw no entry (l_s = 0) are skipped, their partial output never read; a
// row with none gets zeros.
//
// Latent values (DecodeAttention.h): the code splits' partials are sums of
// latents z and the exact splits' of values v. The merge sums each kind
// apart, then maps the latents back once for the row: out = sum_exact w_s
// o_s / T + mu * (sum_code w_s l_s / T) + B (sum_code w_s o_s / T), T the
// total; the same products as the CPU codec's finishOutput(), summed in
// another order.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/WarpReduce.cuh"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

/// Warp 0 of the block turns the row's splits' (max, sum) into each
/// split's weight exp2(max_s - max) / total in `weights`; the caller syncs.
__device__ void splitWeights(const float2 *maxSum, uint32_t splits,
                             float *weights) {
  if (threadIdx.x >= 32)
    return;
  const int lane = threadIdx.x;
  float m = -INFINITY;
  for (uint32_t s = lane; s < splits; s += 32) {
    const float2 ms = maxSum[s];
    if (ms.y > 0.0f)
      m = fmaxf(m, ms.x);
  }
  m = warpMax(m);
  float total = 0.0f;
  for (uint32_t s = lane; s < splits; s += 32) {
    const float2 ms = maxSum[s];
    const float w = ms.y > 0.0f ? exp2f(ms.x - m) : 0.0f;
    weights[s] = w;
    total = fmaf(w, ms.y, total);
  }
  total = warpSum(total);
  const float inverse = total > 0.0f ? 1.0f / total : 0.0f;
  __syncwarp();
  for (uint32_t s = lane; s < splits; s += 32)
    weights[s] *= inverse;
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

/// Block `row`, headDim threads: thread d sums its coordinate over the
/// splits.
__global__ void splitReduceKernel(const float *partialOut,
                                  const float *partialMaxSum, float *out,
                                  uint32_t splits, uint32_t headDim) {
  extern __shared__ float weights[]; // [splits]
  const size_t row = blockIdx.x;
  splitWeights(reinterpret_cast<const float2 *>(partialMaxSum) + row * splits,
               splits, weights);
  __syncthreads();
  for (uint32_t d = threadIdx.x; d < headDim; d += blockDim.x)
    out[row * headDim + d] = weightedSum(
        weights, partialOut + row * splits * headDim + d, 0, splits, headDim);
}

struct LatentMerge {
  uint32_t splits, codedSplits, headDim, rank, qHeads, group;
  const float *basis;
};

/// Block `row`, headDim threads: the latent's sums (and the latents'
/// weight after them) into shared memory, then warp w maps coordinates w,
/// w + warps, ... back, its lanes over the basis row (coalesced).
__global__ void latentMergeKernel(const float *partialOut,
                                  const float *partialMaxSum, float *out,
                                  LatentMerge m) {
  extern __shared__ float shared[]; // weights [splits], latent [rank + 1]
  float *weights = shared, *latent = shared + m.splits;
  const size_t row = blockIdx.x;
  const float2 *maxSum =
      reinterpret_cast<const float2 *>(partialMaxSum) + row * m.splits;
  splitWeights(maxSum, m.splits, weights);
  __syncthreads();
  const float *partial = partialOut + row * m.splits * m.headDim;
  for (uint32_t j = threadIdx.x; j <= m.rank; j += blockDim.x)
    latent[j] =
        j < m.rank
            ? weightedSum(weights, partial + j, 0, m.codedSplits, m.headDim)
            : weightedSum(weights, &maxSum[0].y, 0, m.codedSplits, 2);
  __syncthreads();
  const uint32_t kvHead = uint32_t(row % m.qHeads) / m.group;
  const uint32_t warps = blockDim.x / 32, lane = threadIdx.x % 32;
  for (uint32_t d = threadIdx.x / 32; d < m.headDim; d += warps) {
    const float *axes =
        m.basis + (size_t(kvHead) * m.headDim + d) * (m.rank + 1);
    float sum = 0.0f;
    for (uint32_t j = lane; j <= m.rank; j += 32)
      sum = fmaf(axes[j], latent[j], sum);
    sum = warpSum(sum);
    if (lane == 0)
      out[row * m.headDim + d] =
          sum +
          weightedSum(weights, partial + d, m.codedSplits, m.splits, m.headDim);
  }
}

} // namespace

bool launchSplitReduce(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t headDim, cudaStream_t stream) {
  const size_t sharedBytes = size_t(splits) * sizeof(float);
  if (sharedBytes > 48 * 1024)
    return false;
  splitReduceKernel<<<rows, headDim, sharedBytes, stream>>>(
      partialOut, partialMaxSum, out, splits, headDim);
  return cudaGetLastError() == cudaSuccess;
}

bool launchLatentMerge(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t codedSplits, uint32_t headDim, uint32_t rank,
                       const float *basis, uint32_t qHeads, uint32_t group,
                       cudaStream_t stream) {
  const size_t sharedBytes = size_t(splits + rank + 1) * sizeof(float);
  if (sharedBytes > 48 * 1024 || headDim % 32 || rank >= headDim || !group ||
      codedSplits > splits || !basis)
    return false;
  const LatentMerge m{splits, codedSplits, headDim, rank, qHeads, group, basis};
  latentMergeKernel<<<rows, headDim, sharedBytes, stream>>>(
      partialOut, partialMaxSum, out, m);
  return cudaGetLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
