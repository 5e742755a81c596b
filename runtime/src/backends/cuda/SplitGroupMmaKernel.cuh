//===- SplitGroupMmaKernel.cuh - A split, heads as MMA columns -*- CUDA -*-===//
//
// The split kernel for caches decoded in registers (fp8, polar, nvfp4,
// KIVI) on tensor cores (SplitBlock.cuh streams 64-token tiles;
// GroupFragments.cuh builds the operands). mma.sync.m16n8k16 takes the
// group's query heads as the 8 columns of B, so each A register of decoded
// entries serves every head and no half of A is padding; each warp owns 16
// tokens of every tile, in both passes. The fp32 query and weights enter
// as f16 hi + lo halves; a group of at most 4 heads is Folded: column 2h
// holds head h's hi half and column 2h + 1 its lo half, so one MMA takes
// both and the lane that owns C's columns 2t, 2t + 1 adds them. A larger
// group takes a column per head and two MMAs, hi then lo.
//
//   keys:   S^T = K Q^T over D / 16 k-steps in two chains (even and odd
//           steps): rows g and g + 8 of the warp's 16 tokens; lane (g, t)
//           gets head t (Folded) or heads 2t and 2t + 1, scales them (the
//           token's scale, or the head's) and masks invisible positions.
//   values: O^T += V^T P^T over the lane's tokens t, t + 4, t + 8, t + 12:
//           every coordinate as D / 16 m-tiles. With per-token scales (fp8
//           dynamic, polar) P carries them, divided by a running reference
//           of the warp (the largest weight times scale so far, one
//           redux.sync) so that it stays in f16's range; the accumulators
//           are rescaled when the reference grows, and multiplied by it
//           once at the end.
//
// Low-rank keys (F::kLatentKeys) replace keyRow(): each warp rebuilds its
// rows from their latents and rotates them to their positions
// (SplitGroupMmaLatentKeys.cu), from its KV head's axes, which the block
// copies into shared memory first; their values are bf16 (F::kBf16Values:
// bf16 MMAs, the weights split into bf16 halves).
//
// The four warps' partial outputs are summed through shared memory once
// per split. Against SplitMmaKernel.cuh, per token: half the MMAs (no
// padding rows; a quarter when Folded), the weights loaded and split once
// instead of in every warp, and twice the tokens per pipeline stage.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPLITGROUPMMAKERNEL_CUH
#define KVRT_BACKENDS_CUDA_SPLITGROUPMMAKERNEL_CUH

#include "runtime/src/backends/cuda/GroupFragments.cuh"
#include "runtime/src/backends/cuda/RotateRows.cuh"
#include "runtime/src/backends/cuda/SplitBlock.cuh"
#include "runtime/src/backends/cuda/TensorCoreOps.cuh"

#include <type_traits>

