//===- GroupFragments.cuh - Cached entries as GroupMma operands -*- CUDA
//-*-===//
//
// SplitGroupMmaKernel.cuh computes S^T = K Q^T and O^T = V^T P^T with
// mma.sync.m16n8k16 (f16 operands, fp32 accumulators): 16 tokens (keys) or
// 16 coordinates (values) are the rows of A, the group's query heads the 8
// columns of B. Per encoding, this file says how lane (g = lane / 4, t =
// lane % 4) turns entries in a shared-memory stage into A's registers:
//
//   keyRow():     one token's row of A for every k-step: k-step j's k
//                 indices 2t, 2t + 1, 2t + 8, 2t + 9 are coordinates
//                 keyDim(j, t) + 0 .. 3, so a lane reads D / 4 consecutive
//                 coordinates of the token.
//   valueTiles(): A = V^T for every m-tile over the lane's four tokens (k
//                 2t, 2t + 1, 2t + 8, 2t + 9): lane g owns D / 8 consecutive
//                 coordinates; rows g and g + 8 of m-tile m are coordinates
//                 valueDim(m, g) and valueDim(m, g) + 1.
//
// Terms: fp8 e4m3 codes are exact in f16 (cvt.e4m3x2), one term. A polar
// level is an fp32 number: the codebook the kernel gets (levelHalves)
// holds it times 2^levelShift as f16 hi and lo halves, and the MMAs take
// the hi half alone, one term: a codebook rounded to 11 bits (2^-12
// relative on average), three orders of magnitude below the codebook's own
// quantization error, for a third fewer MMAs and half the permutes of
// carrying lo as a second term. nvfp4's operands (SplitGroupMmaNvfp4.cu)
// are exact in f16: one term.
//
// 4-bit polar codes go through a table of level pairs instead: entry b
// holds the hi halves of the levels of byte b's two codes, which is one A
// register of keys as it is (two consecutive coordinates of a token), and
// one of values where the byte is made of the same coordinate's codes of
// two tokens (two LOP3s and two shifts make eight such bytes). A lookup
// costs a shift, a LOP3 and a load for two codes, where a table of single
// levels costs a byte extraction and a load per code and a permute per
// pair.
// Lanes l and l + 16 read copy l % 16 of the 256 entries (word 16 b + l %
// 16), so a warp's 32 random lookups cost two wavefronts (some pair of
// lanes sharing a copy nearly always meets in a bank), not the 3.5 of one
// copy: 16 KB, small enough for four blocks an SM, one table for keys and
// values (the planner checks that their codebooks agree). Decoding the
// codes in registers instead was measured slower (docs/benchmarks.md).
//
// 3-bit codes cross bytes, so their table is indexed by two codes, 6 bits:
// 64 entries of two levels, a copy per lane (8 KB, no bank conflicts).
// Keys take a pair of consecutive coordinates as 4 bits do, with a funnel
// shift where it crosses a word; values build the pairs of two tokens'
// codes at a coordinate with two LOP3s a word (6-bit groups of `even` and
// `odd` coordinates), ten coordinates a word. Each code looked up on its
// own with a permute per pair took 739 instructions a tile against 4
// bits' 517.
//
// 2-bit polar codes go through a table of the same bytes: entry b holds
// two A registers, the levels of b's codes 0 and 2, then 1 and 3, in 8
// bytes, a copy per four lanes (lane % 8). Keys take them as they are, the
// query's coordinates paired to match (keyLaneCoordinate()); values build
// bytes of two consecutive coordinates' codes of two tokens as 4 bits do
// (coordinate e of both tokens, then e + 1: rows g and g + 8 of an m-tile).
// One 64-bit lookup then makes two registers, where the per-code table
// took two loads and a permute for each.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_GROUPFRAGMENTS_CUH
#define KVRT_BACKENDS_CUDA_GROUPFRAGMENTS_CUH

#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/MmaFragments.cuh"

