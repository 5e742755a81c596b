//===- ResidentAppend.cu - Appends into resident offloaded pages ----------===//
//
// One thread block per row, one thread per 16 bytes of each KV head's key
// (then value): a bf16 entry is its codes, so storing the rounded copy is
// the append.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/Append.h"

#include <cuda_runtime.h>

#include <string>

namespace kvrt::cuda {
namespace {

__global__ void residentAppendKernel(const ResidentAppendArgs a) {
  const int r = blockIdx.x;
  const int chunks = int(a.headDim) / 8; // 16 bytes each
  const int page = a.slots[r] / int(a.pageSize);
  const int slotInPage = a.slots[r] % int(a.pageSize);
  for (int i = threadIdx.x; i < 2 * int(a.kvHeads) * chunks; i += blockDim.x) {
    const bool value = i >= int(a.kvHeads) * chunks;
    const int j = value ? i - int(a.kvHeads) * chunks : i;
    const int h = j / chunks, c = j % chunks;
    const int slot = a.slotOf[size_t(page) * a.kvHeads + h];
    if (slot < 0)
      continue;
    const uint16_t *src = (value ? a.values : a.keys) +
                          (size_t(r) * a.kvHeads + h) * a.headDim + c * 8;
    uint8_t *dst =
        (value ? a.slotValues : a.slotKeys) +
        size_t(slot) * (value ? a.valueAreaStride : a.keyAreaStride) +
        (size_t(slotInPage) * a.headDim + c * 8) * 2;
    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
  }
}

} // namespace

Status launchResidentAppend(const ResidentAppendArgs &args,
                            cudaStream_t stream) {
  if (args.headDim % 8)
    return Status::error("an offloaded layer's head dimension must be a "
                         "multiple of 8, not " +
                         std::to_string(args.headDim));
  if (!args.rows)
    return Status::ok();
  residentAppendKernel<<<args.rows, 128, 0, stream>>>(args);
  if (cudaError_t e = cudaGetLastError())
    return Status::error(std::string("the resident append's launch failed: ") +
                         cudaGetErrorString(e));
  return Status::ok();
}

} // namespace kvrt::cuda
