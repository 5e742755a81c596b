//===- EvictSnapKv.cu - Attention weights for SnapKV's and H2O's scores ---===//
//
// SnapKV as backends/cpu/Eviction.cpp scores it: each of a KV head's
// group * observe query rows (the layer's last `observe` queries of the
// sequence, after RoPE) takes a softmax over the entries its position sees;
// per query head the weights are summed over the window, max-pooled along
// the entries (`kernel` wide) and summed over the group.
//
// The softmax spans the whole sequence, so the logits are made twice, in
// two launches of one kernel over (kEvictScoreTile entries, KV head,
// sequence) blocks: the first keeps each row's running maximum and sum of
// exponentials (base 2) over its tile (the workspace's partials), the
// second joins the tiles' partials and sums each query head's weights per
// entry (the votes); a third kernel pools.
//
// The logits are tensor-core products (TensorCoreOps.cuh): a pass decodes
// 64 keys into shared memory as bf16, exactly (EvictKeyChunks.cuh's
// exactChunk(): fp8's codes and nvfp4's codes times their block scales are
// bf16 values; the entry's or tensor's factor multiplies the product), and
// each warp keeps its rows' queries as A fragments in registers, every
// fp32 query split into bf16 hi + lo and multiplied twice, so that a logit
// is within about 2^-17 of sum |q_i k_i| of its exact value, as an fp32
// dot product is. Rows come in segments whose weights are summed into one
// vote per entry (SnapKV: a query head's window; H2O: a row's group of
// query heads), each padded to whole m-tiles of 16 rows, so that a column
// of an m-tile sums within one segment: a lane adds its two rows, shuffles
// the tile's 16, shared memory the segment's tiles. With eight m-tiles or
// more a warp takes whole m-tiles; with fewer, 2 or 4 warps share one and
// split the pass's keys.
//
// H2O (accumulateH2o) runs the same two launches for a prefill's rows (the
// decode attention adds its rows' weights itself: AttentionMass.cu), a
// block per (tile, KV head, run of h2oRowsPerBlock() rows of one
// sequence) over the group's queries of those rows as one segment, and
// the second adds each entry's weights, summed over them, to the layer's
// mass with atomicAdd (a prefill's rows meet in one entry, so the order
// of the additions, and their rounding, varies).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/backends/cuda/EvictKeyChunks.cuh"
#include "runtime/src/backends/cuda/MmaFragments.cuh"
#include "runtime/src/backends/cuda/TensorCoreOps.cuh"

#include <climits>
#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

using evictkeys::Kind;
using evictkeys::Raw;

constexpr int kThreads = 256, kWarps = kThreads / 32;
/// Keys a pass decodes: sixteen n-tiles.
constexpr int kPassKeys = 128, kPassTiles = kPassKeys / 8;
constexpr float kLog2e = 1.4426950408889634f;

/// M-tiles a block holds at most for heads of headDim (64 or 128): a
/// warp's A fragments, hi and lo, take d / 2 registers a tile, and 64 of
/// them keep two blocks an SM.
__host__ __device__ constexpr int blockTiles(uint32_t headDim) {
  return kWarps * int(128 / headDim);
}

/// H2O: the call's rows a block takes, as many as its m-tiles hold with
/// their group of query heads each (h2oFits() admits a group that fits).
__host__ __device__ constexpr int h2oRowsPerBlock(uint32_t group,
                                                  uint32_t headDim) {
  return 16 * blockTiles(headDim) / int(group);
}

/// A block's query rows: `segments` runs of `segmentRows` whose weights
/// sum into one vote per entry, each padded to whole m-tiles of 16.
/// SnapKV: a segment per query head, its `observe` rows its window; H2O:
/// one segment of h2oRowsPerBlock() call rows times the group, row r the
/// call's row r / group, query head r % group.
struct RowLayout {
  int segments, segmentRows, segmentTiles;
  __host__ __device__ RowLayout(uint32_t group, uint32_t observe,
                                uint32_t headDim, bool h2o)
      : segments(h2o ? 1 : int(group)),
        segmentRows(h2o ? int(group) * h2oRowsPerBlock(group, headDim)
                        : int(observe)),
        segmentTiles((segmentRows + 15) / 16) {}
  __host__ __device__ int tiles() const { return segments * segmentTiles; }
};

