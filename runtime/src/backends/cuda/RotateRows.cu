//===- RotateRows.cu - Polar's randomized Hadamard rotation ---------------===//
//
// One block per row, one thread per coordinate (RotateRows.cuh).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/DependentLaunch.cuh"
#include "runtime/src/backends/cuda/RotateRows.cuh"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

__global__ void rotateRowsKernel(const float *in, float *out,
                                 RotationSigns signs, bool inverse) {
  awaitPreviousKernel();
  __shared__ float x[128];
  const uint32_t dim = blockDim.x, i = threadIdx.x;
  const size_t at = size_t(blockIdx.x) * dim + i;
  x[i] = in[at];
  rotateInShared(x, dim, signs.bits, inverse);
  out[at] = x[i];
}

} // namespace

bool launchRotateRows(const float *in, float *out, uint32_t rows,
                      uint32_t headDim, const uint32_t (&signs)[4],
                      bool inverse, cudaStream_t stream) {
  if (headDim > 128 || (headDim & (headDim - 1)))
    return false;
  RotationSigns s{{signs[0], signs[1], signs[2], signs[3]}};
  return launchDependent(&rotateRowsKernel, dim3(rows), dim3(headDim), 0,
                         stream, in, out, s, inverse) == cudaSuccess;
}

} // namespace kvrt::cuda
