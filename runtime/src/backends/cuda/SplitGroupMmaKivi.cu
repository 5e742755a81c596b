//===- SplitGroupMmaKivi.cu - GroupMma split kernels for KIVI caches ------===//
//
// KIVI's entries (docs/kv-encodings.md) are integer codes with an f16 scale
// and zero per group: keys per channel over a block of G tokens, values
// per token over G channels. A is the dequantized entry, zero + code *
// scale, in f16: a code becomes an exact f16 by or-ing it into 1024's
// mantissa and subtracting 1024 (a LOP3 and an HADD2 for two codes), then
// one HFMA2 applies the scale and zero of both, rounding once. That is one
// term, like polar's levels: the f16 rounding (2^-12 relative on average)
// is far below the codes' own quantization error, and the scores and
// outputs accumulate in fp32.
//
// Keys: the 64-token tile holds whole blocks (G is 32 or 64, tiles start on
// multiples of 64), so row r's codes are at its block's start plus r % G
// rows, and a warp's 16 rows share one block, whose scales and zeros
// keyAux() locates once. Lane t's D / 4 coordinates are consecutive, so
// their scales and zeros are too. Values: lane g's D / 8 coordinates lie
// in one channel group, so each of its four tokens needs one (scale, zero)
// pair, and two tokens' pairs make the HFMA2's operands.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitGroupMmaKernel.cuh"

namespace kvrt::cuda {
namespace {

/// 1024 as two f16s: or-ed with codes below 1024, it makes 1024 + code.
constexpr uint32_t kF16Magic = 0x64006400u;

__device__ __forceinline__ uint32_t fmaF16x2(uint32_t a, uint32_t b,
                                             uint32_t c) {
  uint32_t d;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

__device__ __forceinline__ uint32_t subF16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

/// The Bits-bit codes at bit `bit` of x (low half) and of y (high half) as
/// an exact f16 pair: the byte holding each, shifted within it, masked.
template <int Bits>
__device__ __forceinline__ uint32_t codePair(uint32_t x, uint32_t y, int bit) {
  constexpr uint32_t kMask = (1u << Bits) - 1;
  const int byte = bit / 8 % 4, within = bit % 8;
  const uint32_t bytes =
      permute(x >> within, y >> within,
              uint32_t(byte | byte << 4 | (4 + byte) << 8 | (4 + byte) << 12));
  return subF16x2((bytes & (kMask | kMask << 16)) | kF16Magic, kF16Magic);
}

template <int D, int Bits> struct KiviGroup {
  static constexpr int kSteps = D / 16, kMinBlocks = 4;
  static constexpr bool kHeadScale = false, kCodeTable = false,
                        kSpreadKeys = false, kRotatedQueries = false,
                        kLatentKeys = false, kBf16Values = false;
  static constexpr SlotScales kSlotScales = SlotScales::Never;
  static constexpr int kScaleOffset = 0;
  static constexpr int kRowBytes = D * Bits / 8;

  /// Entries carry no scale the kernel applies (slotScales is false).
  __device__ __forceinline__ static float slotScale(const uint8_t *) {
    return 1.0f;
  }

  /// Row `row`'s codes in a key tile: its block's start (a block takes
  /// G * entryBytes), then its place in the block.
  template <class Block>
  __device__ __forceinline__ static int
  keyOffset(const Block &, const SideGeometry &side, int row) {
    const int group = int(side.group);
    return row / group * group * int(side.entryBytes) + row % group * kRowBytes;
  }
  /// The scales of the block holding rows first .. first + 15 (the zeros
  /// follow D scales later).
  __device__ __forceinline__ static int keyAux(const SideGeometry &side,
                                               int first, int, int) {
    const int group = int(side.group);
    return first / group * group * int(side.entryBytes) + group * kRowBytes;
  }

  /// a[j][h]: the row's keys at coordinates keyDim(j, t) + 2h, + 2h + 1,
  /// which are lane t's coordinates D / 4 t + 4j + 2h, + 1.
  __device__ __forceinline__ static void keyRow(const uint8_t *stage, int at,
                                                int scalesAt, int t,
                                                const uint32_t *,
                                                uint32_t (&a)[kSteps][2]) {
    constexpr int kLane = D / 4, kWords = kLane * Bits / 32;
    uint32_t w[kWords];
#pragma unroll
    for (int k = 0; k < kWords; ++k)
      w[k] = *reinterpret_cast<const uint32_t *>(stage + at +
                                                 kLane * Bits / 8 * t + 4 * k);
    const uint8_t *scales = stage + scalesAt + 2 * kLane * t;
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      const uint2 scale = *reinterpret_cast<const uint2 *>(scales + 8 * j);
      const uint2 zero =
          *reinterpret_cast<const uint2 *>(scales + 2 * D + 8 * j);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int bit = (4 * j + 2 * h) * Bits;
        const uint32_t word = w[bit / 32];
        const uint32_t codes = codePair<Bits>(word, word >> Bits, bit % 32);
        a[j][h] = fmaF16x2(codes, h ? scale.y : scale.x, h ? zero.y : zero.x);
      }
    }
  }

