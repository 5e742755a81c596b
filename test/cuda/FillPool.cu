//===- FillPool.cu - Random valid cache entries for the benchmark ---------===//
#include "Harness.h"

#include <cuda_fp16.h>

namespace kvrt::cuda::test {
namespace {

__device__ uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__global__ void bf16Kernel(uint16_t *pool, uint64_t count, uint64_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count;
       i += uint64_t(gridDim.x) * blockDim.x) {
    float x = float(mix(seed ^ i) >> 40) * (4.0f / 16777216.0f) - 2.0f;
    pool[i] = uint16_t(__float_as_uint(x) >> 16);
  }
}

__global__ void fp8Kernel(uint8_t *pool, uint64_t count, uint64_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count;
       i += uint64_t(gridDim.x) * blockDim.x) {
    uint8_t code = uint8_t(mix(seed ^ i));
    pool[i] = (code & 0x7f) == 0x7f ? code - 1 : code;
  }
}

__global__ void byteKernel(uint8_t *pool, uint64_t count, uint64_t seed) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count;
       i += uint64_t(gridDim.x) * blockDim.x)
    pool[i] = uint8_t(mix(seed ^ i));
}

/// slots == 1: one scale per head (per_head), the same in every page. f32
/// scales in [0.002, 0.012) (fp8), or f16 ones in [0.5, 2.5) (polar).
template <typename Scale>
__global__ void scaleKernel(uint8_t *pool, uint64_t areas, uint32_t kvHeads,
                            uint64_t areaStride, uint32_t slots,
                            uint32_t entryBytes, uint32_t scaleOffset,
                            uint64_t seed) {
  uint64_t count = areas * slots;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count;
       i += uint64_t(gridDim.x) * blockDim.x) {
    uint64_t area = i / slots, slot = i % slots;
    uint64_t key = slots == 1 ? area % kvHeads : i;
    float unit = float(mix(seed ^ key) >> 40) * (1.0f / 16777216.0f);
    *reinterpret_cast<Scale *>(pool + area * areaStride + scaleOffset +
                               slot * entryBytes) =
        sizeof(Scale) == 4 ? Scale(0.002f + 0.01f * unit)
                           : Scale(0.5f + 2.0f * unit);
  }
}

} // namespace

void fillBf16(void *pool, uint64_t bytes, uint64_t seed) {
  bf16Kernel<<<4096, 256>>>(static_cast<uint16_t *>(pool), bytes / 2, seed);
  CUDA_OK(cudaGetLastError());
}

void fillFp8(void *pool, uint64_t bytes, uint64_t seed) {
  fp8Kernel<<<4096, 256>>>(static_cast<uint8_t *>(pool), bytes, seed);
  CUDA_OK(cudaGetLastError());
}

void fillBytes(void *pool, uint64_t bytes, uint64_t seed) {
  byteKernel<<<4096, 256>>>(static_cast<uint8_t *>(pool), bytes, seed);
  CUDA_OK(cudaGetLastError());
}

void fillScales(void *pool, uint64_t pages, uint32_t kvHeads,
                uint64_t areaStride, uint32_t pageSize, bool slotScales,
                uint32_t entryBytes, uint32_t scaleOffset, bool half,
                uint64_t seed) {
  auto kernel = half ? scaleKernel<__half> : scaleKernel<float>;
  kernel<<<4096, 256>>>(static_cast<uint8_t *>(pool), pages * kvHeads, kvHeads,
                        areaStride, slotScales ? pageSize : 1, entryBytes,
                        scaleOffset, seed);
  CUDA_OK(cudaGetLastError());
}

} // namespace kvrt::cuda::test