namespace kvrt::cuda {

/// The first of the four consecutive coordinates that lane t holds in key
/// k-step j (the query's B fragments use the same map).
template <int D> __device__ __forceinline__ int keyDim(int j, int t) {
  return 4 * (t * (D / 16) + j);
}

/// The coordinate of row g of value m-tile m (row g + 8: the next one).
template <int D> __device__ __forceinline__ int valueDim(int m, int g) {
  return D / 8 * g + 4 * (m / 2) + 2 * (m % 2);
}

/// Whether entries carry a scale of their own: never, always, or as the
/// side says (fp8: dynamic, or per_head).
enum class SlotScales { Never, Always, AsSide };

/// The coordinates of the split kernel's value pass: the head's, or those of
/// a latent (F::kValueDims) beside low-rank keys.
template <class F, int D> __host__ __device__ constexpr int valueDims() {
  if constexpr (F::kLatentKeys)
    return F::kValueDims;
  else
    return D;
}

/// Words of the kernel's code table: F's, or one where it has none.
template <class F> __host__ __device__ constexpr int codeTableWords() {
  if constexpr (F::kCodeTable)
    return F::kCodeTableWords;
  else
    return 1;
}

/// Whether entries of `side` carry their own scale.
template <class F>
__device__ __forceinline__ bool slotScaled(const SideGeometry &side) {
  return F::kSlotScales == SlotScales::Always ||
         (F::kSlotScales == SlotScales::AsSide && side.slotScales);
}

/// Word `word` (from each entry's start) of the four tokens whose entries
/// start at at[0..3] in a stage.
__device__ __forceinline__ void wordOfTokens(const uint8_t *stage,
                                             const int (&at)[4], int word,
                                             uint32_t (&x)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
    x[i] = *reinterpret_cast<const uint32_t *>(stage + at[i] + 4 * word);
}

/// Which of the four coordinates keyDim(j, t) + 0 .. 3 B's k index 2t +
/// (i & 1) + 8 (i >> 1) of k-step j holds: in order, or where keyRow()
/// pairs coordinates 0 with 2 and 1 with 3 (F::kSpreadKeys: a byte of
/// 2-bit codes as two A registers) in that order too.
template <class F> __host__ __device__ constexpr int keyLaneCoordinate(int i) {
  if constexpr (F::kSpreadKeys)
    return (i >> 1) | (i & 1) << 1;
  else
    return i;
}

/// Where a key row's entry starts in a stage and what else keyRow() and
/// valueTiles() need (keyAux(), valueAux(): a lane constant, given the
/// warp's first key row, the lane's t or g and where its first row's entry
/// starts), for encodings whose keys are one entry per slot and need
/// nothing else.
struct SlotKeys {
  template <class Block>
  __device__ __forceinline__ static int
  keyOffset(const Block &block, const SideGeometry &side, int row) {
    return block.entryOffset(side, row);
  }
  __device__ __forceinline__ static int keyAux(const SideGeometry &, int, int,
                                               int) {
    return 0;
  }
  __device__ __forceinline__ static int valueAux(const SideGeometry &, int,
                                                 int) {
    return 0;
  }
};

/// Each encoding's operands: keyOffset() and keyAux() (SlotKeys); kSteps
/// key k-steps; kMinBlocks, the blocks an SM must hold (__launch_bounds__);
/// kHeadScale, whether a side may keep one scale for its head (per_head);
/// kCodeTable, whether the kernel loads one table of levels, indexed by a
/// group of codes, for keys and values (kCodeTableEntries entries of which
/// codeTableEntry() gives 16 bytes, kCodeTableWords words); kSpreadKeys,
/// whether keyRow() pairs a lane's coordinates 0 with 2 and 1 with 3
/// (keyLaneCoordinate()); kRotatedQueries, whether the kernel rotates the
/// queries into the keys' domain (polar: SplitKernelParams::rotationSigns);
/// kLatentKeys, whether keys are low-rank latents rebuilt on the tensor
/// cores (loadLatents() and scores(), SplitGroupMmaLatentKeys.cu) instead
/// of keyRow(); kBf16Values, whether valueTiles() gives bf16 operands (bf16
/// MMAs, the weights split into bf16 halves) rather than f16 ones;
/// kSlotScales, and slotScale(), an entry's own scale, kScaleOffset bytes from
/// its start (SideLayout.cpp's scaleOffset, as a constant so that the loops
/// address it from the entry's register).
template <int D> struct Fp8E4M3Group : SlotKeys {
  // Four blocks fit in 96 registers.
  static constexpr int kSteps = D / 16, kMinBlocks = 4;
  static constexpr bool kHeadScale = true, kCodeTable = false,
                        kSpreadKeys = false, kRotatedQueries = false,
                        kLatentKeys = false, kBf16Values = false;
  static constexpr SlotScales kSlotScales = SlotScales::AsSide;
  static constexpr int kScaleOffset = D;

  __device__ __forceinline__ static float slotScale(const uint8_t *at) {
    return *reinterpret_cast<const float *>(at);
  }

  /// a[j][h]: the row's coordinates keyDim(j, t) + 2h, + 2h + 1.
  __device__ __forceinline__ static void keyRow(const uint8_t *stage, int at,
                                                int, int t, const uint32_t *,
                                                uint32_t (&a)[kSteps][2]) {
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      e4m3x4ToF16x2x2(
          *reinterpret_cast<const uint32_t *>(stage + at + keyDim<D>(j, t)),
          a[j][0], a[j][1]);
    }
  }

