//===- DependentLaunch.cuh - Kernels that start as others end --*- CUDA -*-===//
//
// Hopper's programmatic dependent launch (sm_90): a kernel launched by
// launchDependent() may be put on the SMs once every block of the stream's
// previous kernel has started, rather than once that kernel has drained,
// so its launch and its blocks' start overlap the previous kernel's tail.
// Each such kernel calls awaitPreviousKernel() before anything else: it
// lets the next kernel be scheduled, then waits until the previous kernel
// has completed and its writes are visible. Every block waiting before it
// does anything or exits keeps the stream's order whole: a kernel is
// complete only once the one before it is, so results two launches back
// are visible too. Launched without the attribute (or after a copy or an
// event) the wait returns at once.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DEPENDENTLAUNCH_CUH
#define KVRT_BACKENDS_CUDA_DEPENDENTLAUNCH_CUH

#include <cuda_runtime.h>

#include <cstddef>

namespace kvrt::cuda {

__device__ __forceinline__ void awaitPreviousKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/// cudaLaunchKernel() of `kernel`, whose blocks call awaitPreviousKernel()
/// first, as a programmatic dependent of the stream's previous kernel.
inline cudaError_t launchDependent(const void *kernel, dim3 grid, dim3 block,
                                   void **args, size_t sharedBytes,
                                   cudaStream_t stream) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = sharedBytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelExC(&config, kernel, args);
}

template <typename T> struct NotDeduced {
  using type = T;
};

/// The same for a typed kernel, its arguments converted to its parameters'
/// types.
template <typename... Params>
cudaError_t launchDependent(void (*kernel)(Params...), dim3 grid, dim3 block,
                            size_t sharedBytes, cudaStream_t stream,
                            typename NotDeduced<Params>::type... args) {
  void *pointers[] = {static_cast<void *>(&args)...};
  return launchDependent(reinterpret_cast<const void *>(kernel), grid, block,
                         pointers, sharedBytes, stream);
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEPENDENTLAUNCH_CUH