namespace kvrt::cuda {

template <class F, int D, bool Folded>
__global__ void __launch_bounds__(kLaunchThreads, F::kMinBlocks)
    splitGroupMmaKernel(const SplitKernelParams p) {
  // The value pass's coordinates: the head's, or (latent values) their
  // rank rounded up.
  constexpr int Dv = valueDims<F, D>();
  constexpr int kSteps = F::kSteps, kTiles = Dv / 16;
  constexpr int kTile = int(kGroupTileTokens);
  extern __shared__ __align__(16) uint8_t shared[];
  // Polar: the levels of keys and values in one table indexed by a group
  // of codes, in copies (GroupFragments.cuh).
  __shared__ __align__(16) uint32_t codeTable[codeTableWords<F>()];
  SplitBlock<kTile, 1, 32> block(p, shared);

  // Lane (g, t) of the warp that owns rows first .. first + 15 of each tile.
  const int first = block.tid / 32 * 16, g = block.tid % 32 / 4;
  const int t = block.tid % 4, group = block.group;
  // The query head of B's column g, and (Folded) whether it is the column
  // of the head's lo half.
  const int columnHead = Folded ? g / 2 : g;
  const bool lowColumn = Folded && g % 2 == 1;
  const bool head = columnHead < group;
  // The query head whose scores and outputs C's columns give this lane.
  const int ownHead = Folded ? t : 2 * t;

  // B's column g for every k-step, in the keys' coordinate order: head g's
  // hi and lo halves, or (Folded) one half of head g / 2, from `q`, the
  // column's query row. Loaded first, so that the loads' latency hides
  // behind the tables and the pipeline's start; polar's queries are first
  // rotated into the keys' domain, in the logits' space (free until the
  // first scores), by the consumers once the pipeline runs.
  static_assert(Folded || !F::kLatentKeys, "latent keys take folded groups");
  constexpr int kQueryTerms = Folded ? 1 : 2;
  uint32_t query[kQueryTerms][kSteps][2];
  // The query coordinate of B's k index 2t + (i & 1) + 8 (i >> 1) in
  // k-step j: the keys' order, or (latent keys) the rebuilt keys'
  // coordinates 16j + that index, in RoPE's pairs half a head apart
  // (LatentKeyOperands.h).
  auto queryCoordinate = [&](int j, int i) {
    if constexpr (F::kLatentKeys) {
      const int c = 16 * j + 2 * t + (i & 1) + 8 * (i >> 1);
      return !p.ropeInterleaved ? c : c < D / 2 ? 2 * c : 2 * (c - D / 2) + 1;
    } else {
      return keyDim<D>(j, t) + keyLaneCoordinate<F>(i);
    }
  };
  auto loadQuery = [&](const float *q) {
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      float x[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        x[i] = head ? q[queryCoordinate(j, i)] * p.scaleLog2 : 0.0f;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        uint32_t hi, lo;
        splitF16(x[2 * r], x[2 * r + 1], hi, lo);
        if constexpr (Folded) {
          query[0][j][r] = lowColumn ? lo : hi;
        } else {
          query[0][j][r] = hi;
          query[1][j][r] = lo;
        }
      }
    }
  };
  if constexpr (F::kRotatedQueries) {
    const float *q = p.q + block.firstRow * D;
    for (int e = block.tid; e < group * D && block.tid < int(kBlockThreads);
         e += kBlockThreads)
      block.logits[e] = q[e]; // [group][D]
  } else {
    loadQuery(p.q + (block.firstRow + columnHead) * D);
  }

  if constexpr (F::kCodeTable) {
    // Entry b's copies are contiguous, 16 bytes of them codeTableEntry().
    constexpr int kQuads = F::kCodeTableWords / F::kCodeTableEntries / 4;
    for (int b = block.tid; b < F::kCodeTableEntries; b += kLaunchThreads) {
      const uint4 entry = F::codeTableEntry(p.key.levelHalves, b);
      uint4 *copies = reinterpret_cast<uint4 *>(codeTable) + kQuads * b;
#pragma unroll
      for (int c = 0; c < kQuads; ++c)
        copies[c] = entry;
    }
  }
  // Latent keys: the KV head's axes and RoPE's frequencies, in shared memory
  // for every tile (begin()'s barrier orders the copies).
  const uint4 *keyAxes =
      reinterpret_cast<const uint4 *>(shared + p.keyOperandOffset);
  if constexpr (F::kLatentKeys) {
    const uint4 *axes = reinterpret_cast<const uint4 *>(p.keyAxes) +
                        size_t(block.kvHead) * F::kAxisWords;
    const uint4 *frequencies =
        reinterpret_cast<const uint4 *>(p.keyFrequencies);
    uint4 *to = reinterpret_cast<uint4 *>(shared + p.keyOperandOffset);
    for (int i = block.tid; i < F::kAxisWords + F::kFrequencyWords;
         i += kLaunchThreads)
      to[i] = i < F::kAxisWords ? axes[i] : frequencies[i - F::kAxisWords];
  }
  if (block.template finishEmpty<D>() || !block.consume())
    return;
  if constexpr (F::kRotatedQueries) {
    rotateRowsInShared(block.logits, group, D, p.rotationSigns, false,
                       block.tid, kBlockThreads, [&] { block.consumerSync(); });
    loadQuery(block.logits + columnHead * D);
    // Every consumer has its query before any writes scores there.
    block.consumerSync();
  }
  const int start = block.start, end = block.end, tiles = block.tiles;
  const float keyScale = block.template sideScale<F::kHeadScale>(true);
  const bool keyScales = slotScaled<F>(p.key);
  int keyAt[2];
#pragma unroll
  for (int r = 0; r < 2; ++r)
    keyAt[r] = pinned(F::keyOffset(block, p.key, first + g + 8 * r));
  const int keyAux = pinned(F::keyAux(p.key, first, t, keyAt[0]));
  const int keyRank = pinned(int(p.keyRank));
  // Without sinks in the split or a sliding window a token is visible when
  // it is not after the query.
  const bool positionsOnly = p.slidingWindow == 0 && start >= int(p.exactSinks);
  // This lane's scores: rows g and g + 8 of its heads (a tile's rows past
  // the end land within the stride, and are never read).
  float *scoreRow = block.scores(ownHead < group ? ownHead : 0) + first + g;

