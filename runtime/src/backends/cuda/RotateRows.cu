//===- RotateRows.cu - Polar's randomized Hadamard rotation ---------------===//
//
// One block per row, one thread per coordinate: R x = H D x / sqrt(d) by
// the fast Walsh-Hadamard transform in shared memory, each butterfly the
// a + b, a - b of codecs/Hadamard.cpp, then the same multiply by
// 1 / sqrt(d): the result is the CPU codec's, bit for bit.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

struct Signs {
  uint32_t bits[4];
};

__global__ void rotateRowsKernel(const float *in, float *out, Signs signs,
                                 bool inverse) {
  __shared__ float x[128];
  const uint32_t dim = blockDim.x, i = threadIdx.x;
  const size_t at = size_t(blockIdx.x) * dim + i;
  const float sign = (signs.bits[i / 32] >> (i % 32)) & 1 ? -1.0f : 1.0f;
  x[i] = inverse ? in[at] : in[at] * sign;
  for (uint32_t half = 1; half < dim; half *= 2) {
    __syncthreads();
    const float a = x[i & ~half], b = x[i | half];
    __syncthreads();
    x[i] = i & half ? a - b : a + b;
  }
  const float y = x[i] * (1.0f / sqrtf(float(dim)));
  out[at] = inverse ? y * sign : y;
}

} // namespace

bool launchRotateRows(const float *in, float *out, uint32_t rows,
                      uint32_t headDim, const uint32_t (&signs)[4],
                      bool inverse, cudaStream_t stream) {
  if (headDim > 128 || (headDim & (headDim - 1)))
    return false;
  Signs s{{signs[0], signs[1], signs[2], signs[3]}};
  rotateRowsKernel<<<rows, headDim, 0, stream>>>(in, out, s, inverse);
  return cudaGetLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
