//===- SplitFp8.cu - The CUDA-core split kernels for fp8 e4m3 caches ------===//
//
// Per-vector (dynamic) and per_head scales share these kernels: only where
// the scale is read differs (SideGeometry::slotScales).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitKernel.cuh"

namespace kvrt::cuda {

const void *splitKernelFp8E4M3(uint32_t headDim, uint32_t groupCapacity) {
  return splitKernelFor<Fp8E4M3Entries>(headDim, groupCapacity);
}

} // namespace kvrt::cuda
