//===- SplitGroupMmaPolar.cu - GroupMma split kernels for polar caches ----===//
//
// One instance per code width (2, 3 or 4 bits) and head dimension.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitGroupMmaKernel.cuh"

namespace kvrt::cuda {
namespace {

template <int Bits> struct PolarBits {
  template <int D> using Fragments = PolarGroup<D, Bits>;
};

} // namespace

const void *splitGroupMmaKernelPolar(uint32_t headDim, uint32_t bits,
                                     bool folded) {
  if (bits == 2)
    return splitGroupMmaKernelFor<PolarBits<2>::Fragments>(headDim, folded);
  if (bits == 3)
    return splitGroupMmaKernelFor<PolarBits<3>::Fragments>(headDim, folded);
  if (bits == 4)
    return splitGroupMmaKernelFor<PolarBits<4>::Fragments>(headDim, folded);
  return nullptr;
}

} // namespace kvrt::cuda
