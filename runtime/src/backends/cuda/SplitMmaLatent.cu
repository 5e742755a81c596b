//===- SplitMmaLatent.cu - The tensor-core split kernels for latents ------===//
//
// bf16 keys with low-rank values stored as bf16 latents: the value pass
// sums the latents over the rank rounded up to 64 or 128 coordinates
// (below the head dimension), which the merge maps back (SplitReduce.cu);
// even ranks read their coordinates in 4-byte pairs, odd ones one by one.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitMmaKernel.cuh"

namespace kvrt::cuda {

namespace {

template <template <int> class Fragments>
const void *latentKernel(uint32_t headDim, uint32_t rank) {
  if (headDim == 64 && rank < 64)
    return reinterpret_cast<const void *>(&splitMmaKernel<Fragments, 64, 64>);
  if (headDim == 128 && rank <= 64)
    return reinterpret_cast<const void *>(&splitMmaKernel<Fragments, 128, 64>);
  if (headDim == 128 && rank < 128)
    return reinterpret_cast<const void *>(&splitMmaKernel<Fragments, 128, 128>);
  return nullptr;
}

} // namespace

const void *splitMmaKernelLatent(uint32_t headDim, uint32_t rank, bool pairs) {
  if (pairs)
    return rank % 2 ? nullptr : latentKernel<Bf16LatentPairMma>(headDim, rank);
  return latentKernel<Bf16LatentMma>(headDim, rank);
}

} // namespace kvrt::cuda
