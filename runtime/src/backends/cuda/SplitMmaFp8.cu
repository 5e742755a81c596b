//===- SplitMmaFp8.cu - The tensor-core split kernels for fp8 e4m3 caches -===//
//
// Per-vector (dynamic) and per_head scales share these kernels.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitMmaKernel.cuh"

namespace kvrt::cuda {

const void *splitMmaKernelFp8E4M3(uint32_t headDim) {
  return splitMmaKernelFor<Fp8E4M3Mma>(headDim);
}

} // namespace kvrt::cuda