  /// Where each value entry's (scale, zero) of lane g's channel group is.
  __device__ __forceinline__ static int valueAux(const SideGeometry &side,
                                                 int g, int) {
    return kRowBytes + 4 * (D / 8 * g / int(side.group));
  }

  /// a[m][r]: register r of m-tile m (rows g, g + 8 over tokens 0, 1,
  /// then over tokens 2, 3) for the tokens whose entries start at at[0..3]:
  /// rows g and g + 8 of m-tile m are lane g's coordinates e and e + 1, e =
  /// 4 (m / 2) + 2 (m % 2). In a Partial tile, tokens that are not `valid`
  /// get a zero scale and zero (stale bytes may be NaN, and NaN times a
  /// zero weight is NaN).
  template <bool Partial>
  __device__ __forceinline__ static void
  valueTiles(const uint8_t *stage, const int (&at)[4], int pairAt, int g,
             const bool (&valid)[4], const uint32_t *,
             uint32_t (&a)[D / 16][4]) {
    constexpr int kBytes = D / 8 * Bits / 8, kWords = (kBytes + 3) / 4;
    uint32_t c[4][kWords], pair[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint8_t *entry = stage + at[i];
      if constexpr (kBytes >= 4) {
#pragma unroll
        for (int k = 0; k < kWords; ++k)
          c[i][k] =
              *reinterpret_cast<const uint32_t *>(entry + kBytes * g + 4 * k);
      } else {
        c[i][0] = *reinterpret_cast<const uint16_t *>(entry + kBytes * g);
      }
      pair[i] = *reinterpret_cast<const uint32_t *>(entry + pairAt);
      if (Partial)
        pair[i] = valid[i] ? pair[i] : 0u;
    }
#pragma unroll
    for (int two = 0; two < 2; ++two) {
      const uint32_t x = pair[2 * two], y = pair[2 * two + 1];
      const uint32_t scale = permute(x, y, 0x5410),
                     zero = permute(x, y, 0x7632);
#pragma unroll
      for (int m = 0; m < D / 16; ++m)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int bit = (4 * (m / 2) + 2 * (m % 2) + r) * Bits;
          a[m][2 * two + r] =
              fmaF16x2(codePair<Bits>(c[2 * two][bit / 32],
                                      c[2 * two + 1][bit / 32], bit % 32),
                       scale, zero);
        }
    }
  }
};

template <int Bits> struct KiviBits {
  template <int D> using Fragments = KiviGroup<D, Bits>;
};

} // namespace

const void *splitGroupMmaKernelKivi(uint32_t headDim, uint32_t bits,
                                    bool folded) {
  if (bits == 2)
    return splitGroupMmaKernelFor<KiviBits<2>::Fragments>(headDim, folded);
  if (bits == 4)
    return splitGroupMmaKernelFor<KiviBits<4>::Fragments>(headDim, folded);
  return nullptr;
}

} // namespace kvrt::cuda
