//===- SplitBf16.cu - The CUDA-core split kernels for bf16 caches ---------===//
#include "runtime/src/backends/cuda/SplitKernel.cuh"

namespace kvrt::cuda {

const void *splitKernelBf16(uint32_t headDim, uint32_t groupCapacity) {
  return splitKernelFor<Bf16Entries>(headDim, groupCapacity);
}

} // namespace kvrt::cuda
