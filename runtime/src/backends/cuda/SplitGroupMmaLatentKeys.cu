//===- SplitGroupMmaLatentKeys.cu - GroupMma over low-rank keys -----------===//
//
// Keys stored before RoPE as bf16 latents z of `rank` coordinates
// (#kv.lowrank side=key), values in bf16. Each warp rebuilds its 16 keys of
// a tile on the tensor cores in f16, K = Z W^T + mu (LatentKeyOperands.h:
// W^T's B fragments and the mean in shared memory; A the latents converted
// from bf16, exact but for magnitudes past f16's 65504, which keys of a
// working model's scale do not reach; the mean the accumulators' start),
// 16 coordinates and their RoPE partners at a time.
// In C's layout lane (g, t) holds coordinates 2t, 2t + 1 of each 8-wide
// n-tile for tokens g and g + 8, and a coordinate's partner (half a head
// on) sits in the same lane of n-tile n + D / 16: the rotation is
// lane-local. Its angle, position * theta, comes from the frequency as a
// 64-bit fraction of a turn: the top 32 bits of the product modulo 2^64
// (two integer multiplies) are the angle's fraction of a turn to 2^-32,
// at any position, then __sincosf (about 2^-21 absolute). Token g + 8,
// where it sits 8 positions after token g (every tile of a cache filled
// in order), takes token g's rotation times that of 8 positions, one
// complex product instead of a sine and a cosine. The rotated n-tiles 2j,
// 2j + 1, rounded to f16, are the A registers of k-step j of the scores
// S^T = K Q^T as they are (the query's B fragments follow the rebuilt
// coordinates' order), so a key never leaves the registers.
//
// W and the rebuilt key are each rounded to f16 once (2^-12 relative on
// average, an eighth of the bf16 rounding every bf16 cache applies to its
// keys): the GPU's outputs stay within 1.6e-3 of the CPU's, which rebuilds
// in fp32 (AttentionCheck.cpp's cases; its bound for them is 2e-3).
//
// Values in bf16 take bf16 MMAs, the weights as bf16 hi + lo halves: lane
// g's D / 8 coordinates of a token are D / 64 16-byte loads, and a PRMT
// pairs two tokens' coordinate into an A register. Values stored as bf16
// latents of rank up to 64 (LatentValues) are summed the same way over 64
// coordinates, those past the rank read as zeros, and the merge maps each
// row back (SplitReduce.cu's latent merge).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SplitGroupMmaKernel.cuh"

namespace kvrt::cuda {
namespace {

/// (x, y) rounded to an f16 pair, x in the low half.
__device__ __forceinline__ uint32_t packF16(float x, float y) {
  __half2 h = __floats2half2_rn(x, y);
  return *reinterpret_cast<uint32_t *>(&h);
}

/// bf16 pair x as an f16 pair.
__device__ __forceinline__ uint32_t bf16ToF16(uint32_t x) {
  return packF16(__uint_as_float(x << 16), __uint_as_float(x & 0xffff0000u));
}

/// cos and sin of position * theta, theta a 64-bit fraction of a turn
/// (low, high words).
__device__ __forceinline__ void rotationAt(int position, uint32_t low,
                                           uint32_t high, float &cosine,
                                           float &sine) {
  const uint32_t p = uint32_t(position);
  const uint32_t turn = p * high + __umulhi(p, low);
  // 2 pi / 2^32: the top word as an angle in [-pi, pi).
  __sincosf(float(int32_t(turn)) * 1.46291807926715968e-9f, &sine, &cosine);
}

template <int D, int RankSteps, bool LatentValues>
struct LatentKeyGroup : SlotKeys {
  // Three blocks an SM up to rank 64 of 128; past it the axes' 32 KB of
  // shared memory leave room for two, and a bound of three would only
  // make ptxas spill.
  static constexpr int kSteps = D / 16, kMinBlocks = RankSteps == 8 ? 2 : 3;
  static constexpr bool kHeadScale = false, kCodeTable = false,
                        kRotatedQueries = false, kLatentKeys = true,
                        kBf16Values = true;
  static constexpr SlotScales kSlotScales = SlotScales::Never;
  static constexpr int kScaleOffset = 0;
  static constexpr int kRankSteps = RankSteps;
  /// The value pass's coordinates: the head's, or a latent's rank
  /// rounded up to 64.
  static constexpr int kValueDims = LatentValues ? 64 : D;
  /// 16-byte words of one KV head's axes and mean (LatentKeyOperands.h),
  /// then of the frequencies.
  static constexpr int kFragmentWords = D / 8 * RankSteps * 16;
  static constexpr int kAxisWords = kFragmentWords + D / 4;
  static constexpr int kFrequencyWords = D / 2;

