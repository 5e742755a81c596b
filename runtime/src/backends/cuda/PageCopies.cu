//===- PageCopies.cu - Offloaded pages into their device slots ------------===//
//
// One launch moves what OffloadedPages::afterCall() decided: each of the
// first `count` thread blocks copies one area from mapped host memory to
// its device slot, 16 bytes a thread (many blocks in flight keep the bus
// busy); the blocks after them write the slot table's changed entries. A
// kernel rather than cudaMemcpyBatchAsync: batches of tens of thousands of
// small copies (a long prefill's pages) crashed the driver on the H200
// machine (Xid 32, 2026-12-02).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/PageCopies.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    pageCopiesKernel(const PageCopy *copies, uint32_t count,
                     const SlotWrite *writes, uint32_t writeCount) {
  if (blockIdx.x < count) {
    const PageCopy c = copies[blockIdx.x];
    for (uint32_t i = threadIdx.x; i < c.chunks; i += kThreads)
      c.to[i] = c.from[i];
    return;
  }
  const uint32_t w = (blockIdx.x - count) * kThreads + threadIdx.x;
  if (w < writeCount)
    *writes[w].at = writes[w].value;
}

} // namespace

bool launchPageCopies(const PageCopy *copies, uint32_t count,
                      const SlotWrite *writes, uint32_t writeCount,
                      cudaStream_t stream) {
  const uint32_t blocks = count + (writeCount + kThreads - 1) / kThreads;
  if (blocks == 0)
    return true;
  pageCopiesKernel<<<blocks, kThreads, 0, stream>>>(copies, count, writes,
                                                    writeCount);
  return cudaPeekAtLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
