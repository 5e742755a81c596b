//===- SplitGroupMmaFp8.cu - GroupMma split kernels for fp8 e4m3 caches --===//
//
// Per-vector (dynamic) and per_head scales share these kernels.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitGroupMmaKernel.cuh"

namespace kvrt::cuda {

const void *splitGroupMmaKernelFp8E4M3(uint32_t headDim, bool folded) {
  return splitGroupMmaKernelFor<Fp8E4M3Group>(headDim, folded);
}

} // namespace kvrt::cuda
