//===- EvictKeyChunks.cuh - A lane's two chunks of a cached key -*- CUDA
//-*-===//
//
// The eviction scorers (EvictScores.cu, EvictSnapKv.cu) read keys from the
// device pages with d / 16 lanes a key (at least one): lane l loads the
// 8-coordinate chunks l and l + d / 16 of its key as stored (bf16, fp8
// e4m3 with its scale, nvfp4 with its block scales) and decodes them to
// floats as the CPU codec's decodeAt() does.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_EVICTKEYCHUNKS_CUH
#define KVRT_BACKENDS_CUDA_EVICTKEYCHUNKS_CUH

#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/EntryDecode.cuh"

#include <cuda_bf16.h>

#include <cstdint>

namespace kvrt::cuda::evictkeys {

using Kind = DeviceSideLayout::Kind;

/// E2M1's magnitudes by code (its sign is bit 3).
static __constant__ float kE2M1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};

/// The E2M1 value of a 4-bit code.
__device__ __forceinline__ float e2m1(uint32_t code) {
  const float v = kE2M1[code & 7u];
  return code & 8u ? -v : v;
}

/// A lane's two chunks of one key as stored: bf16 eight words, fp8 four
/// and a scale, nvfp4 two and their two block scale codes.
struct Raw {
  uint32_t w[8];
  float scale;
  uint32_t blockScales;
};

template <Kind K>
__device__ __forceinline__ void
loadChunks(const uint8_t *area, const uint8_t *entry,
           const DeviceSideLayout &side, int lane, int lanes, int headDim,
           Raw &raw) {
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    const int chunk = lane + c * lanes;
    if constexpr (K == Kind::Bf16) {
      // The pool is only read while scores are made.
      const uint4 v =
          __ldg(reinterpret_cast<const uint4 *>(entry + chunk * 16));
      raw.w[4 * c] = v.x;
      raw.w[4 * c + 1] = v.y;
      raw.w[4 * c + 2] = v.z;
      raw.w[4 * c + 3] = v.w;
    } else if constexpr (K == Kind::Fp8E4M3) {
      // Dynamic entries are d + 4 bytes: 4-byte aligned only.
      const uint32_t *codes =
          reinterpret_cast<const uint32_t *>(entry + chunk * 8);
      raw.w[2 * c] = codes[0];
      raw.w[2 * c + 1] = codes[1];
    } else {
      static_assert(K == Kind::Nvfp4, "a key encoding the scorer decodes");
      raw.w[c] = *reinterpret_cast<const uint32_t *>(entry + chunk * 4);
      raw.blockScales |= uint32_t(entry[headDim / 2 + chunk / 2]) << (8 * c);
    }
  }
  if constexpr (K == Kind::Fp8E4M3)
    raw.scale = *reinterpret_cast<const float *>(
        side.slotScales ? entry + side.scaleOffset : area + side.scaleOffset);
}

/// Chunk c's eight coordinates, as the CPU codec decodes them.
template <Kind K>
__device__ __forceinline__ void decodeChunk(const Raw &raw, int c,
                                            const DeviceSideLayout &side,
                                            float (&x)[8]) {
  if constexpr (K == Kind::Bf16) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t w = raw.w[4 * c + k];
      x[2 * k] = __uint_as_float(w << 16);
      x[2 * k + 1] = __uint_as_float(w & 0xffff0000u);
    }
  } else if constexpr (K == Kind::Fp8E4M3) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint32_t w = raw.w[2 * c + j];
      const float2 lo = decodeE4M3x2(w), hi = decodeE4M3x2(w >> 16);
      x[4 * j] = lo.x * raw.scale;
      x[4 * j + 1] = lo.y * raw.scale;
      x[4 * j + 2] = hi.x * raw.scale;
      x[4 * j + 3] = hi.y * raw.scale;
    }
  } else {
    const float scale =
        decodeE4M3x2(raw.blockScales >> (8 * c) & 255u).x * side.tensorScale;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      x[i] = e2m1(raw.w[c] >> (4 * i) & 15u) * scale;
  }
}

/// Chunk c's eight coordinates as four bf16 pairs, without the factor that
/// keyFactor() gives: bf16 as stored, fp8's codes, nvfp4's codes times
/// their block scale (e2m1 times e4m3 has at most 6 significant bits).
/// Every value is exact in bf16, so tensor-core products keep the key whole.
template <Kind K>
__device__ __forceinline__ uint4 exactChunk(const Raw &raw, int c) {
  uint32_t pairs[4];
  if constexpr (K == Kind::Bf16) {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      pairs[k] = raw.w[4 * c + k];
  } else if constexpr (K == Kind::Fp8E4M3) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint32_t w = raw.w[2 * c + j];
      const float2 lo = decodeE4M3x2(w), hi = decodeE4M3x2(w >> 16);
      const __nv_bfloat162 a = __floats2bfloat162_rn(lo.x, lo.y),
                           b = __floats2bfloat162_rn(hi.x, hi.y);
      pairs[2 * j] = *reinterpret_cast<const uint32_t *>(&a);
      pairs[2 * j + 1] = *reinterpret_cast<const uint32_t *>(&b);
    }
  } else {
    const float scale = decodeE4M3x2(raw.blockScales >> (8 * c) & 255u).x;
    float x[8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
      x[i] = e2m1(raw.w[c] >> (4 * i) & 15u) * scale;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const __nv_bfloat162 v = __floats2bfloat162_rn(x[2 * k], x[2 * k + 1]);
      pairs[k] = *reinterpret_cast<const uint32_t *>(&v);
    }
  }
  return make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
}

/// What exactChunk()'s values are multiplied by to decode the key: 1,
/// fp8's scale, nvfp4's tensor scale.
template <Kind K>
__device__ __forceinline__ float keyFactor(const Raw &raw,
                                           const DeviceSideLayout &side) {
  if constexpr (K == Kind::Bf16)
    return 1.0f;
  else if constexpr (K == Kind::Fp8E4M3)
    return raw.scale;
  else
    return side.tensorScale;
}

} // namespace kvrt::cuda::evictkeys

#endif // KVRT_BACKENDS_CUDA_EVICTKEYCHUNKS_CUH