  __device__ __forceinline__ static float slotScale(const uint8_t *) {
    return 1.0f;
  }

  /// Latent coordinates c and c + 1 (c even) of an entry; zeros from the
  /// rank on. Even ranks keep entries 4-byte aligned (`pairs`).
  __device__ __forceinline__ static uint32_t
  latentPair(const uint8_t *entry, int c, int rank, bool pairs) {
    if (c >= rank)
      return 0u;
    if (pairs)
      return *reinterpret_cast<const uint32_t *>(entry + 2 * c);
    const uint32_t low = *reinterpret_cast<const uint16_t *>(entry + 2 * c);
    const uint32_t high =
        c + 1 < rank ? *reinterpret_cast<const uint16_t *>(entry + 2 * c + 2)
                     : 0u;
    return low | high << 16;
  }

  /// z[s]: A of rank k-step s for rows g and g + 8 (entries at at[0],
  /// at[1]), in f16. A rank that fills its k-steps (32, 64) takes one
  /// 4-byte load per register; any other masks each pair by the rank.
  __device__ __forceinline__ static void
  loadLatents(const uint8_t *stage, const int (&at)[2], int t, int rank,
              uint32_t (&z)[RankSteps][4]) {
    if (rank == 16 * RankSteps) {
#pragma unroll
      for (int s = 0; s < RankSteps; ++s)
#pragma unroll
        for (int r = 0; r < 4; ++r)
          z[s][r] = bf16ToF16(*reinterpret_cast<const uint32_t *>(
              stage + at[r % 2] + 2 * (16 * s + 2 * t + 8 * (r / 2))));
      return;
    }
    const bool pairs = rank % 2 == 0;
#pragma unroll
    for (int s = 0; s < RankSteps; ++s)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        z[s][r] = bf16ToF16(latentPair(
            stage + at[r % 2], 16 * s + 2 * t + 8 * (r / 2), rank, pairs));
  }

  /// sum: the folded scores of rows g and g + 8 (C of S^T = K Q^T, both
  /// query terms in one column pair), from the latents z at positions
  /// `position`, the block's operands `axes` and `frequencies` in shared
  /// memory, and the query's B fragments in the rebuilt coordinates' order.
  __device__ __forceinline__ static void
  scores(const uint32_t (&z)[RankSteps][4], const int (&position)[2],
         const uint4 *axes, const uint4 *frequencies, int lane,
         const uint32_t (&query)[kSteps][2], float (&sum)[4]) {
    // One branch for the warp: with a branch per rotation the compiler
    // computes both ways.
    if (__all_sync(0xffffffffu, position[1] == position[0] + 8))
      scoresOf<true>(z, position, axes, frequencies, lane, query, sum);
    else
      scoresOf<false>(z, position, axes, frequencies, lane, query, sum);
  }

  /// scores(), Following: whether every lane's token g + 8 is 8 positions
  /// after its token g.
  template <bool Following>
  __device__ __forceinline__ static void
  scoresOf(const uint32_t (&z)[RankSteps][4], const int (&position)[2],
           const uint4 *axes, const uint4 *frequencies, int lane,
           const uint32_t (&query)[kSteps][2], float (&sum)[4]) {
    constexpr int kChunks = D / 32, kHalf = D / 16;
    const int t = lane % 4;
    const uint2 *fragments = reinterpret_cast<const uint2 *>(axes);
    const float2 *mean =
        reinterpret_cast<const float2 *>(axes + kFragmentWords);
    float c[2][4] = {};
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      // n-tiles 2j, 2j + 1 (coordinates 16j .. 16j + 15), then their
      // partners half a head on.
      float k[4][4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int n = 2 * j + u % 2 + (u / 2) * kHalf;
        // C's coordinates 8n + 2t, + 1 of both tokens start at the mean.
        const float2 m = mean[4 * n + t];
        k[u][0] = k[u][2] = m.x;
        k[u][1] = k[u][3] = m.y;
#pragma unroll
        for (int s = 0; s < RankSteps; ++s) {
          const uint2 b = fragments[(n * RankSteps + s) * 32 + lane];
          mmaF16(k[u], z[s][0], z[s][1], z[s][2], z[s][3], b.x, b.y);
        }
      }
      // C's column 2t + e (n-tile 2j + h) is frequency 16j + 8h + 2t + e.
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const uint4 f = frequencies[16 * j + 8 * h + 2 * t + e];
          float cosine[2], sine[2];
          rotationAt(position[0], f.x, f.y, cosine[0], sine[0]);
          if constexpr (Following) {
            const float c8 = __uint_as_float(f.z), s8 = __uint_as_float(f.w);
            cosine[1] = cosine[0] * c8 - sine[0] * s8;
            sine[1] = sine[0] * c8 + cosine[0] * s8;
          } else {
            rotationAt(position[1], f.x, f.y, cosine[1], sine[1]);
          }
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            // C's element 2r + e: token g + 8r.
            const float x = k[h][2 * r + e], y = k[2 + h][2 * r + e];
            k[h][2 * r + e] = x * cosine[r] - y * sine[r];
            k[2 + h][2 * r + e] = y * cosine[r] + x * sine[r];
          }
        }
      // k-step j from n-tiles 2j, 2j + 1; k-step j + kChunks from their
      // partners.
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const float (&low)[4] = k[2 * half], (&high)[4] = k[2 * half + 1];
        const int step = j + half * kChunks;
        mmaF16(c[half], packF16(low[0], low[1]), packF16(low[2], low[3]),
               packF16(high[0], high[1]), packF16(high[2], high[3]),
               query[step][0], query[step][1]);
      }
    }
