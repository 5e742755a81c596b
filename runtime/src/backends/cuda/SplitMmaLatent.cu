//===- SplitMmaLatent.cu - The tensor-core split kernels for latents ------===//
//
// bf16 keys with low-rank values stored as bf16 latents: the value pass
// sums the latents over the rank rounded up to 64 or 128 coordinates
// (below the head dimension), which the merge maps back (SplitReduce.cu).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitMmaKernel.cuh"

namespace kvrt::cuda {

const void *splitMmaKernelLatent(uint32_t headDim, uint32_t rank) {
  if (headDim == 64 && rank < 64)
    return reinterpret_cast<const void *>(
        &splitMmaKernel<Bf16LatentMma, 64, 64>);
  if (headDim == 128 && rank <= 64)
    return reinterpret_cast<const void *>(
        &splitMmaKernel<Bf16LatentMma, 128, 64>);
  if (headDim == 128 && rank < 128)
    return reinterpret_cast<const void *>(
        &splitMmaKernel<Bf16LatentMma, 128, 128>);
  return nullptr;
}

} // namespace kvrt::cuda
