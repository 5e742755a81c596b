//===- SplitMmaBf16.cu - The tensor-core split kernels for bf16 caches ----===//
#include "runtime/src/backends/cuda/SplitMmaKernel.cuh"

namespace kvrt::cuda {

const void *splitMmaKernelBf16(uint32_t headDim) {
  return splitMmaKernelFor<Bf16Mma>(headDim);
}

} // namespace kvrt::cuda
