//===- MmaFragments.cuh - Cached entries as mma.sync operands --*- CUDA -*-===//
//
// SplitMmaKernel.cuh computes with mma.sync.m16n8k16 (fp32 accumulators).
// Per encoding, this file says how a lane (g = lane / 4, t = lane % 4)
// turns shared-memory entries into B fragments and fp32 queries or weights
// into A fragments:
//
//   bf16: bf16 MMAs. fp8 e4m3: f16 MMAs, the codes decoded by cvt.e4m3x2
//         (every e4m3 value is exact in f16), scales applied outside.
//   bf16 keys with bf16 latent values: bf16 MMAs, the latents' coordinates
//         past their rank read as zeros; in 4-byte pairs for even ranks,
//         one at a time for odd ones.
//   A operands (queries, weights) are fp32 split into hi + lo halves of the
//   MMA's type and multiplied twice, so products keep ~16 more bits than
//   one bf16 or f16 rounding would: the result stays at fp32 accuracy.
//
// Keys (B = K^T, k = coordinates, n = 8 tokens): a dot product may take
// its coordinates in any order, so k-step j's k index 2t, 2t+1, 2t+8, 2t+9
// is whatever four coordinates lane t reads contiguously (keyDim()); the
// query's A fragment uses the same map.
// Values (B = V, k = 16 tokens, n = 8 coordinates): lane g owns D / 32
// consecutive coordinates of its warp's quarter; PRMT pairs two tokens'
// codes per coordinate.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_MMAFRAGMENTS_CUH
#define KVRT_BACKENDS_CUDA_MMAFRAGMENTS_CUH

#include "runtime/src/backends/cuda/EntryDecode.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace kvrt::cuda {

__device__ __forceinline__ uint32_t permute(uint32_t a, uint32_t b,
                                            uint32_t selector) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(selector));
  return d;
}

/// Two E4M3 codes (the first in the low byte) as an f16 pair.
__device__ __forceinline__ uint32_t e4m3x2ToF16x2(uint32_t pair) {
  uint32_t halves;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"(uint16_t(pair)));
  return halves;
}

/// hi + lo = (x, y) as two f16 pairs (x in the low half).
__device__ __forceinline__ void splitF16(float x, float y, uint32_t &hi,
                                         uint32_t &lo) {
  __half2 h = __floats2half2_rn(x, y);
  __half2 l = __floats2half2_rn(x - __low2float(h), y - __high2float(h));
  hi = *reinterpret_cast<uint32_t *>(&h);
  lo = *reinterpret_cast<uint32_t *>(&l);
}

/// hi + lo = (x, y) as two bf16 pairs (x in the low half).
__device__ __forceinline__ void splitBf16(float x, float y, uint32_t &hi,
                                          uint32_t &lo) {
  __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
  __nv_bfloat162 l =
      __floats2bfloat162_rn(x - __low2float(h), y - __high2float(h));
  hi = *reinterpret_cast<uint32_t *>(&h);
  lo = *reinterpret_cast<uint32_t *>(&l);
}

