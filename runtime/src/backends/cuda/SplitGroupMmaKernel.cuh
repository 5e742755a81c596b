//===- SplitGroupMmaKernel.cuh - A split, heads as MMA columns -*- CUDA -*-===//
//
// The split kernel for caches decoded in registers (fp8, polar, nvfp4) on
// tensor cores (SplitBlock.cuh streams 64-token tiles; GroupFragments.cuh
// builds the operands). mma.sync.m16n8k16 takes the group's query heads as
// the 8 columns of B (unused ones are zero), so each A register of decoded
// entries serves every head and no half of A is padding; each warp owns 16
// tokens of every tile, in both passes:
//
//   keys:   S^T = K Q^T over D / 16 k-steps (per term of the entries: fp8
//           one, polar hi and lo) with the query in hi + lo halves: rows g
//           and g + 8 of the warp's 16 tokens, lane (g, t) gets heads 2t
//           and 2t + 1 of both, scales them (the token's scale, or the
//           head's) and masks invisible positions.
//   values: O^T += V^T P^T over the lane's tokens t, t + 4, t + 8, t + 12:
//           every coordinate as D / 16 m-tiles, the weights P in hi + lo
//           halves. With per-token scales (fp8 dynamic, polar) P carries
//           them, divided by a running reference of the warp (the largest
//           weight times scale so far) so that it stays in f16's range; the
//           accumulators are rescaled when the reference grows, and
//           multiplied by it once at the end.
//
// The four warps' partial outputs are summed through shared memory once
// per split. Against SplitMmaKernel.cuh, per token: half the MMAs (no
// padding rows), the weights loaded and split once instead of in every
// warp, and twice the tokens per pipeline stage.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPLITGROUPMMAKERNEL_CUH
#define KVRT_BACKENDS_CUDA_SPLITGROUPMMAKERNEL_CUH

#include "runtime/src/backends/cuda/GroupFragments.cuh"
#include "runtime/src/backends/cuda/SplitBlock.cuh"

#include <type_traits>