/// The m-tiles and n-tiles of a pass a warp takes: m-tiles firstTile,
/// firstTile + tileStride, ...; a run of nTiles n-tiles from firstN, whole
/// chunks of four (kChunkTiles). `share` warps take one m-tile: two when
/// the block's warps hold that, else one.
constexpr int kChunkTiles = 4;
struct WarpPlan {
  int share, firstTile, tileStride, firstN, nTiles;
  __device__ WarpPlan(int tiles, int warp)
      : share(tiles * 2 <= kWarps ? 2 : 1), firstTile(warp / share),
        tileStride(kWarps / share), firstN(warp % share * (kPassTiles / share)),
        nTiles(kPassTiles / share) {}
};
static_assert(kPassTiles / 2 % kChunkTiles == 0, "whole chunks a warp");

/// Logits (base 2) of a block's query rows against its tile of entries;
/// Votes = false: each row's maximum and sum of exponentials over the
/// tile into the partials; Votes = true: each segment's weights into the
/// votes (per query head, summed over the window), normalised by the
/// partials of every tile. H2o: blockIdx.z is a run of h2oRowsPerBlock()
/// rows of the call (`rows`, of one sequence), their group's queries the
/// rows, and Votes adds the weights, summed over them, to the layer's
/// mass.
template <Kind K, int D, bool Votes, bool H2o>
__global__ void __launch_bounds__(kThreads, 2)
    snapKvKernel(EvictLaunch p, EvictWorkspace w, H2oRows calls) {
  constexpr int kSteps = D / 16, kMaxTiles = blockTiles(D) / kWarps;
  constexpr int kLanes = D / 16; // of one key: chunks lane, lane + kLanes
  // fp8's scales differ by entry (or page); the other encodings' factor
  // is folded into the queries.
  constexpr bool kKeyScales = K == Kind::Fp8E4M3;
  __shared__ __align__(128) uint8_t keys[kPassKeys * D * 2];
  __shared__ float keyScale[kPassKeys];
  __shared__ int keyPosition[kPassKeys];
  // Votes: per m-tile, each column's weights summed over its 16 rows.
  __shared__ float columnSums[kWarps * kMaxTiles][kPassKeys];
  // Partials: per warp and tile slot, each row's (maximum, sum).
  __shared__ float2 rowStates[kWarps][kMaxTiles][16];

  const uint32_t group = p.qHeads / p.cache.kvHeads;
  int length = 0, tableRow, observedRow = 0;
  const int firstCallRow = int(blockIdx.z) * h2oRowsPerBlock(group, D);
  if constexpr (H2o) {
    // The run's rows share the page table row; the last sees the most.
    tableRow = calls.rowTables[firstCallRow];
    for (int r = firstCallRow;
         r < min(int(calls.rows), firstCallRow + h2oRowsPerBlock(group, D));
         ++r)
      length = max(length, calls.rowLengths[r]);
  } else {
    const EvictSequence s = p.sequences[blockIdx.z];
    length = s.length;
    tableRow = s.tableRow;
    observedRow = s.observedRow;
  }
  const int kvHead = blockIdx.y;
  const int first = int(blockIdx.x * kEvictScoreTile);
  if (first >= length)
    return;
  const uint32_t observe = p.observe;
  const RowLayout rowsOf(group, observe, D, H2o);
  const int tiles = rowsOf.tiles(), padded = 16 * tiles;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const WarpPlan plan(tiles, warp);
  const size_t row = size_t(blockIdx.z) * p.cache.kvHeads + kvHead;
  const uint32_t scoreTiles = gridDim.x;
  const float2 *partials = w.partials + row * scoreTiles * padded;
  const DeviceSideLayout &side = p.cache.key;
  // Queries times the softmax's scale in base 2 (and nvfp4's tensor
  // scale), so that a product is a logit.
  const float queryScale =
      p.scale * kLog2e * (K == Kind::Nvfp4 ? side.tensorScale : 1.0f);

  // The lane's rows g and g + 8 of each of its m-tiles: queries as A
  // fragments (hi, lo), positions (-1: padding or an empty place of the
  // window, which sees nothing) and the softmax's state.
  uint32_t aHi[kMaxTiles][kSteps][4], aLo[kMaxTiles][kSteps][4];
  int rowPosition[kMaxTiles][2];
  // Votes = false: the running maximum and this lane's part of the sum;
  // Votes = true: the row's maximum over the sequence and 1 / its sum (0
  // for a row that sees nothing).
  float rowMax[kMaxTiles][2], rowSum[kMaxTiles][2];
  // The earliest position of the warp's rows: a pass whose entries are all
  // at or before it needs no mask.
  int earliestRow = INT_MAX;
  const size_t width = size_t(p.qHeads) * D;
  const float *window = p.observed + size_t(observedRow) * observe * width;
#pragma unroll
  for (int s = 0; s < kMaxTiles; ++s) {
    const int tile = plan.firstTile + s * plan.tileStride;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = tile % rowsOf.segmentTiles * 16 + g + 8 * half;
      int at = -1;
      const float *q = nullptr;
      if (H2o && tile < tiles && r < rowsOf.segmentRows) {
        const int callRow = firstCallRow + r / int(group);
        if (callRow < int(calls.rows)) {
          at = calls.rowPositions[callRow];
          q = calls.queries + callRow * calls.queryStride +
              size_t(kvHead * group + r % group) * D;
        }
      } else if (tile < tiles && r < rowsOf.segmentRows) {
        const int head = tile / rowsOf.segmentTiles;
        at = p.observedPositions[size_t(observedRow) * observe + r];
        if (at >= 0)
          q = window + r * width + size_t(kvHead * group + head) * D;
      }
      rowPosition[s][half] = at;
      if (at >= 0)
        earliestRow = min(earliestRow, at);
#pragma unroll
      for (int k = 0; k < kSteps; ++k)
#pragma unroll
        for (int upper = 0; upper < 2; ++upper) {
          const float2 x = q ? *reinterpret_cast<const float2 *>(
                                   q + 16 * k + 2 * t + 8 * upper)
                             : make_float2(0.0f, 0.0f);
          Bf16Mma<D>::split(x.x * queryScale, x.y * queryScale,
                            aHi[s][k][half + 2 * upper],
                            aLo[s][k][half + 2 * upper]);
        }
      float m = -INFINITY, sum = 0;
      if constexpr (Votes) {
        // The row's maximum and sum over the whole sequence; tiles past
        // its length made none.
        const int made =
            (length + int(kEvictScoreTile) - 1) / int(kEvictScoreTile);
        const int at = 16 * tile + g + 8 * half;
        for (int u = 0; u < made && tile < tiles; ++u)
          m = fmaxf(m, partials[u * padded + at].x);
        for (int u = 0; u < made && m != -INFINITY; ++u) {
          const float2 part = partials[u * padded + at];
          if (part.x != -INFINITY)
            sum += part.y * exp2f(part.x - m);
        }
        sum = sum > 0 && rowPosition[s][half] >= 0 ? 1.0f / sum : 0.0f;
        // A row that sees nothing weighs nothing; a finite maximum keeps
        // exp2f() of its logits (-inf, or 0 for padding) a number.
        if (m == -INFINITY)
          m = 0;
      }
      rowMax[s][half] = m;
      rowSum[s][half] = sum;
    }
  }
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2)
    earliestRow =
        min(earliestRow, __shfl_xor_sync(0xffffffffu, earliestRow, offset));

  const int32_t *table =
      p.cache.pageTables + size_t(tableRow) * p.cache.pageTableStride;
  const int pageSize = int(p.cache.pageSize);
  const int last = min(length, first + int(kEvictScoreTile));
  for (int base = first; base < last; base += kPassKeys) {
    __syncthreads(); // The previous pass's keys and column sums are read.
    // kLanes neighbouring threads a key: its bytes are read in order.
    for (int item = tid; item < kPassKeys * kLanes; item += kThreads) {
      const int k = item / kLanes, keyLane = item % kLanes, i = base + k;
      if (i < last) {
        const int page = i / pageSize, slot = i - page * pageSize;
        const size_t area = size_t(table[page]) * p.cache.kvHeads + kvHead;
        const uint8_t *bytes = p.cache.keys + area * side.areaStride;
        Raw raw;
        raw.blockScales = 0;
        evictkeys::loadChunks<K>(
            bytes, bytes + side.codesOffset + size_t(slot) * side.entryBytes,
            side, keyLane, kLanes, D, raw);
#pragma unroll
        for (int c = 0; c < 2; ++c)
          *reinterpret_cast<uint4 *>(keys +
                                     swizzled<D>(k, keyLane + c * kLanes)) =
              evictkeys::exactChunk<K>(raw, c);
        if (keyLane == 0) {
          if constexpr (kKeyScales)
            keyScale[k] = evictkeys::keyFactor<K>(raw, side);
          keyPosition[k] = p.positions[area * pageSize + slot];
        }
      } else {
        // Past the tile: zeros, seen by no row.
#pragma unroll
        for (int c = 0; c < 2; ++c)
          *reinterpret_cast<uint4 *>(keys +
                                     swizzled<D>(k, keyLane + c * kLanes)) =
              make_uint4(0, 0, 0, 0);
        if (keyLane == 0) {
          if constexpr (kKeyScales)
            keyScale[k] = 0;
          keyPosition[k] = INT_MAX;
        }
      }
    }
    __syncthreads();
    // Whether some entry of the warp's columns comes after one of its rows.
    int latestKey = INT_MIN;
    for (int c = lane; c < 8 * plan.nTiles; c += 32)
      latestKey = max(latestKey, keyPosition[8 * plan.firstN + c]);
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2)
      latestKey =
          max(latestKey, __shfl_xor_sync(0xffffffffu, latestKey, offset));
    const bool masks = latestKey > earliestRow;