/// c += A B in f16 with fp32 accumulators: a0..a3 are A's registers (rows
/// g and g + 8 at k 2t, 2t + 1, then the same rows at k 2t + 8, 2t + 9),
/// b0, b1 B's (k 2t, 2t + 1 and 2t + 8, 2t + 9 of column g).
__device__ __forceinline__ void mmaF16(float (&c)[4], uint32_t a0, uint32_t a1,
                                       uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/// The four E4M3 codes of `w` as two f16 pairs: bytes 0, 1 in `low`, bytes
/// 2, 3 in `high` (each pair's first code in its low half). One conversion
/// each, the high one reading w's upper half in place.
__device__ __forceinline__ void e4m3x4ToF16x2x2(uint32_t w, uint32_t &low,
                                                uint32_t &high) {
  asm("{\n .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %2;\n"
      " cvt.rn.f16x2.e4m3x2 %0, lo;\n cvt.rn.f16x2.e4m3x2 %1, hi;\n}"
      : "=r"(low), "=r"(high)
      : "r"(w));
}

template <int D> struct Bf16Mma {
  static constexpr bool kScaled = false;
  /// Whether values are latents (loadLatentPairs()).
  static constexpr bool kLatent = false;
  /// Blocks an SM must hold (__launch_bounds__; 0: no bound). ptxas keeps
  /// bf16 at 96 registers, four blocks, by itself; fp8 needs the bound.
  static constexpr int kMinBlocks = 0;
  static constexpr int kSteps = D / 16;
  /// Coordinates per token a lane owns in the value pass.
  static constexpr int kValueDims = D / 32;

  /// The first of the four consecutive coordinates lane t holds in k-step j.
  __device__ __forceinline__ static int keyDim(int j, int t) {
    return 32 * (j / 2) + 8 * t + 4 * (j % 2);
  }

  __device__ __forceinline__ static void loadKey(const uint8_t *codes, int t,
                                                 uint32_t (&b)[kSteps][2]) {
#pragma unroll
    for (int i = 0; i < D / 32; ++i) {
      uint4 v = *reinterpret_cast<const uint4 *>(codes + (4 * i + t) * 16);
      b[2 * i][0] = v.x;
      b[2 * i][1] = v.y;
      b[2 * i + 1][0] = v.z;
      b[2 * i + 1][1] = v.w;
    }
  }

  /// b[i] = (row0's, row1's) coordinate `first + i` for i < kValueDims; a
  /// row that is not valid reads as zeros.
  __device__ __forceinline__ static void
  loadValuePairs(const uint8_t *row0, bool valid0, const uint8_t *row1,
                 bool valid1, int first, uint32_t (&b)[kValueDims]) {
#pragma unroll
    for (int w = 0; w < kValueDims / 2; ++w) {
      const uint32_t x0 =
          valid0 ? *reinterpret_cast<const uint32_t *>(row0 + 2 * first + 4 * w)
                 : 0u;
      const uint32_t x1 =
          valid1 ? *reinterpret_cast<const uint32_t *>(row1 + 2 * first + 4 * w)
                 : 0u;
      b[2 * w] = permute(x0, x1, 0x5410);
      b[2 * w + 1] = permute(x0, x1, 0x7632);
    }
  }

  __device__ __forceinline__ static void split(float x, float y, uint32_t &hi,
                                               uint32_t &lo) {
    splitBf16(x, y, hi, lo);
  }

  /// c += A B for an A whose rows 8-15 are zero.
  __device__ __forceinline__ static void
  mma(float (&c)[4], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
  }
};

template <int D> struct Fp8E4M3Mma {
  static constexpr bool kScaled = true;
  static constexpr bool kLatent = false;
  static constexpr int kMinBlocks = 4;
  static constexpr int kSteps = D / 16;
  static constexpr int kValueDims = D / 32;

  __device__ __forceinline__ static int keyDim(int j, int t) {
    return 4 * (t * kSteps + j);
  }

  __device__ __forceinline__ static void loadKey(const uint8_t *codes, int t,
                                                 uint32_t (&b)[kSteps][2]) {
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      uint32_t w =
          *reinterpret_cast<const uint32_t *>(codes + 4 * (t * kSteps + j));
      b[j][0] = e4m3x2ToF16x2(w);
      b[j][1] = e4m3x2ToF16x2(w >> 16);
    }
  }

  __device__ __forceinline__ static void
  loadValuePairs(const uint8_t *row0, bool valid0, const uint8_t *row1,
                 bool valid1, int first, uint32_t (&b)[kValueDims]) {
    uint32_t x0 = 0, x1 = 0;
    if constexpr (kValueDims == 4) {
      if (valid0)
        x0 = *reinterpret_cast<const uint32_t *>(row0 + first);
      if (valid1)
        x1 = *reinterpret_cast<const uint32_t *>(row1 + first);
    } else {
      if (valid0)
        x0 = *reinterpret_cast<const uint16_t *>(row0 + first);
      if (valid1)
        x1 = *reinterpret_cast<const uint16_t *>(row1 + first);
    }
    // [x0.b0, x1.b0, x0.b1, x1.b1]: coordinates 0 and 1, token pairs.
    const uint32_t low = permute(x0, x1, 0x5140);
    b[0] = e4m3x2ToF16x2(low);
    b[1] = e4m3x2ToF16x2(low >> 16);
    if constexpr (kValueDims == 4) {
      const uint32_t high = permute(x0, x1, 0x7362);
      b[2] = e4m3x2ToF16x2(high);
      b[3] = e4m3x2ToF16x2(high >> 16);
    }
  }

  __device__ __forceinline__ static void split(float x, float y, uint32_t &hi,
                                               uint32_t &lo) {
    splitF16(x, y, hi, lo);
  }

  __device__ __forceinline__ static void
  mma(float (&c)[4], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
    mmaF16(c, a0, 0u, a2, 0u, b0, b1);
  }
};