namespace kvrt::cuda {

/// A B for the terms of `a` against B's hi + lo, added to `first` (term 0
/// by hi) and `second` (term 0 by lo, term 1 by hi; lo by lo is below
/// fp32's rounding): two chains of dependent MMAs, or one when both name
/// the same accumulators.
template <int Terms>
__device__ __forceinline__ void
mmaTerms(float (&first)[4], float (&second)[4], const uint32_t (&a)[4][Terms],
         const uint32_t (&hi)[2], const uint32_t (&lo)[2]) {
  mmaF16(first, a[0][0], a[1][0], a[2][0], a[3][0], hi[0], hi[1]);
  mmaF16(second, a[0][0], a[1][0], a[2][0], a[3][0], lo[0], lo[1]);
  if constexpr (Terms == 2)
    mmaF16(second, a[0][1], a[1][1], a[2][1], a[3][1], hi[0], hi[1]);
}

template <class F, int D>
__global__ void __launch_bounds__(kLaunchThreads, F::kMinBlocks)
    splitGroupMmaKernel(const SplitKernelParams p) {
  constexpr int kSteps = F::kSteps, kTerms = F::kTerms, kTiles = D / 16;
  constexpr int kTile = int(kGroupTileTokens);
  extern __shared__ __align__(16) uint8_t shared[];
  // Polar codebooks of keys and values, or (kPairs) their one table of
  // level pairs with a copy per two lanes (GroupFragments.cuh).
  __shared__ uint32_t tables[2][16];
  __shared__ uint32_t pairs[F::kPairs ? kPairTableWords : 1];
  SplitBlock<kTile> block(p, shared);
  if constexpr (F::kPairs) {
    for (int w = block.tid; w < kPairTableWords; w += kLaunchThreads) {
      const int b = w / 16;
      pairs[w] = (p.key.levelHalves[b % 16] & 0xffffu) |
                 p.key.levelHalves[b / 16] << 16;
    }
  } else if (F::kTables && block.tid < 32) {
    tables[block.tid / 16][block.tid % 16] =
        (block.tid < 16 ? p.key : p.value).levelHalves[block.tid % 16];
  }
  const uint32_t *keyTable = F::kPairs ? pairs : tables[0];
  const uint32_t *valueTable = F::kPairs ? pairs : tables[1];
  if (block.template finishEmpty<D>() || !block.consume())
    return;

  // Lane (g, t) of the warp that owns rows first .. first + 15 of each tile.
  const int first = block.tid / 32 * 16, g = block.tid % 32 / 4;
  const int t = block.tid % 4, group = block.group;
  const int start = block.start, end = block.end, tiles = block.tiles;
  const bool head = g < group;

  // Query head g as B fragments, hi and lo, in the keys' coordinate order.
  uint32_t qHi[kSteps][2], qLo[kSteps][2];
  {
    const float *q = p.q + (block.firstRow + g) * D;
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      const int d = keyDim<D>(j, t);
      float x[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        x[i] = head ? q[d + i] * p.scaleLog2 : 0.0f;
      splitF16(x[0], x[1], qHi[j][0], qLo[j][0]);
      splitF16(x[2], x[3], qHi[j][1], qLo[j][1]);
    }
  }
  const float keyScale = block.template sideScale<F::kHeadScale>(true);
  const bool keyScales = p.key.slotScales;
  int keyAt[2];
#pragma unroll
  for (int r = 0; r < 2; ++r)
    keyAt[r] = pinned(F::keyOffset(block, p.key, first + g + 8 * r));
  const int keyAux = pinned(F::keyAux(p.key, first));

  for (int tile = 0; tile < tiles; ++tile) {
    const uint8_t *stage = block.acquire();
    const int tileStart = start + tile * kTile;
    uint32_t row[2][kSteps][2][kTerms];
    F::keyRow(stage, keyAt[0], keyAux, t, keyTable, row[0]);
    F::keyRow(stage, keyAt[1], keyAux, t, keyTable, row[1]);
    // Rows past the end read stale bytes: their scores are dropped.
    const int32_t *positions = block.positions(stage);
    float scale[2];
    bool visible[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      scale[r] = keyScales
                     ? F::slotScale(stage + keyAt[r] + p.key.scaleOffset) *
                           p.key.codeScale
                     : keyScale;
      visible[r] = block.visible(positions[first + g + 8 * r],
                                 tileStart + first + g + 8 * r);
    }
    block.release();

    float c[2][4] = {};
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      // A's registers: rows g, g + 8 at k 2t, 2t + 1, then at 2t + 8, 2t + 9.
      uint32_t fragment[4][kTerms];
#pragma unroll
      for (int term = 0; term < kTerms; ++term)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          fragment[i][term] = row[i % 2][j][i / 2][term];
      mmaTerms<kTerms>(c[0], c[1], fragment, qHi[j], qLo[j]);
    }
    // c[.][e]: token row g + 8 (e / 2), head 2t + e % 2.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int token = tileStart + first + g + 8 * r;
      if (token >= end)
        continue;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int h = 2 * t + e;
        if (h < group)
          block.scores(h)[token - start] =
              visible[r] ? (c[0][2 * r + e] + c[1][2 * r + e]) * scale[r]
                         : -INFINITY;
      }
    }
  }
  block.softmax();

  const float valueScale = block.template sideScale<F::kHeadScale>(false);
  const bool valueScales = p.value.slotScales;
  const float *weights = block.scores(head ? g : 0);
  int rows[4], valueAt[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    rows[i] = first + t + 4 * i;
    valueAt[i] = pinned(block.entryOffset(p.value, rows[i]));
  }
  // acc[m][e]: coordinate valueDim(m, g) + e / 2, head 2t + e % 2, in units
  // of `reference`.
  float acc[kTiles][4] = {};
  float reference = valueScales ? 0.0f : 1.0f, inverse = 0.0f;
  const int valueAux = pinned(F::valueAux(p.value, g));

  // One value tile; in the last one, if `Partial`, tokens past the end
  // weigh nothing and (fp8) read as zeros.
  auto valueTile = [&](auto partial, int tile) {
    constexpr bool kPartial = decltype(partial)::value;
    const uint8_t *stage = block.acquire();
    const int tileStart = start + tile * kTile;
    bool valid[4];
    float x[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      valid[i] = !kPartial || tileStart + rows[i] < end;
      // Scores past the end and scales of stale entries are not numbers
      // to multiply: select, do not scale by zero.
      const float weight = weights[tileStart - start + rows[i]];
      const float scale =
          valueScales ? F::slotScale(stage + valueAt[i] + p.value.scaleOffset)
                      : 1.0f;
      x[i] = head && valid[i] ? weight * scale : 0.0f;
    }
    uint32_t a[kTiles][4][kTerms];
    F::template valueTiles<kPartial>(stage, valueAt, valueAux, g, valid,
                                     valueTable, a);
    block.release();

    if (valueScales) {
      const float most = warpMax(fmaxf(fmaxf(x[0], x[1]), fmaxf(x[2], x[3])));
      if (most > reference) {
        if (reference > 0.0f) {
          const float rescale = reference / most;
#pragma unroll
          for (int m = 0; m < kTiles; ++m)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              acc[m][e] *= rescale;
        }
        reference = most;
        inverse = 1.0f / most;
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
        x[i] *= inverse;
    }
    uint32_t pHi[2], pLo[2];
    splitF16(x[0], x[1], pHi[0], pLo[0]);
    splitF16(x[2], x[3], pHi[1], pLo[1]);
#pragma unroll
    for (int m = 0; m < kTiles; ++m)
      mmaTerms<kTerms>(acc[m], acc[m], a[m], pHi, pLo);
  };
  const int fullTiles = (end - start) / kTile;
  for (int tile = 0; tile < fullTiles; ++tile)
    valueTile(std::false_type(), tile);
  if (fullTiles < tiles)
    valueTile(std::true_type(), fullTiles);

  // The stages are free once every consumer is past its last tile.
  block.consumerSync();
  float *perWarp = reinterpret_cast<float *>(shared); // [warps][group][D]
#pragma unroll
  for (int m = 0; m < kTiles; ++m)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int h = 2 * t + e % 2;
      if (h < group)
        perWarp[(first / 16 * group + h) * D + valueDim<D>(m, g) + e / 2] =
            acc[m][e] * reference;
    }
  block.consumerSync();
  block.template writeWarpSums<D>(perWarp, group, valueScale);
  block.writeMaxSum();
}

/// The instance for `headDim`, or null.
template <template <int> class Fragments>
const void *splitGroupMmaKernelFor(uint32_t headDim) {
  if (headDim == 64)
    return reinterpret_cast<const void *>(
        &splitGroupMmaKernel<Fragments<64>, 64>);
  if (headDim == 128)
    return reinterpret_cast<const void *>(
        &splitGroupMmaKernel<Fragments<128>, 128>);
  return nullptr;
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPLITGROUPMMAKERNEL_CUH
