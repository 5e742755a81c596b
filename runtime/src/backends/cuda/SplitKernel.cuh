//===- SplitKernel.cuh - A split on the CUDA cores -------------*- CUDA -*-===//
//
// The split kernel that decodes entries into fp32 registers and computes
// with FFMA (SplitBlock.cuh streams the tiles):
//
//   keys:   eight lanes per token; each lane decodes D / 8 coordinates,
//           dots them with every query head of the group (scale * log2(e)
//           folded into the query), and a reduce-scatter over the eight
//           lanes leaves one head's score per lane; -inf where the stored
//           position is not visible.
//   values: the same lanes accumulate weight * value in fp32 registers,
//           then the block sums its 16 token lanes through shared memory.
//
// SplitMmaKernel.cuh does the same work on the tensor cores.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPLITKERNEL_CUH
#define KVRT_BACKENDS_CUDA_SPLITKERNEL_CUH

#include "runtime/src/backends/cuda/EntryDecode.cuh"
#include "runtime/src/backends/cuda/SplitBlock.cuh"

namespace kvrt::cuda {

/// Sums G values over the 8 lanes of a token (`part` = lane % 8) and leaves
/// one sum per lane: each exchange sends half of the values still held, so
/// G = 8 takes 4 + 2 + 1 shuffles rather than 24. `head` is the index of
/// the sum returned (lanes whose parts differ only in the low bits share a
/// head when G < 8).
template <int G>
__device__ __forceinline__ float reduceScatter(float (&s)[G], int part,
                                               int &head) {
  head = 0;
#pragma unroll
  for (int offset = 4, n = G; offset; offset /= 2) {
    if (n > 1) {
      const bool upper = part & offset;
#pragma unroll
      for (int i = 0; i < n / 2; ++i) {
        const float mine = upper ? s[i + n / 2] : s[i];
        const float other = upper ? s[i] : s[i + n / 2];
        s[i] = mine + __shfl_xor_sync(0xffffffffu, other, offset);
      }
      head += upper ? n / 2 : 0;
      n /= 2;
    } else {
      s[0] += __shfl_xor_sync(0xffffffffu, s[0], offset);
    }
  }
  return s[0];
}

template <template <int> class Entries, int D, int G>
__global__ void __launch_bounds__(kLaunchThreads)
    splitKernel(const SplitKernelParams p) {
  using E = Entries<D>;
  constexpr int kDims = E::kDimsPerLane;
  extern __shared__ __align__(16) uint8_t shared[];
  SplitBlock<> block(p, shared);
  if (block.finishEmpty<D>())
    return;
  if (!block.consume())
    return;

  const int warp = block.tid / 32, lane = block.tid % 32;
  const int tokenLane = lane / 8, part = lane % 8;
  const int group = block.group, start = block.start, end = block.end;
  const int tiles = block.tiles;

  float q[G][kDims];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < kDims; ++i)
      q[g][i] = g < group ? p.q[(block.firstRow + g) * D + E::dim(part, i)] *
                                p.scaleLog2
                          : 0.0f;
  const float keyScale = block.headScale<E::kScaled>(true);

  for (int t = 0; t < tiles; ++t) {
    const uint8_t *stage = block.acquire();
    const int32_t *positions = block.positions(stage);
#pragma unroll
    for (int step = 0; step < 2; ++step) {
      const int row = warp * 8 + step * 4 + tokenLane;
      const int token = start + t * int(kTileTokens) + row;
      // Rows past the end compute on stale bytes so that the whole warp
      // takes part in the shuffles; their scores are dropped.
      const uint8_t *codes = block.entry(stage, p.key, row);
      float k[kDims];
      E::load(codes, part, k);
      float s[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        s[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < kDims; ++i)
          s[g] = fmaf(q[g][i], k[i], s[g]);
      }
      int head;
      const float score = reduceScatter<G>(s, part, head);
      float scale = keyScale;
      if (E::kScaled && p.key.slotScales)
        scale = *reinterpret_cast<const float *>(codes + p.key.scaleOffset);
      if (token < end && head < group)
        block.scores(head)[token - start] =
            block.visible(positions[row], token) ? score * scale : -INFINITY;
    }
    block.release();
  }
  block.softmax();

  const float valueScale = block.headScale<E::kScaled>(false);
  float acc[G][kDims];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < kDims; ++i)
      acc[g][i] = 0.0f;

  for (int t = tiles; t < 2 * tiles; ++t) {
    const uint8_t *stage = block.acquire();
#pragma unroll
    for (int step = 0; step < 2; ++step) {
      const int row = warp * 8 + step * 4 + tokenLane;
      const int token = start + (t - tiles) * int(kTileTokens) + row;
      if (token >= end)
        continue;
      float w[G];
      bool any = false;
#pragma unroll
      for (int g = 0; g < G; ++g) {
        w[g] = g < group ? block.scores(g)[token - start] : 0.0f;
        any |= w[g] != 0.0f;
      }
      // Entries the query does not see (weight 0) are never read.
      if (!any)
        continue;
      const uint8_t *codes = block.entry(stage, p.value, row);
      float v[kDims];
      E::load(codes, part, v);
      float scale = 1.0f;
      if (E::kScaled && p.value.slotScales)
        scale = *reinterpret_cast<const float *>(codes + p.value.scaleOffset);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float weight = w[g] * scale;
#pragma unroll
        for (int i = 0; i < kDims; ++i)
          acc[g][i] = fmaf(weight, v[i], acc[g][i]);
      }
    }
    block.release();
  }
  block.consumerSync();

  // Sum the four token lanes of each warp, then the warps.
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < kDims; ++i) {
      acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], 8);
      acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], 16);
    }
  float *perWarp = reinterpret_cast<float *>(shared); // [warps][G][D]
  if (tokenLane == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g)
      if (g < group)
#pragma unroll
        for (int i = 0; i < kDims; ++i)
          perWarp[(warp * G + g) * D + E::dim(part, i)] = acc[g][i];
  }
  block.consumerSync();
  block.writeWarpSums<D>(perWarp, G, valueScale);
  block.writeMaxSum();
}

/// The instance for `headDim` and `groupCapacity`, or null.
template <template <int> class Entries>
const void *splitKernelFor(uint32_t headDim, uint32_t groupCapacity) {
#define KVRT_SPLIT_CASE(d, g)                                                  \
  if (headDim == d && groupCapacity == g)                                      \
    return reinterpret_cast<const void *>(&splitKernel<Entries, d, g>);
  KVRT_SPLIT_CASE(64, 1)
  KVRT_SPLIT_CASE(64, 2)
  KVRT_SPLIT_CASE(64, 4)
  KVRT_SPLIT_CASE(64, 8)
  KVRT_SPLIT_CASE(128, 1)
  KVRT_SPLIT_CASE(128, 2)
  KVRT_SPLIT_CASE(128, 4)
  KVRT_SPLIT_CASE(128, 8)
#undef KVRT_SPLIT_CASE
  return nullptr;
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPLITKERNEL_CUH
