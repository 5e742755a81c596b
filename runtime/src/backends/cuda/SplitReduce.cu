//===- SplitReduce.cu - Merging flash-decoding splits ---------------------===//
//
// One block per query row, one thread per coordinate: with M the largest
// split maximum (log2 units) and w_s = 2^(m_s - M), out = sum_s w_s o_s /
// sum_s w_s l_s. Splits that saw no entry (l_s = 0) are skipped, their
// partial output never read; a row with none gets zeros.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/WarpReduce.cuh"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

/// Block `row`, headDim threads. Warp 0 first turns the splits' (max, sum)
/// into each split's weight exp2(max_s - max) / total in shared memory;
/// then thread d sums its coordinate over the splits, the loads of several
/// splits in flight at once (one split after another, each a dependent
/// load, cost 7 us a call at batch 1).
__global__ void splitReduceKernel(const float *partialOut,
                                  const float *partialMaxSum, float *out,
                                  uint32_t splits, uint32_t headDim) {
  extern __shared__ float weights[]; // [splits]
  const size_t row = blockIdx.x;
  const float2 *maxSum =
      reinterpret_cast<const float2 *>(partialMaxSum) + row * splits;
  if (threadIdx.x < 32) {
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
  __syncthreads();
  for (uint32_t d = threadIdx.x; d < headDim; d += blockDim.x) {
    const float *partial = partialOut + row * splits * headDim + d;
    float acc = 0.0f;
#pragma unroll 8
    for (uint32_t s = 0; s < splits; ++s)
      if (weights[s] != 0.0f)
        acc = fmaf(weights[s], partial[size_t(s) * headDim], acc);
    out[row * headDim + d] = acc;
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

} // namespace kvrt::cuda
