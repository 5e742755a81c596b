//===- EntryDecode.cuh - A lane's share of one cached entry ----*- CUDA -*-===//
//
// In the split kernel eight lanes read one entry (a key or value vector of
// D coordinates) from shared memory, D / 8 coordinates each, and decode
// them to fp32 in registers. Which coordinates a lane owns depends on the
// encoding, so that each read is as wide as the entry's alignment allows
// and a warp's reads do not collide in shared-memory banks:
//   bf16: entries are 16-byte aligned; lane l reads 16-byte chunks
//         l, l + 8, ... (8 coordinates each).
//   fp8:  entries are 4-byte aligned; lane l reads the D / 32 words from
//         l * D / 32 (4 coordinates each), decoded by cvt.e4m3x2.
// The query and the accumulators use the same ownership (dim()).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_ENTRYDECODE_CUH
#define KVRT_BACKENDS_CUDA_ENTRYDECODE_CUH

#include <cuda_fp16.h>

#include <cstdint>

namespace kvrt::cuda {

template <int D> struct Bf16Entries {
  static constexpr int kDimsPerLane = D / 8;
  /// Whether values carry a scale (a slot's or the head's).
  static constexpr bool kScaled = false;

  /// Coordinate of the lane's i-th value.
  __device__ __forceinline__ static int dim(int lane, int i) {
    return (lane + 8 * (i / 8)) * 8 + i % 8;
  }

  __device__ __forceinline__ static void load(const uint8_t *codes, int lane,
                                              float (&x)[kDimsPerLane]) {
#pragma unroll
    for (int j = 0; j < D / 64; ++j) {
      uint4 v = *reinterpret_cast<const uint4 *>(codes + (lane + 8 * j) * 16);
      uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        x[8 * j + 2 * k] = __uint_as_float(w[k] << 16);
        x[8 * j + 2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
      }
    }
  }
};

/// Two E4M3 codes (the first in the low byte) as floats.
__device__ __forceinline__ float2 decodeE4M3x2(uint32_t pair) {
  uint32_t halves;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"(uint16_t(pair)));
  __half2_raw raw;
  raw.x = uint16_t(halves);
  raw.y = uint16_t(halves >> 16);
  return __half22float2(__half2(raw));
}

template <int D> struct Fp8E4M3Entries {
  static constexpr int kDimsPerLane = D / 8;
  static constexpr bool kScaled = true;
  static constexpr int kWords = D / 32;

  __device__ __forceinline__ static int dim(int lane, int i) {
    return lane * kDimsPerLane + i;
  }

  __device__ __forceinline__ static void load(const uint8_t *codes, int lane,
                                              float (&x)[kDimsPerLane]) {
#pragma unroll
    for (int j = 0; j < kWords; ++j) {
      uint32_t w =
          *reinterpret_cast<const uint32_t *>(codes + (lane * kWords + j) * 4);
      float2 lo = decodeE4M3x2(w), hi = decodeE4M3x2(w >> 16);
      x[4 * j] = lo.x;
      x[4 * j + 1] = lo.y;
      x[4 * j + 2] = hi.x;
      x[4 * j + 3] = hi.y;
    }
  }
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_ENTRYDECODE_CUH
