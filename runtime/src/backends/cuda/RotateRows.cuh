//===- RotateRows.cuh - Polar's rotation of a row in shared memory -*- CUDA
//-*-===//
//
// R x = H D x / sqrt(d) by the fast Walsh-Hadamard transform, each
// butterfly the a + b, a - b of codecs/Hadamard.cpp, then the same
// multiply by 1 / sqrt(d): the CPU codec's result, bit for bit.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_ROTATEROWS_CUH
#define KVRT_BACKENDS_CUDA_ROTATEROWS_CUH

#include <cuda_runtime.h>

#include <cstdint>

namespace kvrt::cuda {

/// D's signs (bit i: D[i][i] = -1), by value as a kernel parameter.
struct RotationSigns {
  uint32_t bits[4];
};

/// x := R x, or R^T x when `inverse`, for the `dim` floats at x in shared
/// memory, D's signs in `signs` (bit i: D[i][i] = -1). Thread i < dim owns
/// coordinate i; every thread of the block calls it (it synchronises the
/// block, also before it returns).
__device__ inline void rotateInShared(float *x, uint32_t dim,
                                      const uint32_t *signs, bool inverse) {
  const uint32_t i = threadIdx.x;
  const bool mine = i < dim;
  const float sign = mine && (signs[i / 32] >> (i % 32)) & 1 ? -1.0f : 1.0f;
  if (mine && !inverse)
    x[i] *= sign;
  for (uint32_t half = 1; half < dim; half *= 2) {
    __syncthreads();
    float a = 0.0f, b = 0.0f;
    if (mine) {
      a = x[i & ~half];
      b = x[i | half];
    }
    __syncthreads();
    if (mine)
      x[i] = i & half ? a - b : a + b;
  }
  if (mine) {
    const float y = x[i] * (1.0f / sqrtf(float(dim)));
    x[i] = inverse ? y * sign : y;
  }
  __syncthreads();
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_ROTATEROWS_CUH
