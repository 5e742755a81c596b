//===- SplitGroupMmaNvfp4.cu - GroupMma split kernels for nvfp4 caches ---===//
//
// An entry is D E2M1 codes, two a byte (low nibble first), then one E4M3
// scale per 16 coordinates (docs/kv-encodings.md). A code with its sign in
// bit 15 of an f16 and its three magnitude bits in bits 9-11 is the f16
// of its value times 2^-14 (E2M1 0.5 lands on f16's subnormal 2^-15); one
// f16 multiply by the block scale times 2^6 (at most 448 * 64, no
// overflow) makes it value * scale * 2^-8, exact (a multiple of 2^-18 of
// at most six significant bits), so A has one term. The tensor scale times
// 2^8 is the side's codeScale, applied to scores and outputs in fp32.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitGroupMmaKernel.cuh"

namespace kvrt::cuda {
namespace {

/// The E2M1 codes in bits 12-15 and 28-31 of x as an f16 pair, times 2^-14.
__device__ __forceinline__ uint32_t e2m1HighToF16x2(uint32_t x) {
  return (x & 0x80008000u) | ((x >> 3) & 0x0e000e00u);
}

__device__ __forceinline__ uint32_t mulF16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

/// Two E4M3 block scales (the first in the low byte) as f16, times 2^6.
__device__ __forceinline__ uint32_t blockScales(uint32_t pair) {
  return mulF16x2(e4m3x2ToF16x2(pair), 0x54005400u);
}

/// Byte b of x (nibbles of its high half) and of y (high half of the
/// result), each in the top nibble of its half.
__device__ __forceinline__ uint32_t byteTops(uint32_t x, uint32_t y, int b) {
  return permute(x, y, uint32_t(b | b << 4 | b << 8 | (4 + b) << 12));
}

template <int D> struct Nvfp4Group : SlotKeys {
  static constexpr int kSteps = D / 16, kMinBlocks = 4;
  static constexpr bool kHeadScale = false, kCodeTable = false,
                        kSpreadKeys = false, kRotatedQueries = false,
                        kLatentKeys = false, kBf16Values = false;
  static constexpr SlotScales kSlotScales = SlotScales::Never;
  static constexpr int kScaleOffset = 0;

  /// Entries carry no scale of their own (slotScales is false).
  __device__ __forceinline__ static float slotScale(const uint8_t *) {
    return 1.0f;
  }

  /// a[j][h]: the row's coordinates keyDim(j, t) + 2h, + 2h + 1, one
  /// byte of codes: lane t's D / 4 coordinates are D / 64 scale blocks.
  __device__ __forceinline__ static void keyRow(const uint8_t *stage, int at,
                                                int, int t, const uint32_t *,
                                                uint32_t (&a)[kSteps][2]) {
    const uint8_t *entry = stage + at;
    uint32_t scales;
    if constexpr (D == 128)
      scales = blockScales(
          *reinterpret_cast<const uint16_t *>(entry + D / 2 + 2 * t));
    else
      scales = blockScales(entry[D / 2 + t]);
    const uint32_t block[2] = {permute(scales, 0u, 0x1010),
                               permute(scales, 0u, 0x3232)};
#pragma unroll
    for (int k = 0; k < D / 32; ++k) {
      const uint32_t w =
          *reinterpret_cast<const uint32_t *>(entry + D / 8 * t + 4 * k);
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const int j = 2 * k + b / 2;
        a[j][b % 2] = mulF16x2(e2m1HighToF16x2(byteTops(w << 4, w, b)),
                               block[4 * j / 16]);
      }
    }
  }

  /// a[m][r]: register r of m-tile m (rows g, g + 8 over tokens 0, 1,
  /// then over tokens 2, 3) for the tokens whose entries start at at[0..3]:
  /// lane g's D / 8 coordinates are one scale block. In a Partial tile,
  /// tokens that are not `valid` get a zero scale (stale scale bytes may
  /// be NaN, and NaN times a zero weight is NaN; codes are never NaN).
  template <bool Partial>
  __device__ __forceinline__ static void
  valueTiles(const uint8_t *stage, const int (&at)[4], int, int g,
             const bool (&valid)[4], const uint32_t *,
             uint32_t (&a)[D / 16][4]) {
    uint32_t code[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      code[i] = stage[at[i] + D / 2 + g * D / 128];
      if (Partial)
        code[i] = valid[i] ? code[i] : 0u;
    }
    const uint32_t scales[2] = {blockScales(code[0] | code[1] << 8),
                                blockScales(code[2] | code[3] << 8)};
    // Lane g's codes: D / 64 words of eight.
    constexpr int kWords = D / 64;
#pragma unroll
    for (int v = 0; v < kWords; ++v) {
      uint32_t x[4];
      wordOfTokens(stage, at, kWords * g + v, x);
#pragma unroll
      for (int pair = 0; pair < 2; ++pair)
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          // m-tile 4v + b: coordinates 8v + 2b (low nibbles), + 1 (high).
          const uint32_t lx = x[2 * pair], ly = x[2 * pair + 1];
          a[4 * v + b][2 * pair] = mulF16x2(
              e2m1HighToF16x2(byteTops(lx << 4, ly << 4, b)), scales[pair]);
          a[4 * v + b][2 * pair + 1] =
              mulF16x2(e2m1HighToF16x2(byteTops(lx, ly, b)), scales[pair]);
        }
    }
  }
};

} // namespace

const void *splitGroupMmaKernelNvfp4(uint32_t headDim, bool folded) {
  return splitGroupMmaKernelFor<Nvfp4Group>(headDim, folded);
}

} // namespace kvrt::cuda