#pragma unroll
    for (int e = 0; e < 4; ++e)
      sum[e] = c[0][e] + c[1][e];
  }

  /// The latent values' rank (their entries' coordinates), which
  /// valueTiles() takes as its `rank`.
  __device__ __forceinline__ static int valueAux(const SideGeometry &side, int,
                                                 int) {
    return int(side.entryBytes / 2);
  }

  /// a[m]: A = V^T of m-tile m over the lane's four tokens (bf16 pairs),
  /// tokens that are not `valid` read as zeros (stale bytes may be NaN).
  /// Lane g's coordinates Dv / 8 g + 2m, + 1 are word m of its Dv / 4
  /// bytes; a latent's coordinates from `rank` on read as zeros, 16 bytes
  /// at a time where the rank fills the 64.
  template <bool Partial>
  __device__ __forceinline__ static void
  valueTiles(const uint8_t *stage, const int (&at)[4], int rank, int g,
             const bool (&valid)[4], const uint32_t *,
             uint32_t (&a)[kValueDims / 16][4]) {
    constexpr int kWords = kValueDims / 16;
    uint32_t w[4][kWords];
    if (!LatentValues || rank == kValueDims) {
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int k = 0; k < kWords / 4; ++k) {
          uint4 v = *reinterpret_cast<const uint4 *>(
              stage + at[i] + kValueDims / 4 * g + 16 * k);
          if (Partial && !valid[i])
            v = make_uint4(0u, 0u, 0u, 0u);
          w[i][4 * k] = v.x;
          w[i][4 * k + 1] = v.y;
          w[i][4 * k + 2] = v.z;
          w[i][4 * k + 3] = v.w;
        }
    } else {
      const bool pairs = rank % 2 == 0;
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int k = 0; k < kWords; ++k)
          w[i][k] = Partial && !valid[i]
                        ? 0u
                        : latentPair(stage + at[i], kValueDims / 8 * g + 2 * k,
                                     rank, pairs);
    }
#pragma unroll
    for (int m = 0; m < kWords; ++m)
#pragma unroll
      for (int pair = 0; pair < 2; ++pair) {
        const uint32_t x = w[2 * pair][m], y = w[2 * pair + 1][m];
        a[m][2 * pair] = permute(x, y, 0x5410);
        a[m][2 * pair + 1] = permute(x, y, 0x7632);
      }
  }
};

template <int D, int RankSteps> const void *latentKeyKernel(bool latent) {
  return latent ? reinterpret_cast<const void *>(
                      &splitGroupMmaKernel<LatentKeyGroup<D, RankSteps, true>,
                                           D, true>)
                : reinterpret_cast<const void *>(
                      &splitGroupMmaKernel<LatentKeyGroup<D, RankSteps, false>,
                                           D, true>);
}

} // namespace

const void *splitGroupMmaKernelLatentKeys(uint32_t headDim, uint32_t rankSteps,
                                          bool latentValues) {
  if (headDim == 64)
    return rankSteps == 2   ? latentKeyKernel<64, 2>(latentValues)
           : rankSteps == 4 ? latentKeyKernel<64, 4>(latentValues)
                            : nullptr;
  if (headDim == 128)
    return rankSteps == 2   ? latentKeyKernel<128, 2>(latentValues)
           : rankSteps == 4 ? latentKeyKernel<128, 4>(latentValues)
           : rankSteps == 8 ? latentKeyKernel<128, 8>(latentValues)
                            : nullptr;
  return nullptr;
}

} // namespace kvrt::cuda