#pragma unroll
    for (int s = 0; s < kMaxTiles; ++s) {
      const int tile = plan.firstTile + s * plan.tileStride;
      if (tile >= tiles)
        continue;
      for (int n0 = plan.firstN; n0 < plan.firstN + plan.nTiles;
           n0 += kChunkTiles) {
        // Four n-tiles: four independent accumulator chains.
        float acc[kChunkTiles][4] = {};
#pragma unroll
        for (int k = 0; k < kSteps; ++k)
#pragma unroll
          for (int pair = 0; pair < kChunkTiles / 2; ++pair) {
            // Matrix lane / 8: n-tile n + lane / 16, chunk 2k + lane / 8 % 2.
            const int n = n0 + 2 * pair;
            uint32_t b[4];
            ldmatrix4(b, keys + swizzled<D>(8 * (n + lane / 16) + lane % 8,
                                            2 * k + lane / 8 % 2));
            mmaBf16(acc[2 * pair], aHi[s][k], b[0], b[1]);
            mmaBf16(acc[2 * pair], aLo[s][k], b[0], b[1]);
            mmaBf16(acc[2 * pair + 1], aHi[s][k], b[2], b[3]);
            mmaBf16(acc[2 * pair + 1], aLo[s][k], b[2], b[3]);
          }
        // acc[v][2 half + j]: row g + 8 half, column 8 (n0 + v) + 2t + j,
        // made a logit; -inf where the row does not see the entry.
#pragma unroll
        for (int v = 0; v < kChunkTiles; ++v)
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const int column = 8 * (n0 + v) + 2 * t + j;
            const float scale = kKeyScales ? keyScale[column] : 1.0f;
            const int at = masks ? keyPosition[column] : INT_MIN;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
              float &x = acc[v][2 * half + j];
              x = at <= rowPosition[s][half] ? x * scale : -INFINITY;
            }
          }
        if constexpr (!Votes) {
          float m[2];
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            m[half] = -INFINITY;
#pragma unroll
            for (int v = 0; v < kChunkTiles; ++v)
              m[half] =
                  fmaxf(m[half], fmaxf(acc[v][2 * half], acc[v][2 * half + 1]));
            m[half] = fmaxf(m[half], __shfl_xor_sync(0xffffffffu, m[half], 1));
            m[half] = fmaxf(m[half], __shfl_xor_sync(0xffffffffu, m[half], 2));
          }
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            if (m[half] == -INFINITY)
              continue;
            float &runningMax = rowMax[s][half], &sum = rowSum[s][half];
            if (m[half] > runningMax) {
              sum *= exp2f(runningMax - m[half]);
              runningMax = m[half];
            }
            // exp2f(-inf) is 0: masked entries add nothing.
