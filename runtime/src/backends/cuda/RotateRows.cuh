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

/// Each of the `rows` rows of `dim` floats at x in shared memory := R x,
/// or R^T x when `inverse`, D's signs in `signs` (bit i: D[i][i] = -1).
/// Threads tid < threads share the butterflies (each owns both ends of
/// its pairs, so a stage needs one barrier); `sync` is the barrier of
/// every thread that calls, those past `threads` too (it runs before the
/// function returns).
template <class Sync>
__device__ inline void rotateRowsInShared(float *x, uint32_t rows, uint32_t dim,
                                          const uint32_t (&signs)[4],
                                          bool inverse, uint32_t tid,
                                          uint32_t threads, Sync sync) {
  // Selected, not indexed: signs in kernel parameters stay there.
  auto sign = [&](uint32_t i) {
    const uint32_t word = i < 64 ? (i < 32 ? signs[0] : signs[1])
                                 : (i < 96 ? signs[2] : signs[3]);
    return (word >> (i % 32)) & 1 ? -1.0f : 1.0f;
  };
  const uint32_t count = rows * dim, pairs = rows * (dim / 2);
  if (!inverse)
    for (uint32_t e = tid; e < count && tid < threads; e += threads)
      x[e] *= sign(e % dim);
  for (uint32_t half = 1; half < dim; half *= 2) {
    sync();
    for (uint32_t e = tid; e < pairs && tid < threads; e += threads) {
      const uint32_t k = e % (dim / 2);
      float *pair = x + e / (dim / 2) * dim + k / half * 2 * half + k % half;
      const float a = pair[0], b = pair[half];
      pair[0] = a + b;
      pair[half] = a - b;
    }
  }
  sync();
  for (uint32_t e = tid; e < count && tid < threads; e += threads) {
    const float y = x[e] * (1.0f / sqrtf(float(dim)));
    x[e] = inverse ? y * sign(e % dim) : y;
  }
  sync();
}

/// rotateRowsInShared() of one row by the whole block: every thread of the
/// block calls it.
__device__ inline void rotateInShared(float *x, uint32_t dim,
                                      const uint32_t (&signs)[4],
                                      bool inverse) {
  rotateRowsInShared(x, 1, dim, signs, inverse, threadIdx.x, blockDim.x,
                     [] { __syncthreads(); });
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_ROTATEROWS_CUH