  for (int tile = 0; tile < tiles; ++tile) {
    const uint8_t *stage = block.acquire();
    const int tileStart = start + tile * kTile;
    // Rows past the end read stale bytes: their scores are never read.
    const int32_t *positions = block.positions(stage);
    int position[2];
    float scale[2];
    bool visible[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      scale[r] = keyScales ? F::slotScale(stage + keyAt[r] + F::kScaleOffset) *
                                 p.key.codeScale
                           : keyScale;
      position[r] = positions[first + g + 8 * r];
      visible[r] = positionsOnly ? position[r] <= block.queryPosition
                                 : block.visible(position[r],
                                                 tileStart + first + g + 8 * r);
    }
    float sum[4];
    if constexpr (F::kLatentKeys) {
      uint32_t z[F::kRankSteps][4];
      F::loadLatents(stage, keyAt, t, keyRank, z);
      block.release();
      F::scores(z, position, keyAxes, keyAxes + F::kAxisWords, block.tid % 32,
                query[0], sum);
    } else {
      uint32_t row[2][kSteps][2];
      F::keyRow(stage, keyAt[0], keyAux, t, codeTable, row[0]);
      F::keyRow(stage, keyAt[1], keyAux, t, codeTable, row[1]);
      block.release();

      // Independent chains of MMAs: even and odd k-steps, by each term of
      // the query. A's registers: rows g, g + 8 at k 2t, 2t + 1, then at
      // 2t + 8, 2t + 9.
      float c[2][kQueryTerms][4] = {};
#pragma unroll
      for (int j = 0; j < kSteps; ++j)
#pragma unroll
        for (int q = 0; q < kQueryTerms; ++q)
          mmaF16(c[j % 2][q], row[0][j][0], row[1][j][0], row[0][j][1],
                 row[1][j][1], query[q][j][0], query[q][j][1]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        sum[e] = c[0][0][e] + c[1][0][e];
        if constexpr (!Folded)
          sum[e] += c[0][1][e] + c[1][1][e];
      }
    }
    // C's element e: token row g + 8 (e / 2), column 2t + e % 2: head t's
    // hi and lo (Folded), or heads 2t and 2t + 1.
    float *scores = scoreRow + tile * kTile;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if constexpr (Folded) {
        if (ownHead < group)
          scores[8 * r] =
              visible[r] ? (sum[2 * r] + sum[2 * r + 1]) * scale[r] : -INFINITY;
      } else {
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (ownHead + e < group)
            scores[e * p.logitsStride + 8 * r] =
                visible[r] ? sum[2 * r + e] * scale[r] : -INFINITY;
      }
    }
  }
  block.softmax();

  const float valueScale = block.template sideScale<F::kHeadScale>(false);
  const bool valueScales = slotScaled<F>(p.value);
  const float *weights = block.scores(head ? columnHead : 0);
  int rows[4], valueAt[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    rows[i] = first + t + 4 * i;
    valueAt[i] = pinned(block.entryOffset(p.value, rows[i]));
  }
  // acc[m][e]: coordinate valueDim<Dv>(m, g) + e / 2, column 2t + e % 2 (head
  // t's hi and lo halves when Folded, else heads 2t and 2t + 1), in units
  // of `reference`.
  float acc[kTiles][4] = {};
  float reference = valueScales ? 0.0f : 1.0f, inverse = 0.0f;
  const int valueAux = pinned(F::valueAux(p.value, g, valueAt[0]));

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
          valueScales ? F::slotScale(stage + valueAt[i] + F::kScaleOffset)
                      : 1.0f;
      x[i] = head && valid[i] ? weight * scale : 0.0f;
    }
    uint32_t a[kTiles][4];
    F::template valueTiles<kPartial>(stage, valueAt, valueAux, g, valid,
                                     codeTable, a);
    block.release();

    if (valueScales) {
      // Weights times scales are not negative: their bits order as ints.
      const float most = __int_as_float(__reduce_max_sync(
          0xffffffffu,
          __float_as_int(fmaxf(fmaxf(x[0], x[1]), fmaxf(x[2], x[3])))));
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
    // The weights' halves in the values' type, and the MMA of that type.
    uint32_t pHi[2], pLo[2];
#pragma unroll
    for (int two = 0; two < 2; ++two) {
      if constexpr (F::kBf16Values)
        splitBf16(x[2 * two], x[2 * two + 1], pHi[two], pLo[two]);
      else
        splitF16(x[2 * two], x[2 * two + 1], pHi[two], pLo[two]);
    }
    auto mma = [](float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                  uint32_t b1) {
      if constexpr (F::kBf16Values)
        mmaBf16(c, a, b0, b1);
      else
        mmaF16(c, a[0], a[1], a[2], a[3], b0, b1);
    };
    // Column g: one half of head g / 2's weights (Folded), or both halves
    // of head g's, one after the other.
#pragma unroll
    for (int m = 0; m < kTiles; ++m) {
      if constexpr (Folded) {
        mma(acc[m], a[m], lowColumn ? pLo[0] : pHi[0],
            lowColumn ? pLo[1] : pHi[1]);
      } else {
        mma(acc[m], a[m], pHi[0], pHi[1]);
        mma(acc[m], a[m], pLo[0], pLo[1]);
      }
    }
  };
  const int fullTiles = (end - start) / kTile;
  for (int tile = 0; tile < fullTiles; ++tile)
    valueTile(std::false_type(), tile);
  if (fullTiles < tiles)
    valueTile(std::true_type(), fullTiles);

  // The stages are free once every consumer is past its last tile.
  block.consumerSync();
  float *perWarp = reinterpret_cast<float *>(shared); // [warps][group][Dv]
