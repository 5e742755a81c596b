//===- PageCopies.h - Offloaded pages into their device slots ---*- C++ -*-===//
#ifndef KVRT_BACKENDS_CUDA_PAGECOPIES_H
#define KVRT_BACKENDS_CUDA_PAGECOPIES_H

#include <cstdint>

typedef struct CUstream_st *cudaStream_t;
struct uint4;

namespace kvrt::cuda {

/// `chunks` 16-byte chunks from `from` (mapped host memory) to `to`.
struct PageCopy {
  const uint4 *from;
  uint4 *to;
  uint32_t chunks;
};

/// *at = value: one slot table entry.
struct SlotWrite {
  int32_t *at;
  int32_t value;
};

/// Enqueues the copies, then (in the same launch, so in no order with
/// them) the writes; `copies` and `writes` are mapped host memory the
/// launch reads while it runs. False when the launch failed.
bool launchPageCopies(const PageCopy *copies, uint32_t count,
                      const SlotWrite *writes, uint32_t writeCount,
                      cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_PAGECOPIES_H