  /// a[m][r]: register r of m-tile m (rows g, g + 8 over tokens 0, 1,
  /// then over tokens 2, 3) for the tokens whose entries start at at[0..3].
  /// In a Partial tile, tokens that are not `valid` read as zeros (stale
  /// bytes may hold NaN codes, and NaN times a zero weight is NaN).
  template <bool Partial>
  __device__ __forceinline__ static void
  valueTiles(const uint8_t *stage, const int (&at)[4], int, int g,
             const bool (&valid)[4], const uint32_t *,
             uint32_t (&a)[D / 16][4]) {
    constexpr int kWords = D / 32;
#pragma unroll
    for (int v = 0; v < kWords; ++v) {
      uint32_t x[4];
      wordOfTokens(stage, at, kWords * g + v, x);
      if (Partial) {
#pragma unroll
        for (int i = 0; i < 4; ++i)
          x[i] = valid[i] ? x[i] : 0u;
      }
#pragma unroll
      for (int pair = 0; pair < 2; ++pair) {
        // [x.b0, y.b0, x.b1, y.b1]: coordinates 0 and 1 of the two tokens.
        e4m3x4ToF16x2x2(permute(x[2 * pair], x[2 * pair + 1], 0x5140),
                        a[2 * v][2 * pair], a[2 * v][2 * pair + 1]);
        e4m3x4ToF16x2x2(permute(x[2 * pair], x[2 * pair + 1], 0x7362),
                        a[2 * v + 1][2 * pair], a[2 * v + 1][2 * pair + 1]);
      }
    }
  }
};

