//===- SplitMmaKernel.cuh - A split on the tensor cores --------*- CUDA -*-===//
//
// The split kernel that computes with mma.sync.m16n8k16 (SplitBlock.cuh
// streams the tiles; MmaFragments.cuh builds the operands). The group's
// query heads are the rows of A (up to 8 of the 16; the rest are zero), so
// one kernel serves every group size.
//
//   keys:   warp w scores tile rows 8w..8w+7: S[head][token] = Q K^T over
//           D / 16 k-steps, each twice (query hi and lo). Lane (g, t) gets
//           head g's scores of tokens 2t and 2t + 1, scales them (fp8
//           dynamic: the token's scale) and masks invisible positions.
//   values: warp w owns coordinates [w D / 4, (w + 1) D / 4) of every
//           head's output and takes all 32 tokens of the tile, two k-steps
//           of 16: O[head][coord] += P V, the weights P split hi and lo.
//           fp8 dynamic scales go into P relative to the tile's largest
//           scale (so P stays within f16's normal range), and the tile's
//           sum is multiplied back by it in fp32.
//
//   latent values (Dv < D or a rank below D): the same over the Dv
//           coordinates of the latent (its rank rounded up to 64 or 128),
//           those past the rank read as zeros. A latent tile is at most
//           half a key tile's bytes where Dv = D / 2: a stage then holds
//           two, so the value pass keeps as many bytes in flight as the
//           key pass.
//
// No lane's result needs another warp's, so the block writes its output
// straight from registers.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPLITMMAKERNEL_CUH
#define KVRT_BACKENDS_CUDA_SPLITMMAKERNEL_CUH

#include "runtime/src/backends/cuda/MmaFragments.cuh"
#include "runtime/src/backends/cuda/SplitBlock.cuh"

namespace kvrt::cuda {

/// D: the keys' coordinates; Dv: the value pass's (D, or a latent's).
template <template <int> class Fragments, int D, int Dv = D>
__global__ void __launch_bounds__(kLaunchThreads, Fragments<D>::kMinBlocks)
    splitMmaKernel(const SplitKernelParams p) {
  using F = Fragments<D>;
  constexpr int kSteps = F::kSteps, kValueDims = Dv / 32;
  // Latent tiles at most half a key tile's bytes: two to a stage.
  constexpr int kValueTiles = F::kLatent && 2 * Dv <= D ? 2 : 1;
  extern __shared__ __align__(16) uint8_t shared[];
  SplitBlock<int(kTileTokens), kValueTiles> block(p, shared);
  if (block.template finishEmpty<D>())
    return;
  if (!block.consume())
    return;

  const int warp = block.tid / 32, lane = block.tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int group = block.group, start = block.start, end = block.end;
  const int tiles = block.tiles;
  const bool head = g < group;

  // Query head g as A fragments, hi and lo, in the keys' coordinate order.
  uint32_t qHi[kSteps][2], qLo[kSteps][2];
  {
    const float *q = p.q + (block.firstRow + g) * D;
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      const int d = F::keyDim(j, t);
      float x[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        x[i] = head ? q[d + i] * p.scaleLog2 : 0.0f;
      F::split(x[0], x[1], qHi[j][0], qLo[j][0]);
      F::split(x[2], x[3], qHi[j][1], qLo[j][1]);
    }
  }
  const float keyScale = block.template headScale<F::kScaled>(true);
  const bool keyScales = F::kScaled && p.key.slotScales;
  const int keyAt = pinned(block.entryOffset(p.key, 8 * warp + g));
  int scoreAt[2];
  for (int e = 0; e < 2; ++e)
    scoreAt[e] = pinned(block.entryOffset(p.key, 8 * warp + 2 * t + e) +
                        p.key.scaleOffset);

  for (int tile = 0; tile < tiles; ++tile) {
    const uint8_t *stage = block.acquire();
    uint32_t b[kSteps][2];
    F::loadKey(stage + keyAt, t, b);
    // Two accumulators: two dependent chains of MMAs, half as long.
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f}, cLo[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      F::mma(c, qHi[j][0], qHi[j][1], b[j][0], b[j][1]);
      F::mma(cLo, qLo[j][0], qLo[j][1], b[j][0], b[j][1]);
    }
    c[0] += cLo[0];
    c[1] += cLo[1];
    const int32_t *positions = block.positions(stage);
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int row = 8 * warp + 2 * t + e;
      const int token = start + tile * int(kTileTokens) + row;
      if (!head || token >= end)
        continue;
      const float scale =
          keyScales ? *reinterpret_cast<const float *>(stage + scoreAt[e])
                    : keyScale;
      block.scores(g)[token - start] =
          block.visible(positions[row], token) ? c[e] * scale : -INFINITY;
    }
    block.release();
  }
  block.softmax();

  const float valueScale = block.template headScale<F::kScaled>(false);
  const bool valueScales = F::kScaled && p.value.slotScales;
  const int first = warp * (Dv / 4) + g * kValueDims;
  // A latent's coordinates (2 bytes each).
  const int rank = int(p.value.entryBytes / 2);
  const float *weights = block.scores(head ? g : 0);
  // Lane (g, t) reads rows 2t, 2t + 1, 2t + 8, 2t + 9 of each half tile.
  int rows[2][4], valueAt[2][4];