#pragma unroll
            for (int v = 0; v < kChunkTiles; ++v)
#pragma unroll
              for (int j = 0; j < 2; ++j)
                sum += exp2f(acc[v][2 * half + j] - runningMax);
          }
        } else {
#pragma unroll
          for (int v = 0; v < kChunkTiles; ++v)
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              float weight = 0;
#pragma unroll
              for (int half = 0; half < 2; ++half)
                weight += exp2f(acc[v][2 * half + j] - rowMax[s][half]) *
                          rowSum[s][half];
              weight += __shfl_xor_sync(0xffffffffu, weight, 4);
              weight += __shfl_xor_sync(0xffffffffu, weight, 8);
              weight += __shfl_xor_sync(0xffffffffu, weight, 16);
              if (g == 0)
                columnSums[tile][8 * (n0 + v) + 2 * t + j] = weight;
            }
        }
      }
    }
    if constexpr (Votes) {
      __syncthreads();
      const int count = min(kPassKeys, last - base);
      for (int task = tid; task < rowsOf.segments * kPassKeys;
           task += kThreads) {
        const int segment = task / kPassKeys, key = task % kPassKeys;
        if (key >= count)
          continue;
        float vote = 0;
        for (int u = 0; u < rowsOf.segmentTiles; ++u)
          vote += columnSums[segment * rowsOf.segmentTiles + u][key];
        const int i = base + key;
        if constexpr (H2o) {
          // The group's weights of the entry, added to its mass.
          const int page = i / pageSize;
          if (vote > 0)
            atomicAdd(p.mass +
                          (size_t(table[page]) * p.cache.kvHeads + kvHead) *
                              pageSize +
                          (i - page * pageSize),
                      vote);
        } else {
          w.votes[(row * group + segment) * p.maxLength + i] = vote;
        }
      }
    }
  }
  if constexpr (!Votes) {
    // Each row's state over the tile: the quad's sums, then the warps
    // sharing its m-tile joined, in order.
#pragma unroll
    for (int s = 0; s < kMaxTiles; ++s)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float sum = rowSum[s][half];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        if (t == 0)
          rowStates[warp][s][g + 8 * half] = make_float2(rowMax[s][half], sum);
      }
    __syncthreads();
    float2 *out = w.partials + (row * scoreTiles + blockIdx.x) * padded;
    for (int r = tid; r < padded; r += kThreads) {
      const int tile = r / 16, s = tile / plan.tileStride;
      const int firstWarp = tile % plan.tileStride * plan.share;
      float m = -INFINITY;
      for (int u = 0; u < plan.share; ++u)
        m = fmaxf(m, rowStates[firstWarp + u][s][r % 16].x);
      float sum = 0;
      for (int u = 0; u < plan.share && m != -INFINITY; ++u) {
        const float2 state = rowStates[firstWarp + u][s][r % 16];
        if (state.x != -INFINITY)
          sum += state.y * exp2f(state.x - m);
      }
      out[r] = make_float2(m, sum);
    }
  }
}