template <int D, int Bits> struct PolarGroup : SlotKeys {
  static constexpr int kSteps = D / 16, kMinBlocks = 4;
  static constexpr bool kHeadScale = false, kCodeTable = true,
                        kSpreadKeys = Bits == 2, kRotatedQueries = true,
                        kLatentKeys = false, kBf16Values = false;
  static constexpr SlotScales kSlotScales = SlotScales::Always;
  static constexpr int kScaleOffset = D * Bits / 8;
  /// The code table: entries (a byte of 4- or 2-bit codes, or two 3-bit
  /// codes) and words, every copy of every entry.
  static constexpr int kCodeTableEntries = Bits == 3 ? 64 : 256;
  static constexpr int kCodeTableWords = polarCodeTableBytes(Bits) / 4;

  __device__ __forceinline__ static float slotScale(const uint8_t *at) {
    return __half2float(*reinterpret_cast<const __half *>(at));
  }

  /// Bytes of a lane's codes per key row (D / 4 coordinates) and per value
  /// token (D / 8 coordinates).
  static constexpr int kKeyLaneBytes = D / 4 * Bits / 8;
  static constexpr int kValueLaneBytes = D / 8 * Bits / 8;

  /// How far a lane's codes start past a 4-byte boundary: the same for
  /// all its rows (rows g and g + 8, or tokens t + 4i, lie an even number
  /// of slots apart within segments of an even number of slots), so the
  /// loops shift by one constant instead of deriving it per row and tile.
  __device__ __forceinline__ static int keyAux(const SideGeometry &, int, int t,
                                               int at) {
    return (at + kKeyLaneBytes * t) & 3;
  }
  __device__ __forceinline__ static int valueAux(const SideGeometry &, int g,
                                                 int at) {
    return (at + kValueLaneBytes * g) & 3;
  }

  /// The Count codes from byte `at` of the stage, `skew` (0 to 3) bytes
  /// past a 4-byte boundary, as a bit stream in c.
  template <int Count>
  __device__ __forceinline__ static void
  window(const uint8_t *stage, int at, int skew,
         uint32_t (&c)[(Count * Bits + 31) / 32]) {
    constexpr int kWords = (Count * Bits + 31) / 32;
    const uint32_t *aligned =
        reinterpret_cast<const uint32_t *>(stage + at - skew);
    const uint32_t shift = skew * 8;
    uint32_t w[kWords + 1];
#pragma unroll
    for (int k = 0; k <= kWords; ++k)
      w[k] = aligned[k];
#pragma unroll
    for (int k = 0; k < kWords; ++k)
      c[k] = __funnelshift_r(w[k], w[k + 1], shift);
  }

  /// The levels (hi halves) of the two 4-bit codes in byte `byte` of
  /// `word`, from this lane's copy of the pair table: entry b at byte
  /// offset 64 b + 4 (lane % 16), so the shifted byte masked and or-ed
  /// with the lane's offset is the address.
  __device__ __forceinline__ static uint32_t
  pairOfLevels(uint32_t word, int byte, const uint32_t *pairs) {
    const uint32_t entry =
        (byte == 0 ? word << 6 : word >> (8 * byte - 6)) & 0x3fc0u;
    return *reinterpret_cast<const uint32_t *>(
        reinterpret_cast<const uint8_t *>(pairs) +
        (entry | threadIdx.x % 16 * 4));
  }

  /// The levels (hi halves) of the two 3-bit codes at bits s .. s + 5 of
  /// `low` (past bit 31: on in `high`), the first in the low half, from
  /// this lane's copy of the table: entry p at byte offset 128 p + 4 lane,
  /// so a warp's 32 lookups meet in no bank.
  __device__ __forceinline__ static uint32_t
  pairOf3BitLevels(uint32_t low, uint32_t high, int s, const uint32_t *table) {
    const uint32_t entry = s + 6 > 32 ? __funnelshift_r(low, high, s - 7)
                           : s >= 7   ? low >> (s - 7)
                                      : low << (7 - s);
    return *reinterpret_cast<const uint32_t *>(
        reinterpret_cast<const uint8_t *>(table) +
        ((entry & 0x1f80u) | threadIdx.x % 32 * 4));
  }

  /// The code table's 16 bytes of entry b, as four of its copies hold
  /// them: 4 bits, b's two levels (the low nibble's in the low half) four
  /// times; 2 bits, the levels of b's codes 0 and 2, then of 1 and 3,
  /// twice; 3 bits, the levels of b's two codes (bits 0-2 in the low half)
  /// four times.
  __device__ __forceinline__ static uint4
  codeTableEntry(const uint32_t (&levelHalves)[16], int b) {
    auto half = [&](int code) { return levelHalves[code] & 0xffffu; };
    if constexpr (Bits == 4) {
      const uint32_t pair = half(b % 16) | half(b / 16) << 16;
      return make_uint4(pair, pair, pair, pair);
    } else if constexpr (Bits == 3) {
      const uint32_t pair = half(b % 8) | half(b / 8) << 16;
      return make_uint4(pair, pair, pair, pair);
    } else {
      const uint32_t even = half(b & 3) | half(b >> 4 & 3) << 16;
      const uint32_t odd = half(b >> 2 & 3) | half(b >> 6) << 16;
      return make_uint4(even, odd, even, odd);
    }
  }

  /// The two A registers of the four 2-bit codes in byte `byte` of `word`
  /// (codeTableEntry()), from this lane's copy: entry b at byte offset 64 b
  /// + 8 (lane % 8).
  __device__ __forceinline__ static uint2 quadOfLevels(uint32_t word, int byte,
                                                       const uint32_t *table) {
    const uint32_t entry =
        (byte == 0 ? word << 6 : word >> (8 * byte - 6)) & 0x3fc0u;
    return *reinterpret_cast<const uint2 *>(
        reinterpret_cast<const uint8_t *>(table) +
        (entry | threadIdx.x % 8 * 8));
  }

  /// a[j][h]: the row's levels (hi halves) at coordinates
  /// keyDim(j, t) + 2h, + 2h + 1, or (2 bits) + h, + h + 2.
  __device__ __forceinline__ static void keyRow(const uint8_t *stage, int at,
                                                int skew, int t,
                                                const uint32_t *table,
                                                uint32_t (&a)[kSteps][2]) {
    constexpr int kCount = D / 4, kWords = (kCount * Bits + 31) / 32;
    uint32_t c[kWords];
    window<kCount>(stage, at + kKeyLaneBytes * t, skew, c);
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      if constexpr (Bits == 2) {
        // Coordinates 4j .. 4j + 3 of the lane's: byte j.
        const uint2 levels = quadOfLevels(c[j / 4], j % 4, table);
        a[j][0] = levels.x;
        a[j][1] = levels.y;
      } else {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          // Coordinates 4j + 2h, + 1 of the lane's: pair 2j + h.
          const int pair = 2 * j + h;
          if constexpr (Bits == 4) {
            a[j][h] = pairOfLevels(c[pair / 4], pair % 4, table);
          } else {
            const int bit = 6 * pair, k = bit / 32;
            a[j][h] = pairOf3BitLevels(c[k], c[k + 1 < kWords ? k + 1 : k],
                                       bit % 32, table);
          }
        }
      }
    }
  }

  /// As Fp8E4M3Group::valueTiles(); every code reads a finite level, so
  /// tokens past the end need no zeros.
  template <bool Partial>
  __device__ __forceinline__ static void
  valueTiles(const uint8_t *stage, const int (&at)[4], int skew, int g,
             const bool (&)[4], const uint32_t *table,
             uint32_t (&a)[D / 16][4]) {
    constexpr int kCount = D / 8;
    uint32_t c[4][(kCount * Bits + 31) / 32];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      window<kCount>(stage, at[i] + kValueLaneBytes * g, skew, c[i]);
    if constexpr (Bits == 3) {
      // A token's coordinates 0 .. 9 in one word, 10 .. 15 (d = 128) from
      // bit 30 in another. In `even`, 6-bit group i holds the codes of the
      // pair's two tokens (the first's in the low bits) at coordinate 2i of
      // the word's, in `odd` at 2i + 1: one pair table lookup each, m-tile
      // m's rows g and g + 8 being coordinates 2m and 2m + 1.
      constexpr uint32_t kFirstOfSix = 0x071c71c7u;
      constexpr int kParts = kCount > 10 ? 2 : 1;
#pragma unroll
      for (int pair = 0; pair < 2; ++pair)
#pragma unroll
        for (int part = 0; part < kParts; ++part) {
          const uint32_t (&cx)[(kCount * Bits + 31) / 32] = c[2 * pair];
          const uint32_t (&cy)[(kCount * Bits + 31) / 32] = c[2 * pair + 1];
          const uint32_t x =
              part == 0 ? cx[0] : __funnelshift_r(cx[0], cx[kParts - 1], 30);
          const uint32_t y =
              part == 0 ? cy[0] : __funnelshift_r(cy[0], cy[kParts - 1], 30);
          const uint32_t even = (x & kFirstOfSix) | (y << 3 & ~kFirstOfSix);
          const uint32_t odd = (x >> 3 & kFirstOfSix) | (y & ~kFirstOfSix);
#pragma unroll
          for (int l = 0; l < 10 && 10 * part + l < kCount; ++l) {
            const int e = 10 * part + l;
            const uint32_t word = l % 2 ? odd : even;
            a[e / 2][2 * pair + e % 2] =
                pairOf3BitLevels(word, word, 6 * (l / 2), table);
          }
        }
    } else {
      // Byte j of `even` holds the codes of the pair's two tokens (the
      // first's in the low nibble) at the coordinates of byte j of a token's
      // even nibbles, of `odd` at those of its odd nibbles. 4 bits: one
      // coordinate, an A register as it is (m-tile m: byte m = e / 2 of a
      // token's). 2 bits: coordinates e, e + 1 of m-tile m (nibble m of a
      // token's), its rows g and g + 8.
      constexpr int kWords = kCount * Bits / 32;
#pragma unroll
      for (int pair = 0; pair < 2; ++pair)
#pragma unroll
        for (int k = 0; k < (kWords > 0 ? kWords : 1); ++k) {
          const uint32_t x = c[2 * pair][k], y = c[2 * pair + 1][k];
          const uint32_t even = (x & 0x0f0f0f0fu) | (y << 4 & 0xf0f0f0f0u);
          const uint32_t odd = (x >> 4 & 0x0f0f0f0fu) | (y & 0xf0f0f0f0u);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if constexpr (Bits == 4) {
              a[4 * k + j][2 * pair] = pairOfLevels(even, j, table);
              a[4 * k + j][2 * pair + 1] = pairOfLevels(odd, j, table);
            } else if (8 * k + 2 * j < D / 16) {
              const int m = 8 * k + 2 * j;
              const uint2 e = quadOfLevels(even, j, table);
              const uint2 o = quadOfLevels(odd, j, table);
              a[m][2 * pair] = e.x;
              a[m][2 * pair + 1] = e.y;
              a[m + 1][2 * pair] = o.x;
              a[m + 1][2 * pair + 1] = o.y;
            }
          }
        }
    }
  }
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_GROUPFRAGMENTS_CUH