/// bf16 keys with values stored as bf16 latents of any rank: an entry is
/// 2 rank bytes, so its coordinates are read one by one (an odd rank leaves
/// every other entry 2-byte aligned).
template <int D> struct Bf16LatentMma : Bf16Mma<D> {
  static constexpr bool kLatent = true;

  /// b[i] = (row0's, row1's) coordinate `first + i`; coordinates from
  /// `rank` on and rows that are not valid read as zeros.
  template <int N>
  __device__ __forceinline__ static void
  loadLatentPairs(const uint8_t *row0, bool valid0, const uint8_t *row1,
                  bool valid1, int first, int rank, uint32_t (&b)[N]) {
    const uint16_t *x0 = reinterpret_cast<const uint16_t *>(row0) + first;
    const uint16_t *x1 = reinterpret_cast<const uint16_t *>(row1) + first;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const bool inside = first + i < rank;
      b[i] = uint32_t(valid0 && inside ? x0[i] : 0u) |
             uint32_t(valid1 && inside ? x1[i] : 0u) << 16;
    }
  }
};

/// bf16 keys with latents of an even rank: every entry starts 4-byte
/// aligned (2 rank bytes from the area's start; stages and segments are
/// 16-byte aligned), so coordinates are read in pairs, one 4-byte load per
/// row and pair, as Bf16Mma reads values. `first` is even, so a pair lies
/// wholly below the rank or wholly past it.
template <int D> struct Bf16LatentPairMma : Bf16Mma<D> {
  static constexpr bool kLatent = true;
  /// Four blocks an SM, as bf16: unbounded, ptxas takes 103 registers
  /// (three blocks) for D = 128 with two value tiles a stage; bounded, 96
  /// and no spill.
  static constexpr int kMinBlocks = 4;

  template <int N>
  __device__ __forceinline__ static void
  loadLatentPairs(const uint8_t *row0, bool valid0, const uint8_t *row1,
                  bool valid1, int first, int rank, uint32_t (&b)[N]) {
    static_assert(N % 2 == 0, "a lane owns whole pairs of coordinates");
#pragma unroll
    for (int w = 0; w < N / 2; ++w) {
      const bool inside = first + 2 * w < rank;
      const uint32_t x0 =
          valid0 && inside
              ? *reinterpret_cast<const uint32_t *>(row0 + 2 * first + 4 * w)
              : 0u;
      const uint32_t x1 =
          valid1 && inside
              ? *reinterpret_cast<const uint32_t *>(row1 + 2 * first + 4 * w)
              : 0u;
      b[2 * w] = permute(x0, x1, 0x5410);
      b[2 * w + 1] = permute(x0, x1, 0x7632);
    }
  }
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_MMAFRAGMENTS_CUH
