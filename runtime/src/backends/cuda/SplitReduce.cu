//===- SplitReduce.cu - Merging flash-decoding splits ---------------------===//
//
// One block per query row, one thread per coordinate: with M the largest
// split maximum (log2 units) and w_s = 2^(m_s - M), out = sum_s w_s o_s /
// sum_s w_s l_s. Splits that saw no entry (l_s = 0) are skipped, their
// partial output never read; a row with none gets zeros.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

__global__ void splitReduceKernel(const float *partialOut,
                                  const float *partialMaxSum, float *out,
                                  uint32_t splits, uint32_t headDim) {
  const size_t row = blockIdx.x;
  const float2 *maxSum =
      reinterpret_cast<const float2 *>(partialMaxSum) + row * splits;
  float m = -INFINITY;
  for (uint32_t s = 0; s < splits; ++s) {
    float2 ms = maxSum[s];
    if (ms.y > 0.0f)
      m = fmaxf(m, ms.x);
  }
  for (uint32_t d = threadIdx.x; d < headDim; d += blockDim.x) {
    float sum = 0.0f, acc = 0.0f;
    for (uint32_t s = 0; s < splits; ++s) {
      float2 ms = maxSum[s];
      if (ms.y > 0.0f) {
        float w = exp2f(ms.x - m);
        sum = fmaf(w, ms.y, sum);
        acc = fmaf(w, partialOut[(row * splits + s) * headDim + d], acc);
      }
    }
    out[row * headDim + d] = sum > 0.0f ? acc / sum : 0.0f;
  }
}

} // namespace

bool launchSplitReduce(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t headDim, cudaStream_t stream) {
  splitReduceKernel<<<rows, headDim, 0, stream>>>(partialOut, partialMaxSum,
                                                  out, splits, headDim);
  return cudaGetLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