/// Each entry's score: per query head of the group the largest of the
/// votes within kernel / 2 entries of it (the sequence's ends clip the
/// window), summed over the heads.
__global__ void __launch_bounds__(kThreads)
    poolKernel(EvictLaunch p, EvictWorkspace w) {
  const EvictSequence s = p.sequences[blockIdx.z];
  const size_t row = size_t(blockIdx.z) * p.cache.kvHeads + blockIdx.y;
  const int group = int(p.qHeads / p.cache.kvHeads), half = int(p.kernel / 2);
  const int first = int(blockIdx.x * kEvictScoreTile);
  const int last = min(s.length, first + int(kEvictScoreTile));
  for (int i = first + int(threadIdx.x); i < last; i += kThreads) {
    const int from = max(0, i - half), to = min(s.length - 1, i + half);
    float score = 0;
    for (int h = 0; h < group; ++h) {
      const float *votes = w.votes + (row * group + h) * p.maxLength;
      float best = votes[from];
      for (int j = from + 1; j <= to; ++j)
        best = fmaxf(best, votes[j]);
      score += best;
    }
    w.scores[row * p.maxLength + i] = score;
  }
}

__global__ void __launch_bounds__(kThreads)
    recordKernel(const float *q, uint64_t qStride, uint32_t qWidth,
                 const int32_t *positions, const int32_t *ringRows,
                 uint32_t observe, float *ring, int32_t *ringPositions) {
  const uint32_t r = blockIdx.x;
  const int32_t ringRow = ringRows[r];
  if (ringRow < 0)
    return;
  const int32_t position = positions[r];
  const size_t place = size_t(ringRow) * observe + uint32_t(position) % observe;
  for (uint32_t i = threadIdx.x; i < qWidth; i += kThreads)
    ring[place * qWidth + i] = q[r * qStride + i];
  if (threadIdx.x == 0)
    ringPositions[place] = position;
}