#pragma unroll
  for (int m = 0; m < kTiles; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int d = valueDim<Dv>(m, g) + r;
      if constexpr (Folded) {
        if (ownHead < group)
          perWarp[(first / 16 * group + ownHead) * Dv + d] =
              (acc[m][2 * r] + acc[m][2 * r + 1]) * reference;
      } else {
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (ownHead + e < group)
            perWarp[(first / 16 * group + ownHead + e) * Dv + d] =
                acc[m][2 * r + e] * reference;
      }
    }
  block.consumerSync();
  // Rows of D coordinates in the partials, the first Dv written.
  block.template writeWarpSums<Dv, D>(perWarp, group, valueScale);
  block.writeMaxSum();
}

/// The instance for `headDim`, folded when the group has at most 4 heads
/// (kFoldedGroup), or null.
template <template <int> class Fragments>
const void *splitGroupMmaKernelFor(uint32_t headDim, bool folded) {
  if (headDim == 64)
    return folded ? reinterpret_cast<const void *>(
                        &splitGroupMmaKernel<Fragments<64>, 64, true>)
                  : reinterpret_cast<const void *>(
                        &splitGroupMmaKernel<Fragments<64>, 64, false>);
  if (headDim == 128)
    return folded ? reinterpret_cast<const void *>(
                        &splitGroupMmaKernel<Fragments<128>, 128, true>)
                  : reinterpret_cast<const void *>(
                        &splitGroupMmaKernel<Fragments<128>, 128, false>);
  return nullptr;
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPLITGROUPMMAKERNEL_CUH
