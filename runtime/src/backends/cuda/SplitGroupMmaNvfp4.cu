//===- SplitGroupMmaNvfp4.cu - GroupMma split kernels for nvfp4 caches ---===//
//
// Keys and values as f16 operands of one term (Nvfp4Fragments.cuh); the
// tensor scale times kNvfp4Unscale is the side's codeScale, applied to
// scores and outputs in fp32.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/Nvfp4Fragments.cuh"
#include "runtime/src/backends/cuda/SplitGroupMmaKernel.cuh"

namespace kvrt::cuda {
namespace {

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

  /// a[j][h]: the row's coordinates keyDim(j, t) + 2h, + 2h + 1.
  __device__ __forceinline__ static void keyRow(const uint8_t *stage, int at,
                                                int, int t, const uint32_t *,
                                                uint32_t (&a)[kSteps][2]) {
#pragma unroll
    for (int j = 0; j < kSteps; ++j)
      nvfp4KeyStep<D>(stage + at, j, t, a[j]);
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
