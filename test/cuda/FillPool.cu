//===- FillPool.cu - Random valid cache entries for the benchmarks --------===//
#include "Harness.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"

#include <cuda_fp16.h>

#include <algorithm>

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

void fillSide(void *pool, const DeviceSideLayout &side, uint64_t pages,
              uint32_t kvHeads, uint32_t pageSize, uint64_t seed) {
  using Kind = DeviceSideLayout::Kind;
  const uint64_t bytes = pages * kvHeads * side.areaStride;
  uint8_t *bytePool = static_cast<uint8_t *>(pool);
  switch (side.kind) {
  case Kind::Bf16:
  case Kind::Kivi:
  case Kind::Latent:
  case Kind::LatentKey:
    fillBf16(pool, bytes, seed);
    return;
  case Kind::Polar:
    byteKernel<<<4096, 256>>>(bytePool, bytes, seed);
    break;
  case Kind::Fp8E4M3:
  case Kind::Nvfp4:
    fp8Kernel<<<4096, 256>>>(bytePool, bytes, seed);
    break;
  }
  CUDA_OK(cudaGetLastError());
  if (side.kind == Kind::Nvfp4)
    return;
  const bool half = side.kind == Kind::Polar;
  auto kernel = half ? scaleKernel<__half> : scaleKernel<float>;
  kernel<<<4096, 256>>>(bytePool, pages * kvHeads, kvHeads, side.areaStride,
                        side.slotScales ? pageSize : 1, side.entryBytes,
                        side.slotScales ? side.scaleOffset : 0, seed + 2);
  CUDA_OK(cudaGetLastError());
}

BenchRows benchRows(std::mt19937 &rng, DeviceBuffer &positions,
                    uint64_t poolPages, uint32_t pageSize, uint32_t batch,
                    uint32_t length, uint32_t qHeads, uint32_t headDim) {
  const uint32_t perRow = length / pageSize;
  BenchRows rows;
  rows.tables.resize(poolPages);
  for (uint64_t i = 0; i < poolPages; ++i)
    rows.tables[i] = int32_t(i);
  std::shuffle(rows.tables.begin(), rows.tables.end(), rng);
  rows.tables.resize(size_t(batch) * perRow);
  std::vector<int32_t> stored(poolPages * pageSize, -1);
  for (uint32_t b = 0; b < batch; ++b)
    for (uint32_t t = 0; t < length; ++t)
      stored[size_t(rows.tables[b * perRow + t / pageSize]) * pageSize +
             t % pageSize] = int32_t(t);
  orDie(positions.upload(stored.data(), stored.size() * 4));
  std::normal_distribution<float> normal;
  rows.q.resize(size_t(batch) * qHeads * headDim);
  for (float &x : rows.q)
    x = normal(rng);
  auto uploaded = [](const void *data, size_t bytes) {
    DeviceBuffer buffer = orDie(DeviceBuffer::allocate(bytes));
    orDie(buffer.upload(data, bytes));
    return buffer;
  };
  const std::vector<int32_t> lengths(batch, int32_t(length)),
      queryPositions(batch, int32_t(length - 1));
  rows.tablesDevice = uploaded(rows.tables.data(), rows.tables.size() * 4);
  rows.lengths = uploaded(lengths.data(), batch * 4);
  rows.queryPositions = uploaded(queryPositions.data(), batch * 4);
  rows.qDevice = uploaded(rows.q.data(), rows.q.size() * 4);
  rows.out = orDie(DeviceBuffer::allocate(rows.q.size() * 4));
  return rows;
}

} // namespace kvrt::cuda::test