/// The partials launch, then the votes (SnapKV) or the mass (H2O).
template <Kind K, int D, bool H2o>
void launchSoftmax(const EvictLaunch &p, const EvictWorkspace &w,
                   const H2oRows &calls, const dim3 &grid,
                   cudaStream_t stream) {
  snapKvKernel<K, D, false, H2o><<<grid, kThreads, 0, stream>>>(p, w, calls);
  snapKvKernel<K, D, true, H2o><<<grid, kThreads, 0, stream>>>(p, w, calls);
}

template <bool H2o, int D>
void launchByKind(const EvictLaunch &p, const EvictWorkspace &w,
                  const H2oRows &calls, const dim3 &grid, cudaStream_t stream) {
  switch (p.cache.key.kind) {
  case Kind::Bf16:
    return launchSoftmax<Kind::Bf16, D, H2o>(p, w, calls, grid, stream);
  case Kind::Fp8E4M3:
    return launchSoftmax<Kind::Fp8E4M3, D, H2o>(p, w, calls, grid, stream);
  default:
    return launchSoftmax<Kind::Nvfp4, D, H2o>(p, w, calls, grid, stream);
  }
}

/// Launches for the head dimension, which snapKvFits() has admitted.
template <bool H2o>
Status launchSoftmaxes(const EvictLaunch &p, const EvictWorkspace &w,
                       const H2oRows &calls, const dim3 &grid,
                       cudaStream_t stream) {
  if (p.cache.headDim == 64)
    launchByKind<H2o, 64>(p, w, calls, grid, stream);
  else
    launchByKind<H2o, 128>(p, w, calls, grid, stream);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed(H2o ? "launching H2O's attention weights"
                          : "launching SnapKV's scores",
                      e);
  return Status::ok();
}

} // namespace

