//===- AsyncCopy.cuh - Bulk copies into shared memory ----------*- CUDA -*-===//
//
// Hopper's bulk copy engine (cp.async.bulk, sm_90): one instruction moves a
// contiguous run of 16-byte chunks from global to shared memory and counts
// its bytes down on an mbarrier; threads wait on the barrier's phase.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_ASYNCCOPY_CUH
#define KVRT_BACKENDS_CUDA_ASYNCCOPY_CUH

#include <cstdint>

namespace kvrt::cuda {

__device__ __forceinline__ uint32_t sharedAddress(const void *p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

/// A barrier that completes a phase once `arrivals` threads arrived and the
/// bytes they announced have landed.
__device__ __forceinline__ void initBarrier(uint64_t *barrier,
                                            uint32_t arrivals) {
  asm volatile(
      "mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(sharedAddress(barrier)),
      "r"(arrivals));
}

/// Makes initialised barriers visible to the copy engine.
__device__ __forceinline__ void fenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

/// Arrives on `barrier` and announces `bytes` more to land in this phase.
__device__ __forceinline__ void arriveExpecting(uint64_t *barrier,
                                                uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                   sharedAddress(barrier)),
               "r"(bytes)
               : "memory");
}

/// Arrives on `barrier` (one of the arrivals its phase waits for).
__device__ __forceinline__ void arrive(uint64_t *barrier) {
  asm volatile(
      "mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(sharedAddress(barrier))
      : "memory");
}

/// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) and
/// counts them down on `barrier`.
__device__ __forceinline__ void copyBulk(void *shared, const void *global,
                                         uint32_t bytes, uint64_t *barrier) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::"
               "bytes [%0], [%1], %2, [%3];\n" ::"r"(sharedAddress(shared)),
               "l"(global), "r"(bytes), "r"(sharedAddress(barrier))
               : "memory");
}

/// Waits until the phase of `barrier` with parity `parity` has completed.
/// The thread sleeps until then (or 10 ms pass) instead of retrying at
/// once: ncu counted a producer warp that ran ahead spending 7% of a split
/// kernel's issued instructions on retries. Its time is neutral: without
/// it, bf16 and polar-4 decode attention ran within 0.5% (2026-12-03).
__device__ __forceinline__ void waitBarrier(uint64_t *barrier,
                                            uint32_t parity) {
  constexpr uint32_t kSuspendNanoseconds = 10000000;
  uint32_t done;
  do {
    asm volatile("{\n .reg .pred p;\n"
                 " mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\n"
                 " selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(sharedAddress(barrier)), "r"(parity),
                   "n"(kSuspendNanoseconds)
                 : "memory");
  } while (!done);
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_ASYNCCOPY_CUH