#pragma unroll
  for (int k = 0; k < 2; ++k)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      rows[k][i] = 16 * k + 2 * t + (i & 1) + 8 * (i >> 1);
      valueAt[k][i] = pinned(block.entryOffset(p.value, rows[k][i]));
    }
  const int scaleOffset = int(p.value.scaleOffset);
  const int ownScaleAt = pinned(block.entryOffset(p.value, lane) + scaleOffset);
  float acc[kValueDims][2] = {};

  for (int tile = 0; tile < tiles; tile += kValueTiles) {
    const uint8_t *stageStart = block.acquire();
    // The stage's tiles, p.valueTileBytes apart.
#pragma unroll 1
    for (int part = 0; part < kValueTiles; ++part) {
      if (part > 0 && tile + part >= tiles)
        break;
      const uint8_t *stage = stageStart + part * int(p.valueTileBytes);
      const int tileStart = start + (tile + part) * int(kTileTokens);
      // Relative to the tile's largest scale (fp8 dynamic), else 1.
      float reference = 1.0f, inverse = 1.0f;
      if (valueScales) {
        // Rows past the end hold stale bytes: read, then drop.
        const float own = *reinterpret_cast<const float *>(stage + ownScaleAt);
        reference = warpMax(tileStart + lane < end ? own : 0.0f);
        if (!(reference > 0.0f))
          reference = 1.0f;
        inverse = 1.0f / reference;
      }
      const float *tileWeights = weights + (tileStart - start);
      float sum[kValueDims][4] = {};
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        bool valid[4];
        float w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          valid[i] = tileStart + rows[k][i] < end;
          const float weight = tileWeights[rows[k][i]];
          const float scale = valueScales
                                  ? *reinterpret_cast<const float *>(
                                        stage + valueAt[k][i] + scaleOffset) *
                                        inverse
                                  : 1.0f;
          w[i] = head && valid[i] ? weight * scale : 0.0f;
        }
        uint32_t low[kValueDims], high[kValueDims];
        if constexpr (F::kLatent) {
          F::loadLatentPairs(stage + valueAt[k][0], valid[0],
                             stage + valueAt[k][1], valid[1], first, rank, low);
          F::loadLatentPairs(stage + valueAt[k][2], valid[2],
                             stage + valueAt[k][3], valid[3], first, rank,
                             high);
        } else {
          F::loadValuePairs(stage + valueAt[k][0], valid[0],
                            stage + valueAt[k][1], valid[1], first, low);
          F::loadValuePairs(stage + valueAt[k][2], valid[2],
                            stage + valueAt[k][3], valid[3], first, high);
        }
        uint32_t pHi[2], pLo[2];
        F::split(w[0], w[1], pHi[0], pLo[0]);
        F::split(w[2], w[3], pHi[1], pLo[1]);
#pragma unroll
        for (int n = 0; n < kValueDims; ++n) {
          F::mma(sum[n], pHi[0], pHi[1], low[n], high[n]);
          F::mma(sum[n], pLo[0], pLo[1], low[n], high[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < kValueDims; ++n) {
        acc[n][0] = fmaf(reference, sum[n][0], acc[n][0]);
        acc[n][1] = fmaf(reference, sum[n][1], acc[n][1]);
      }
    }
    block.release();
  }

  // acc[n][e]: head g, the warp's n-th coordinate of lane 2t + e.
  if (head) {
#pragma unroll
    for (int n = 0; n < kValueDims; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        block.write(g, warp * (Dv / 4) + (2 * t + e) * kValueDims + n, D,
                    acc[n][e] * valueScale);
  }
  block.writeMaxSum();
}

/// The instance for `headDim`, or null.
template <template <int> class Fragments>
const void *splitMmaKernelFor(uint32_t headDim) {
  if (headDim == 64)
    return reinterpret_cast<const void *>(&splitMmaKernel<Fragments, 64>);
  if (headDim == 128)
    return reinterpret_cast<const void *>(&splitMmaKernel<Fragments, 128>);
  return nullptr;
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPLITMMAKERNEL_CUH