Status snapKvFits(uint32_t group, uint32_t observe, uint32_t headDim) {
  if (headDim != 64 && headDim != 128)
    return Status::error("SnapKV and H2O on the GPU take heads of 64 or 128 "
                         "coordinates, not " +
                         std::to_string(headDim) +
                         "; run them on the cpu backend");
  // Each query head's window padded to whole tiles of 16 rows.
  const uint64_t tiles = snapKvPaddedRows(group, observe) / 16;
  const uint64_t most = uint64_t(blockTiles(headDim));
  if (observe > 0 && tiles <= most)
    return Status::ok();
  return Status::error(
      "SnapKV on the GPU holds a KV head's observed query rows (" +
      std::to_string(group) + " heads x " + std::to_string(observe) +
      " queries, each head's padded to whole tiles of 16 rows) in at most " +
      std::to_string(most) + " tiles for heads of " + std::to_string(headDim) +
      " coordinates; observe fewer queries, or run it on the cpu backend");
}

Status h2oFits(uint32_t group, uint32_t headDim) {
  KVRT_RETURN_IF_ERROR(snapKvFits(1, 1, headDim)); // The head dimension.
  // A row's group of query heads in the block's m-tiles at least.
  const uint32_t most = 16 * uint32_t(blockTiles(headDim));
  if (group <= most)
    return Status::ok();
  return Status::error("H2O on the GPU holds a row's query heads of one KV "
                       "head as at most " +
                       std::to_string(most) + " rows for heads of " +
                       std::to_string(headDim) + " coordinates, not " +
                       std::to_string(group) + "; run it on the cpu backend");
}

Status scoreSnapKv(const EvictLaunch &p, const EvictWorkspace &w,
                   cudaStream_t stream) {
  const uint32_t group = p.qHeads / p.cache.kvHeads;
  KVRT_RETURN_IF_ERROR(snapKvFits(group, p.observe, p.cache.headDim));
  const dim3 grid((p.maxLength + kEvictScoreTile - 1) / kEvictScoreTile,
                  p.cache.kvHeads, p.count);
  KVRT_RETURN_IF_ERROR(launchSoftmaxes<false>(p, w, {}, grid, stream));
  poolKernel<<<grid, kThreads, 0, stream>>>(p, w);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching SnapKV's scores", e);
  return Status::ok();
}

namespace {
/// H2O's blocks: runs of h2oRowsPerBlock() rows, per tile and KV head.
dim3 h2oGrid(const EvictLaunch &p, const H2oRows &calls) {
  const uint32_t group = p.qHeads / p.cache.kvHeads;
  const uint32_t perBlock = uint32_t(h2oRowsPerBlock(group, p.cache.headDim));
  return dim3((calls.maxLength + kEvictScoreTile - 1) / kEvictScoreTile,
              p.cache.kvHeads, (calls.rows + perBlock - 1) / perBlock);
}
} // namespace

size_t h2oPartialsBytes(const EvictLaunch &p, const H2oRows &calls) {
  if (!h2oFits(p.qHeads / p.cache.kvHeads, p.cache.headDim).isOk())
    return 0; // accumulateH2o() refuses it.
  const dim3 grid = h2oGrid(p, calls);
  const RowLayout rows(p.qHeads / p.cache.kvHeads, 1, p.cache.headDim, true);
  return size_t(grid.x) * grid.y * grid.z * 16 * rows.tiles() * sizeof(float2);
}

Status accumulateH2o(const EvictLaunch &p, const H2oRows &calls,
                     float2 *partials, cudaStream_t stream) {
  if (!calls.rows)
    return Status::ok();
  KVRT_RETURN_IF_ERROR(h2oFits(p.qHeads / p.cache.kvHeads, p.cache.headDim));
  EvictWorkspace w;
  w.partials = partials;
  return launchSoftmaxes<true>(p, w, calls, h2oGrid(p, calls), stream);
}

Status recordObserved(const float *q, uint64_t qStride, uint32_t qWidth,
                      uint32_t rows, const int32_t *positions,
                      const int32_t *ringRows, uint32_t observe, float *ring,
                      int32_t *ringPositions, cudaStream_t stream) {
  if (!rows)
    return Status::ok();
  recordKernel<<<rows, kThreads, 0, stream>>>(
      q, qStride, qWidth, positions, ringRows, observe, ring, ringPositions);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("recording the observed queries", e);
  return Status::ok();
}

} // namespace kvrt::cuda
