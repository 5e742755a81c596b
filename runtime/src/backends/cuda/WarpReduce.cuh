//===- WarpReduce.cuh - Reductions across a warp ------------*- CUDA -*-===//
//
// The maximum and sum of a value over the 32 lanes of a warp, and the
// softmax step the split kernels and the split reduction build on them.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_WARPREDUCE_CUH
#define KVRT_BACKENDS_CUDA_WARPREDUCE_CUH

#include <cuda_runtime.h>

namespace kvrt::cuda {

__device__ __forceinline__ float warpMax(float x) {
#pragma unroll
  for (int offset = 16; offset; offset /= 2)
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

__device__ __forceinline__ float warpSum(float x) {
#pragma unroll
  for (int offset = 16; offset; offset /= 2)
    x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

/// 2^x for x <= 0 by the hardware's approximation (2 ulp), flushing results
/// below 2^-126 to zero: a weight that small beside the row's largest, 1,
/// changes no fp32 sum. exp2f() adds a range fix-up of four instructions.
__device__ __forceinline__ float exp2NotPositive(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// The warp's softmax step over row[0, count): replaces each entry by
/// 2^(entry - max) where max also covers `atLeast` (a running maximum), and
/// returns that maximum and the sum of the new entries in every lane.
struct WarpExp2 {
  float max, sum;
};
__device__ __forceinline__ WarpExp2 warpExp2(float *row, int count,
                                             float atLeast = -INFINITY) {
  const int lane = threadIdx.x % 32;
  float m = atLeast;
  for (int i = lane; i < count; i += 32)
    m = fmaxf(m, row[i]);
  m = warpMax(m);
  float sum = 0.0f;
  for (int i = lane; i < count; i += 32) {
    const float w = m == -INFINITY ? 0.0f : exp2NotPositive(row[i] - m);
    row[i] = w;
    sum += w;
  }
  return {m, warpSum(sum)};
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_WARPREDUCE_CUH
