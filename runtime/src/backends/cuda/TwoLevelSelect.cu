//===- TwoLevelSelect.cu - Two-level selection of cached entries ----------===//
//
// Levels 1 and 2 of SparseSelect.h for the whole batch, two launches each.
// The first, grid (chunks, kvHeads, batch), scores: each thread block takes
// one chunk of a row's items (selectable blocks, then candidate entries)
// for every query head of the group and writes the fp32 scores to the
// workspace, so the reads of a long row spread over many SMs. The second,
// grid (kvHeads, batch), ranks: one block of kRankThreads threads a row
// ranks all of its items and keeps the best (BlockTopK.cuh). (The last
// scoring block of a row to arrive used to rank, with its 256 threads:
// 25 us of level 2's 53 us for 8192 candidates, 2026-12-06; four times the
// threads make each pass over the items a quarter as long.)
//
// Level 1 bounds blocks on the tensor cores (selectBlocksKernel()), and
// rotates polar keys' queries into their domain on the way. Level 2 over
// fp8 and polar keys streams runs of candidates by bulk copies to
// tensor-core dots (selectRunEntriesKernel()); over bf16 and nvfp4 keys
// lanes work in eights, four items a warp: lane `part` of an eight reads
// its share of an entry's keys as GatherEntries.cuh reads them, decoded,
// owns those channels for every query head, and the eight sum with
// reduceScatter().
// Quest's bound is sum_d q_d (q_d >= 0 ? hi_d : lo_d), which is
// max(q_d lo_d, q_d hi_d) exactly. Queries are not scaled: the ranks are
// those of sparse/TwoLevel.cpp, at fp32 accuracy (the tensor cores' sums
// in their own order).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/AsyncCopy.cuh"
#include "runtime/src/backends/cuda/BlockTopK.cuh"
#include "runtime/src/backends/cuda/DependentLaunch.cuh"
#include "runtime/src/backends/cuda/GatherEntries.cuh"
#include "runtime/src/backends/cuda/MmaFragments.cuh"
#include "runtime/src/backends/cuda/Nvfp4Fragments.cuh"
#include "runtime/src/backends/cuda/RotateRows.cuh"
#include "runtime/src/backends/cuda/SparseKernels.h"
#include "runtime/src/backends/cuda/SplitKernel.cuh"
#include "runtime/src/backends/cuda/TensorCoreOps.cuh"
#include "runtime/src/sparse/BoundCodes.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

namespace kvrt::cuda {
namespace {

constexpr int kSelectWarps = int(kSelectThreads) / 32;

/// Query head g of KV head `kvHead`'s group in row b, the channels the
/// lane owns in entries of form `Rows`.
template <typename Rows, int D, int G>
__device__ void loadQueries(const SparseKernelParams &p, int b, int kvHead,
                            int part, float (&q)[G][D / 8]) {
  const int group = int(p.group);
  const float *rowQ = p.q + (size_t(b) * p.qHeads + size_t(kvHead) * group) * D;
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      q[g][i] = g < group ? rowQ[g * D + Rows::dim(part, i)] : 0.0f;
}

/// Calls fn(i, v) for the thread's items i in [first, n) (i = first + tid,
/// first + tid + Threads, ...), v[g] the score of query head g < group in
/// `scores` (one row of `stride` floats per head, written by the scoring
/// launch; -inf for g >= group). Four items' loads go out before any is
/// used.
template <int G, int Threads, typename Fn>
__device__ void forEachItem(const float *scores, size_t stride, int first,
                            int n, int group, const Fn &fn) {
  constexpr int kBatch = 4;
  for (int base = first + int(threadIdx.x); base < n;
       base += kBatch * Threads) {
    float v[kBatch][G];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
#pragma unroll
      for (int g = 0; g < G; ++g)
        v[u][g] = __ldcg(scores + min(g, group - 1) * stride +
                         min(base + u * Threads, n - 1));
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
#pragma unroll
      for (int g = 0; g < G; ++g)
        v[u][g] = g < group ? v[u][g] : -INFINITY;
      if (base + u * Threads < n)
        fn(base + u * Threads, v[u]);
    }
  }
}

/// Items whose scores a ranking thread keeps in registers (up to 32
/// scores; 16 for groups of 8, where 32 spilled) from finding each head's
/// best to ranking against it, so that a row of up to Threads times as
/// many items is read from memory once, not twice (2026-12-06: the second
/// read was a fifth of level 2's ranking).
template <int G> __host__ __device__ constexpr int heldItems() {
  constexpr int kScores = G >= 8 ? 16 : 32;
  return kScores / G < 1 ? 1 : kScores / G > 8 ? 8 : kScores / G;
}

/// The thread's first Held items' scores, items tid + u Threads (past the
/// end item n - 1's again, which changes no maximum), -inf for heads g >=
/// group; n >= 1.
template <int G, int Threads, int Held>
__device__ void loadHeldItems(const float *scores, size_t stride, int n,
                              int group, float (&held)[Held][G]) {
#pragma unroll
  for (int u = 0; u < Held; ++u)
#pragma unroll
    for (int g = 0; g < G; ++g)
      held[u][g] = __ldcg(scores + min(g, group - 1) * stride +
                          min(int(threadIdx.x) + u * Threads, n - 1));
#pragma unroll
  for (int u = 0; u < Held; ++u)
#pragma unroll
    for (int g = 0; g < G; ++g)
      held[u][g] = g < group ? held[u][g] : -INFINITY;
}

/// The best score of each query head over items [0, n) of `scores`, the
/// thread's first Held of them in `held`.
template <int G, int Threads, int Held>
__device__ void bestPerHead(const float (&held)[Held][G], const float *scores,
                            size_t stride, int n, int group, float (&best)[G],
                            float (&perWarp)[Threads / 32][G]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float m[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = held[0][g];
#pragma unroll
    for (int u = 1; u < Held; ++u)
      m[g] = fmaxf(m[g], held[u][g]);
  }
  forEachItem<G, Threads>(scores, stride, Held * Threads, n, group,
                          [&](int, const float (&v)[G]) {
#pragma unroll
                            for (int g = 0; g < G; ++g)
                              m[g] = fmaxf(m[g], v[g]);
                          });
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = warpMax(m[g]);
    if (lane == 0)
      perWarp[warp][g] = m[g];
  }
  __syncthreads();
  // Every warp reduces the warps' maxima itself, lane w taking warp w's:
  // a thread reading all of them was Threads / 32 shared loads a head.
  static_assert(Threads <= 32 * 32, "a lane a warp");
#pragma unroll
  for (int g = 0; g < G; ++g)
    best[g] = warpMax(lane < Threads / 32 ? perWarp[lane][g] : -INFINITY);
}

/// max_h (v[h] - best[h]): a rank as sparse/TwoLevel.cpp ranks (absent
/// heads' -inf drop out).
template <int G>
__device__ float rankAcrossHeads(const float (&v)[G], const float (&best)[G]) {
  float rank = -INFINITY;
#pragma unroll
  for (int g = 0; g < G; ++g)
    rank = fmaxf(rank, v[g] - best[g]);
  return rank;
}

/// The first of the four consecutive coordinates of a block's summary
/// (2D codes) lane t holds in level 1's k-step j: the warp's load m reads
/// 16-byte chunk 4m + t of each block, 64 contiguous codes of it (k-steps
/// 4m to 4m + 3).
__device__ __forceinline__ int summaryDim(int j, int t) {
  return 64 * (j / 4) + 16 * t + 4 * (j % 4);
}

/// Level 1's queries are scaled by 2^kQueryShift and its codes widened
/// to bf16 times 2^-120 (boundCodesAsBf16()), so every product of the MMA
/// is a normal fp32 number for queries below 2^63; a block's sums are
/// scaled back by 2^(exponent + 120 - kQueryShift), within float's range
/// for every exponent of sparse/BoundCodes.h.
constexpr int kQueryShift = 64;

/// Codes c0 and c1 (bytes `first` and first + 1 of `codes`) as the bf16
/// pair (c0, c1) of their values times 2^-120: the sign moves to bit 15,
/// the exponent and mantissa fields to bits 7-10 and 4-6, so E4M3's
/// exponent bias 7 reads as bf16's 127 (exact: no code is subnormal).
__device__ __forceinline__ uint32_t boundCodesAsBf16(uint32_t codes,
                                                     int first) {
  // Byte c0 to bits 8-15 and c1 to bits 24-31, zeros below each.
  const uint32_t t = __byte_perm(codes, 0, first == 0 ? 0x1404u : 0x3424u);
  return ((t & 0x7f007f00u) >> 4) | (t & 0x80008000u);
}

/// A's registers for level 1 (selectBlocksKernel()): for each 16-row tile
/// of (term, head) rows, k-step and lane, the lane's four registers. Row r
/// is term r / G of head r % G's query, split into three bf16 terms (hi +
/// mid + lo carries all 24 bits of an fp32 number); coordinate c < D takes
/// the query's negative part (against the lower bounds), D + c its positive
/// part (against the upper ones). Every thread of the block takes part.
template <int D, int G, int Tiles, int Steps>
__device__ void boundQueryTiles(const float *rowQ, int group,
                                uint4 (&tiles)[Tiles][Steps][32]) {
  // One bf16 of row r's coordinate c (0 past the rows and the group).
  auto value = [&](int r, int c) -> float {
    const int term = r / G, head = r % G;
    if (term >= 3 || head >= group)
      return 0.0f;
    const float x = rowQ[head * D + c % D] * sparse::powerOfTwo(kQueryShift);
    const float part = (c < D) == (x < 0.0f) ? x : 0.0f;
    const float hi = __bfloat162float(__float2bfloat16_rn(part));
    const float mid = __bfloat162float(__float2bfloat16_rn(part - hi));
    return term == 0 ? hi : term == 1 ? mid : part - hi - mid;
  };
  for (int i = threadIdx.x; i < Tiles * Steps * 32; i += blockDim.x) {
    const int tile = i / (Steps * 32), j = i / 32 % Steps, lane = i % 32;
    const int r = 16 * tile + lane / 4;
    const int c = summaryDim(j, lane % 4);
    tiles[tile][j][lane] =
        make_uint4(packBf16(value(r, c), value(r, c + 1)),
                   packBf16(value(r + 8, c), value(r + 8, c + 1)),
                   packBf16(value(r, c + 2), value(r, c + 3)),
                   packBf16(value(r + 8, c + 2), value(r + 8, c + 3)));
  }
}

/// Level 1 on the tensor cores. A block's summary is 2D codes, its lower
/// bounds then its upper ones, and Quest's bound sum_d q_d (q_d >= 0 ? hi_d
/// : lo_d) is that vector's dot with the query's negative part then its
/// positive part (boundQueryTiles()) times the block's 2^exponent: one
/// m16n8k16 bf16 MMA a k-step takes eight blocks (their codes widened to
/// bf16) against every (term, head) row of A, a dot's coordinates in
/// summaryDim()'s order. A warp loads 16 blocks before its first MMA, and
/// each step's MMAs run while the next 16 blocks' loads are in flight
/// (2026-12-07: the bounds 22.0 -> 20 us at B = 8, L = 128K); past the end
/// it reads the last block again and drops the bounds. The three terms'
/// sums add up in shared memory.
template <int D, int G>
__global__ void __launch_bounds__(kSelectThreads, 2)
    selectBlocksKernel(const SparseKernelParams p) {
  constexpr int kSteps = 2 * D / 16, kTiles = (3 * G + 15) / 16;
  constexpr int kLoads = kSteps / 4, kGroups = 2, kWarpBlocks = 8 * kGroups;
  awaitPreviousKernel();
  // The chunk's pages.
  extern __shared__ __align__(16) int32_t pageOf[];
  __shared__ uint4 queryTiles[kTiles][kSteps][32];
  __shared__ float sums[kSelectWarps][16 * kTiles][kWarpBlocks + 1];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int kvHead = blockIdx.y, b = blockIdx.z;
  const int row = b * int(p.kvHeads) + kvHead;
  const int group = int(p.group), blockSize = int(p.block);
  const int selectable = max(p.lengths[b] - 1, 0);
  const int blocks = (selectable + blockSize - 1) / blockSize;
  const int chunkBlocks = int(p.boundChunkBlocks);
  const int chunks = (blocks + chunkBlocks - 1) / chunkBlocks;
  const bool boundsChunk =
      selectable > int(p.topTokens) && int(blockIdx.x) < chunks;
  if (!boundsChunk && blockIdx.x != 0)
    return;
  // The group's queries; polar keys': rotated into their domain here, and
  // left by block 0 of each row for level 2 and the attention (where a
  // launch of their own cost 2-4 us a step at B = 8, L = 128K).
  const size_t firstQuery = (size_t(b) * p.qHeads + size_t(kvHead) * group) * D;
  const float *groupQ = p.q + firstQuery;
  __shared__ float rotated[G * D];
  if (p.rotatedQueries) {
    for (int e = tid; e < group * D; e += kSelectThreads)
      rotated[e] = p.queries[firstQuery + e];
    rotateRowsInShared(rotated, uint32_t(group), D, p.querySigns, false, tid,
                       kSelectThreads, [] { __syncthreads(); });
    if (blockIdx.x == 0)
      for (int e = tid; e < group * D; e += kSelectThreads)
        p.rotatedQueries[firstQuery + e] = rotated[e];
    groupQ = rotated;
  }
  if (selectable <= int(p.topTokens)) {
    if (blockIdx.x == 0 && tid == 0) {
      p.selection.blockCounts[row] = 0;
      if (p.hostBlockCounts)
        p.hostBlockCounts[row] = 0;
    }
    return;
  }
  if (!boundsChunk)
    return;
  const int first = blockIdx.x * chunkBlocks;
  const int end = min(blocks, first + chunkBlocks);

  // Lane (g, t)'s share of blocks base + g and base + 8 + g (past the end
  // the last block again, its bounds dropped) and their exponents, page(j)
  // the page of block j.
  uint4 loaded[kGroups][kLoads];
  int8_t loadedExponent[kGroups];
  auto loadChunk = [&](int base, auto page) {
#pragma unroll
    for (int n = 0; n < kGroups; ++n) {
      const int j = min(base + 8 * n + g, end - 1);
      const size_t summary =
          (size_t(page(j)) * p.kvHeads + kvHead) * p.blocksPerPage +
          j * blockSize % int(p.pageSize) / blockSize;
      const uint4 *codes =
          reinterpret_cast<const uint4 *>(p.summaries.codes + summary * 2 * D);
#pragma unroll
      for (int m = 0; m < kLoads; ++m)
        loaded[n][m] = codes[4 * m + t];
      loadedExponent[n] = p.summaries.exponents[summary];
    }
  };
  // The warp's first blocks are on their way while the block sets up, their
  // pages read from the table; later ones from the chunk's pages, one
  // lookup per block, so that the loop waits for one round trip a step.
  const int32_t *table = p.pageTables + size_t(b) * p.pageTableStride;
  const int firstBase = first + warp * kWarpBlocks;
  if (firstBase < end)
    loadChunk(firstBase,
              [&](int j) { return table[j * blockSize / int(p.pageSize)]; });
  for (int j = first + tid; j < end; j += kSelectThreads)
    pageOf[j - first] = table[j * blockSize / int(p.pageSize)];
  boundQueryTiles<D, G>(groupQ, group, queryTiles);
  __syncthreads();

  float *bounds = p.bounds + size_t(row) * group * p.maxBlocks;
  constexpr int kStride = kSelectWarps * kWarpBlocks;
  for (int base = firstBase; base < end; base += kStride) {
    // This step's blocks, then the next step's loads, out before this
    // step's MMAs.
    uint4 chunk[kGroups][kLoads];
    int8_t exponent[kGroups];
#pragma unroll
    for (int n = 0; n < kGroups; ++n) {
#pragma unroll
      for (int m = 0; m < kLoads; ++m)
        chunk[n][m] = loaded[n][m];
      exponent[n] = loadedExponent[n];
    }
    if (base + kStride < end)
      loadChunk(base + kStride, [&](int j) { return pageOf[j - first]; });
    float acc[kGroups][kTiles][4] = {};
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
        const uint4 a4 = queryTiles[tile][j][lane];
        const uint32_t a[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
        for (int n = 0; n < kGroups; ++n) {
          const uint4 &c = chunk[n][j / 4];
          const uint32_t codes = j % 4 == 0   ? c.x
                                 : j % 4 == 1 ? c.y
                                 : j % 4 == 2 ? c.z
                                              : c.w;
          mmaBf16(acc[n][tile], a, boundCodesAsBf16(codes, 0),
                  boundCodesAsBf16(codes, 2));
        }
      }
    }
    // Each column's block exponent, from the lanes that loaded it.
#pragma unroll
    for (int n = 0; n < kGroups; ++n) {
      const float scale = sparse::powerOfTwo(exponent[n] + 120 - kQueryShift);
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float column = __shfl_sync(0xffffffffu, scale, 4 * (2 * t + e));
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) {
          acc[n][tile][e] *= column;
          acc[n][tile][2 + e] *= column;
        }
      }
    }
    // Lane (g, t) holds rows g and g + 8 of each tile, blocks 2t and 2t + 1
    // of each eight.
    float (&own)[16 * kTiles][kWarpBlocks + 1] = sums[warp];
#pragma unroll
    for (int n = 0; n < kGroups; ++n)
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          own[16 * tile + g + 8 * (e / 2)][8 * n + 2 * t + e % 2] =
              acc[n][tile][e];
    __syncwarp();
    for (int o = lane; o < G * kWarpBlocks; o += 32) {
      const int head = o / kWarpBlocks, column = o % kWarpBlocks;
      const int j = base + column;
      if (head < group && j < end)
        bounds[size_t(head) * p.maxBlocks + j] = own[head][column] +
                                                 own[G + head][column] +
                                                 own[2 * G + head][column];
    }
    __syncwarp();
  }
}

/// The ranking launches' part, in a block of kRankThreads threads: ranks
/// the `n` items of `scores` ([group][stride] floats) across the heads
/// (those `forced(i)` names first) and calls emit(position, i) for the `k`
/// best (keepBest()).
template <int G, typename Forced, typename Emit>
__device__ void keepBestRanked(const float *scores, size_t stride, int n,
                               int group, int k, const Forced &forced,
                               const Emit &emit) {
  constexpr int kThreads = int(kRankThreads);
  extern __shared__ __align__(16) uint32_t keys[];
  __shared__ TopKShared topK;
  __shared__ float perWarp[kThreads / 32][G];
  constexpr int kHeld = heldItems<G>();
  float held[kHeld][G], best[G];
  // The radix select's first histogram counts the keys as they are made
  // (bestPerHead()'s barrier orders the clearing before the counts).
  for (int i = threadIdx.x; i < 256; i += kThreads)
    topK.histogram[i] = 0;
  loadHeldItems<G, kThreads>(scores, stride, n, group, held);
  bestPerHead<G, kThreads>(held, scores, stride, n, group, best, perWarp);
  auto rank = [&](int i, const float (&v)[G]) {
    const uint32_t key =
        forced(i) ? rankKey(INFINITY) : rankKey(rankAcrossHeads<G>(v, best));
    keys[i] = key;
    atomicAdd(&topK.histogram[key >> 24], 1u);
  };
#pragma unroll
  for (int u = 0; u < kHeld; ++u)
    if (int(threadIdx.x) + u * kThreads < n)
      rank(int(threadIdx.x) + u * kThreads, held[u]);
  forEachItem<G, kThreads>(scores, stride, kHeld * kThreads, n, group, rank);
  __syncthreads();
  keepBest<kThreads>(keys, n, k, topK, emit, /*firstCounted=*/true);
}

/// Ranks the blocks selectBlocksKernel() bounded and keeps the topBlocks
/// best, the first (the attention sink) and the newest always among them;
/// one block a (KV head, row) (short rows are done).
template <int G>
__global__ void __launch_bounds__(kRankThreads)
    rankBlocksKernel(const SparseKernelParams p) {
  awaitPreviousKernel();
  const int row = blockIdx.y * int(p.kvHeads) + blockIdx.x;
  const int selectable = max(p.lengths[blockIdx.y] - 1, 0);
  if (selectable <= int(p.topTokens))
    return;
  const int blocks = (selectable + int(p.block) - 1) / int(p.block);
  const int keep = min(int(p.topBlocks), blocks);
  int32_t *kept = p.selection.blocks + size_t(row) * p.topBlocks;
  int32_t *hostKept =
      p.hostBlocks ? p.hostBlocks + size_t(row) * p.topBlocks : nullptr;
  keepBestRanked<G>(
      p.bounds + size_t(row) * p.group * p.maxBlocks, p.maxBlocks, blocks,
      int(p.group), keep, [&](int j) { return j == 0 || j == blocks - 1; },
      [&](int at, int j) {
        kept[at] = j;
        if (hostKept)
          hostKept[at] = j;
      });
  if (threadIdx.x == 0) {
    p.selection.blockCounts[row] = uint32_t(keep);
    if (p.hostBlockCounts)
      p.hostBlockCounts[row] = uint32_t(keep);
  }
}

/// Level 2's candidates of row `row` (b's KV head): candidate i is entry
/// i % block of the (i / block)-th kept block; only the last kept block
/// can be partial (the newest one).
struct Candidates {
  const int32_t *chosen = nullptr;
  int block = 0, count = 0;
  Candidates() = default;
  /// From the `kept` blocks at `chosen`, of `block` entries each.
  __device__ Candidates(const int32_t *chosen, int kept, int block,
                        int selectable)
      : chosen(chosen), block(block),
        count((kept - 1) * block +
              min(block, selectable - chosen[kept - 1] * block)) {}
  __device__ Candidates(const SparseKernelParams &p, int row, int selectable)
      : Candidates(p.selection.blocks + size_t(row) * p.topBlocks,
                   int(p.selection.blockCounts[row]), int(p.block),
                   selectable) {}
  __device__ int entry(int i) const {
    return chosen[i / block] * block + i % block;
  }
};

/// The row's candidates, and those [first, first + n) a scoring block of
/// level 2 takes. n = 0 where there is nothing to score: the row lists all
/// of its selectable entries or candidates, which this call has done
/// (block 0 counting them).
struct CandidateChunk {
  Candidates candidate;
  int first = 0, n = 0;
};

__device__ CandidateChunk candidateChunk(const SparseKernelParams &p) {
  const int tid = threadIdx.x, threads = int(blockDim.x);
  const int row = blockIdx.z * int(p.kvHeads) + blockIdx.y;
  const int topTokens = int(p.topTokens);
  const int selectable = max(p.lengths[blockIdx.z] - 1, 0);
  int32_t *listed = p.selection.entries + size_t(row) * topTokens;
  const int stride = int(gridDim.x) * threads;
  if (selectable <= topTokens) {
    for (int i = blockIdx.x * threads + tid; i < selectable; i += stride)
      listed[i] = i;
    if (blockIdx.x == 0 && tid == 0) {
      p.selection.entryCounts[row] = uint32_t(selectable);
      p.selection.scored[row] = 0;
    }
    return {};
  }
  CandidateChunk chunk;
  chunk.candidate = Candidates(p, row, selectable);
  const Candidates &candidate = chunk.candidate;
  if (candidate.count <= topTokens) {
    for (int i = blockIdx.x * threads + tid; i < candidate.count; i += stride)
      listed[i] = candidate.entry(i);
    if (blockIdx.x == 0 && tid == 0) {
      p.selection.entryCounts[row] = uint32_t(candidate.count);
      p.selection.scored[row] = 0;
    }
    return {};
  }
  const int chunkSlots = int(p.scoreChunkSlots);
  chunk.first = blockIdx.x * chunkSlots;
  chunk.n =
      max(min(candidate.count, chunk.first + chunkSlots) - chunk.first, 0);
  return chunk;
}

/// Level 2's scores on CUDA cores, for entries of the form `Rows`.
template <typename Rows, int D, int G>
__global__ void __launch_bounds__(kSelectThreads)
    selectEntriesKernel(const SparseKernelParams p) {
  constexpr int kDims = D / 8, kUnroll = 4;
  awaitPreviousKernel();
  // The chunk's entries as (page, slot).
  extern __shared__ __align__(16) int2 rows[];
  // A round of the chunk's kept blocks: entryPage() of each one's page,
  // and where in the page the block starts.
  __shared__ int2 blockAt[kSelectThreads];
  __shared__ float levels[2][16];
  loadLevels<Rows>(p, levels);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int item = lane / 8, part = lane % 8;
  const int kvHead = blockIdx.y, b = blockIdx.z;
  const int row = b * int(p.kvHeads) + kvHead;
  const int group = int(p.group), blockSize = int(p.block);
  const CandidateChunk chunk = candidateChunk(p);
  if (chunk.n == 0)
    return;
  const int first = chunk.first, n = chunk.n;

  // A kept block lies in one page (the block divides the page size): its
  // page (or, offloaded, its slot) and its place there are looked up once
  // for every block of the chunk at a time, not once per entry in rounds
  // of dependent loads.
  const int32_t *table = p.pageTables + size_t(b) * p.pageTableStride;
  const int pageSize = int(p.pageSize);
  for (int round = first / blockSize; round * blockSize < first + n;
       round += int(kSelectThreads)) {
    const int j = round + tid;
    if (j * blockSize < first + n) {
      const int token = chunk.candidate.chosen[j] * blockSize;
      blockAt[tid] = make_int2(
          entryPage(p.slotOf, table[token / pageSize], int(p.kvHeads), kvHead),
          token % pageSize);
    }
    __syncthreads();
    const int end = min(first + n, (round + int(kSelectThreads)) * blockSize);
    for (int i = max(first, round * blockSize) + tid; i < end;
         i += kSelectThreads) {
      const int2 at = blockAt[i / blockSize - round];
      rows[i - first] = make_int2(at.x, at.y + i % blockSize);
    }
    __syncthreads();
  }

  float q[G][kDims];
  loadQueries<Rows, D, G>(p, b, kvHead, part, q);
  const EntryAreas areas =
      entryAreas(p.keys, p.slotKeys, p.keyPageStride, p.keyAreaStride, kvHead);
  float *scores = p.scores + size_t(row) * group * p.maxCandidates;
  for (int base = warp * 4 * kUnroll; base < n;
       base += kSelectWarps * 4 * kUnroll) {
    typename Rows::Raw k[kUnroll];
    gatherEntries<Rows, kUnroll>(areas, p.keyForm, rows, base, item, part, n,
                                 k);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float x[kDims];
      Rows::decode(k[u], levels[0], x);
      float s[G];
#pragma unroll
      for (int g = 0; g < G; ++g)
        s[g] = 0.0f;
#pragma unroll
      for (int i = 0; i < kDims; ++i)
#pragma unroll
        for (int g = 0; g < G; ++g)
          s[g] = fmaf(q[g][i], x[i], s[g]);
      int head;
      const float score = reduceScatter<G>(s, part, head);
      const int r = base + 4 * u + item;
      if (r < n && head < group && part % (8 / G) == 0)
        scores[size_t(head) * p.maxCandidates + first + r] = score;
    }
  }
}

/// Run keys whose codes are exact in f16: one B term, no table in shared
/// memory.
struct ExactF16RunKeys {
  static constexpr int kTerms = 1;
  /// Shared memory words (none) and their setup.
  static constexpr int kSharedWords = 1;
  __device__ __forceinline__ static void setUp(const SparseKernelParams &,
                                               uint32_t *) {}
  /// What fragments() reads a candidate from: its entry, each k-step's
  /// codes where they lie.
  using Lane = const uint8_t *;
  __device__ __forceinline__ static Lane lane(const uint8_t *entry, int) {
    return entry;
  }
};

/// How selectRunEntriesKernel() reads fp8 e4m3 keys: every code is exact in
/// f16, an entry's scale its slot's or its head's f32.
template <int D> struct Fp8RunKeys : ExactF16RunKeys {
  static constexpr SparseEntries kEntries = SparseEntries::Fp8E4M3;
  __device__ __forceinline__ static float unshift(const uint32_t *) {
    return 1.0f;
  }
  /// B's registers of k-step j for lane t: coordinates keyDim(j, t) + 0,
  /// 1 and + 2, 3, as Fp8E4M3Mma reads keys.
  __device__ __forceinline__ static void fragments(const uint8_t *entry, int j,
                                                   int t, const uint32_t *,
                                                   uint32_t (&b)[kTerms][2]) {
    e4m3x4ToF16x2x2(*reinterpret_cast<const uint32_t *>(
                        entry + Fp8E4M3Mma<D>::keyDim(j, t)),
                    b[0][0], b[0][1]);
  }
  __device__ __forceinline__ static float
  scale(const uint8_t *entry, const EntryForm &form, float headScale) {
    return form.slotScales
               ? *reinterpret_cast<const float *>(entry + form.scaleOffset)
               : headScale;
  }
  __device__ __forceinline__ static float headScale(const uint8_t *codes,
                                                    const EntryForm &form) {
    return form.slotScales
               ? 0.0f
               : *reinterpret_cast<const float *>(codes + form.scaleOffset);
  }
};

/// How selectRunEntriesKernel() reads polar keys of Bits bits: a level is
/// an f32 number, so B takes it as two terms, f16 hi and lo halves of the
/// level times 2^shift (shift puts the codebook's largest magnitude just
/// under 2^14, so that lo keeps its bits), and the sum is scaled back. A
/// table in shared memory gives B's registers for a group of codes in one
/// load: two codes' hi halves and their lo halves (4 and 3 bits: a byte or
/// 6 bits of codes, 8 bytes), or four codes' (2 bits: a byte, 16 bytes).
/// Each of kCopies copies serves the lanes lane % kCopies, so that a
/// warp's lookups meet in no bank: one lookup of a byte where four
/// lookups of a code and four PRMTs were (2026-12-06). The entry's f16
/// scale follows its codes (form.scaleOffset).
template <int D, int Bits> struct PolarRunKeys {
  static constexpr SparseEntries kEntries = Bits == 2   ? SparseEntries::Polar2
                                            : Bits == 3 ? SparseEntries::Polar3
                                                        : SparseEntries::Polar4;
  static constexpr int kTerms = 2;
  static constexpr int kGroupCodes = Bits == 2 ? 4 : 2;
  static constexpr int kGroupBits = Bits * kGroupCodes;
  static constexpr int kCopies = Bits == 2 ? 8 : 16;
  /// Words of the table, then of each code's hi | lo << 16 and of the
  /// factor that scales a sum back.
  static constexpr int kTableWords = (1 << kGroupBits) * kGroupCodes * kCopies;
  static constexpr int kSharedWords = kTableWords + 17;

  /// Every thread of the block calls (it waits at a barrier); the table is
  /// ready after the caller's next one.
  __device__ __forceinline__ static void setUp(const SparseKernelParams &p,
                                               uint32_t *shared) {
    uint32_t *halves = shared + kTableWords;
    if (threadIdx.x < 16) {
      float most = 0.0f, level = 0.0f;
#pragma unroll
      for (int c = 0; c < 16; ++c) {
        most = fmaxf(most, fabsf(p.keyForm.levels[c]));
        if (c == int(threadIdx.x))
          level = p.keyForm.levels[c];
      }
      int exponent;
      frexpf(most, &exponent);
      const float x = ldexpf(level, 14 - exponent);
      const __half hi = __float2half_rn(x);
      const __half lo = __float2half_rn(x - __half2float(hi));
      halves[threadIdx.x] =
          uint32_t(__half_as_ushort(hi)) | uint32_t(__half_as_ushort(lo)) << 16;
      if (threadIdx.x == 0)
        halves[16] = __float_as_uint(ldexpf(1.0f, exponent - 14));
    }
    __syncthreads();
    constexpr uint32_t kMask = (1u << Bits) - 1;
    for (int i = threadIdx.x; i < (1 << kGroupBits) * kCopies;
         i += blockDim.x) {
      const uint32_t group = uint32_t(i) / kCopies;
      uint32_t level[kGroupCodes];
#pragma unroll
      for (int c = 0; c < kGroupCodes; ++c)
        level[c] = halves[group >> (Bits * c) & kMask];
      uint32_t *entry = shared + i * kGroupCodes;
      if constexpr (kGroupCodes == 2) {
        *reinterpret_cast<uint2 *>(entry) =
            make_uint2(permute(level[0], level[1], 0x5410),
                       permute(level[0], level[1], 0x7632));
      } else {
        *reinterpret_cast<uint4 *>(entry) =
            make_uint4(permute(level[0], level[1], 0x5410),
                       permute(level[2], level[3], 0x5410),
                       permute(level[0], level[1], 0x7632),
                       permute(level[2], level[3], 0x7632));
      }
    }
  }
  __device__ __forceinline__ static float unshift(const uint32_t *shared) {
    return __uint_as_float(shared[kTableWords + 16]);
  }
  /// Lane t's codes of a candidate: those of coordinates keyDim(0, t) ..
  /// keyDim(0, t) + D / 4 - 1 (keyDim(j, t) = 4 (t D / 16 + j)), kLaneBits
  /// bits from byte kLaneBits t / 8 of the entry, read at once as aligned
  /// 4-byte words (an entry is only 2-byte aligned) and shifted into
  /// place; one word of zeros after them. Each k-step read its own 2-byte
  /// halves before, polar-3's twice over: 14 loads of 27 wavefronts a warp
  /// per eight candidates, the scorer's L1 at 79% (ncu, H100, 2026-12-07).
  static constexpr int kLaneBits = D * Bits / 4;
  static constexpr int kLaneWords = (kLaneBits + 31) / 32;
  struct Lane {
    uint32_t words[kLaneWords + 1];
  };
  __device__ __forceinline__ static Lane lane(const uint8_t *entry, int t) {
    // Pointer arithmetic, not integers, so that the loads stay LDS.
    const uint8_t *at = entry + kLaneBits / 8 * t;
    const uint32_t misaligned = reinterpret_cast<uintptr_t>(at) & 2;
    const uint32_t *aligned =
        reinterpret_cast<const uint32_t *>(at - misaligned);
    const uint32_t shift = misaligned * 8;
    // Enough words for the lane's bits 16 bits past a word boundary.
    constexpr int kRead = (kLaneBits + 16 + 31) / 32;
    uint32_t read[kRead + 1];
#pragma unroll
    for (int i = 0; i < kRead; ++i)
      read[i] = aligned[i];
    read[kRead] = 0;
    Lane lane;
#pragma unroll
    for (int i = 0; i < kLaneWords; ++i)
      lane.words[i] = __funnelshift_r(read[i], read[i + 1], shift);
    lane.words[kLaneWords] = 0;
    return lane;
  }
  /// The lane's bits from bit `from` on as one word (zeros below bit 0
  /// where `from` is negative); `from` is a constant of the unrolled
  /// k-steps.
  __device__ __forceinline__ static uint32_t bitsFrom(const Lane &lane,
                                                      int from) {
    if (from < 0)
      return lane.words[0] << -from;
    return __funnelshift_r(lane.words[from / 32], lane.words[from / 32 + 1],
                           uint32_t(from % 32));
  }
  /// The four codes of coordinates keyDim(j, t) + 0 .. 3 (4 Bits bits from
  /// bit 4 Bits j of the lane's), their hi halves as B's first term, lo as
  /// its second, from this lane's copy of the table. Entry g of copy c is
  /// at byte 128 g + 16 c (2 bits) or 8 c (else) of the table: a group's
  /// codes are taken from the lane's bits already at bit 7 (one funnel
  /// shift), masked and or-ed with the copy's offset (one LOP3), where a
  /// shift of the k-step's codes and a shift a lookup were: a warp's loop
  /// over eight candidates issues 153 instructions at 3 bits instead of
  /// 162, and polar-3's level 2 took 50.2-50.5 us instead of 51.8-51.9
  /// (H100, B = 8, L = 128K, 2026-12-07). The table's base is still
  /// added a lookup: on sm_90 a shared address carries the CTA's cluster
  /// rank, so ptxas keeps it in a register.
  __device__ __forceinline__ static void fragments(const Lane &lane, int j, int,
                                                   const uint32_t *table,
                                                   uint32_t (&b)[kTerms][2]) {
    const int bit = 4 * Bits * j;
    static_assert(kCopies * kGroupCodes * 4 == 128, "entries 128 bytes apart");
    constexpr uint32_t kEntries = ((1u << kGroupBits) - 1) << 7;
    const uint32_t copy = threadIdx.x % kCopies * kGroupCodes * 4;
    auto entryAt = [&](int groupBit) {
      return sharedAddress(table) +
             ((bitsFrom(lane, groupBit - 7) & kEntries) | copy);
    };
    if constexpr (kGroupCodes == 4) {
      asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                   : "=r"(b[0][0]), "=r"(b[0][1]), "=r"(b[1][0]), "=r"(b[1][1])
                   : "r"(entryAt(bit)));
    } else {
      asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];"
                   : "=r"(b[0][0]), "=r"(b[1][0])
                   : "r"(entryAt(bit)));
      asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];"
                   : "=r"(b[0][1]), "=r"(b[1][1])
                   : "r"(entryAt(bit + kGroupBits)));
    }
  }
  __device__ __forceinline__ static float scale(const uint8_t *entry,
                                                const EntryForm &form, float) {
    return __half2float(
        *reinterpret_cast<const __half *>(entry + form.scaleOffset));
  }
  __device__ __forceinline__ static float headScale(const uint8_t *,
                                                    const EntryForm &) {
    return 0.0f;
  }
};

/// How selectRunEntriesKernel() reads nvfp4 keys (Nvfp4Fragments.cuh):
/// each E2M1 code times its block's E4M3 scale is exact in f16; the sum
/// times the tensor scale and kNvfp4Unscale is the CPU's.
template <int D> struct Nvfp4RunKeys : ExactF16RunKeys {
  static constexpr SparseEntries kEntries = SparseEntries::Nvfp4;
  __device__ __forceinline__ static float unshift(const uint32_t *) {
    return kNvfp4Unscale;
  }
  /// B's registers of k-step j for lane t: coordinates keyDim(j, t) + 0,
  /// 1 and + 2, 3 (Fp8E4M3Mma<D>::keyDim() is the same map).
  __device__ __forceinline__ static void fragments(const uint8_t *entry, int j,
                                                   int t, const uint32_t *,
                                                   uint32_t (&b)[kTerms][2]) {
    nvfp4KeyStep<D>(entry, j, t, b[0]);
  }
  __device__ __forceinline__ static float scale(const uint8_t *,
                                                const EntryForm &form, float) {
    return form.tensorScale;
  }
  __device__ __forceinline__ static float headScale(const uint8_t *,
                                                    const EntryForm &) {
    return 0.0f;
  }
};

/// Level 2's scores over fp8 e4m3, polar and nvfp4 keys, on the tensor cores
/// and fed by bulk copies. A kept block's entries lie together in one page, so
/// each warp streams runs of up to kRunEntries consecutive candidates (a
/// kept block, or a part of one) into its own kRunScoreStages shared-memory
/// stages, one cp.async.bulk each, and scores a run while the next lands.
/// (Gathered with plain 4-byte loads, two blocks of 256 threads an SM kept
/// too few bytes in flight: 64% of the DRAM bandwidth over fp8,
/// 2026-12-06.) One m16n8k16 f16 MMA a k-step and B term takes eight
/// candidates (B's columns: Keys::fragments()) against the group's
/// queries split into f16 hi (A's rows 0-7) and lo parts (rows 8-15): c0 +
/// c2 is a head's dot at fp32 accuracy, times the entry's scale after, as
/// the dense fp8 kernels scale. Any group of up to 8 heads fills A alike.
template <int D, typename Keys>
__global__ void __launch_bounds__(kRunScoreWarps * 32)
    selectRunEntriesKernel(const SparseKernelParams p) {
  awaitPreviousKernel();
  constexpr int kSteps = D / 16, kStages = int(kRunScoreStages);
  constexpr int kStageBytes = int(runStageBytes(Keys::kEntries, D));
  extern __shared__ __align__(16) uint8_t stages[];
  __shared__ uint64_t full[kRunScoreWarps][kStages];
  // Where each stage's run starts in it, and the head's scale where the
  // form has no slot scales: written by lane 0 before it arrives on the
  // stage's barrier, so visible once the phase completes.
  __shared__ int lead[kRunScoreWarps][kStages];
  __shared__ float headScale[kRunScoreWarps][kStages];
  // Polar's table of levels as f16 halves, and the factor that scales
  // them back.
  __shared__ __align__(16) uint32_t table[Keys::kSharedWords];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Lane (g, t): query head g's row of A, candidate g of eight in B.
  const int g = lane / 4, t = lane % 4;
  const int kvHead = blockIdx.y, b = blockIdx.z;
  const int row = b * int(p.kvHeads) + kvHead;
  const int group = int(p.group), blockSize = int(p.block);
  const CandidateChunk chunk = candidateChunk(p);
  if (chunk.n == 0)
    return;
  // Runs of the largest power of two dividing both the block and
  // kRunEntries: they never cross a kept block (one page) nor a chunk
  // (a multiple of kRunEntries candidates).
  const int run = min(blockSize & -blockSize, int(kRunEntries));
  const int runs = (chunk.n + run - 1) / run;

  uint32_t a[kSteps][4];
  {
    const float *q =
        p.q +
        (size_t(b) * p.qHeads + size_t(kvHead) * group + min(g, group - 1)) * D;
#pragma unroll
    for (int j = 0; j < kSteps; ++j) {
      const float4 x = g < group ? *reinterpret_cast<const float4 *>(
                                       q + Fp8E4M3Mma<D>::keyDim(j, t))
                                 : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      splitF16(x.x, x.y, a[j][0], a[j][1]);
      splitF16(x.z, x.w, a[j][2], a[j][3]);
    }
  }

  const EntryAreas areas =
      entryAreas(p.keys, p.slotKeys, p.keyPageStride, p.keyAreaStride, kvHead);
  const EntryForm &form = p.keyForm;
  const int32_t *pageTable = p.pageTables + size_t(b) * p.pageTableStride;
  const int pageSize = int(p.pageSize);
  uint8_t *ring = stages + warp * kStages * kStageBytes;
  if (lane == 0) {
    for (int s = 0; s < kStages; ++s)
      initBarrier(&full[warp][s], 1);
    fenceBarrierInit();
  }
  __syncwarp();
  // Lane 0 copies the warp's k-th run into stage k % kStages from the
  // 16-byte boundaries around it (the area's stride is a multiple of 16,
  // so they stay inside it).
  auto issue = [&](int k) {
    const int c = chunk.first + (warp + k * kRunScoreWarps) * run;
    const int count = min(run, chunk.first + chunk.n - c);
    const int token = chunk.candidate.entry(c);
    const uint8_t *codes =
        areaAt(areas, entryPage(p.slotOf, pageTable[token / pageSize],
                                int(p.kvHeads), kvHead));
    const uint8_t *from = codes + size_t(token % pageSize) * form.entryBytes;
    const uintptr_t low = reinterpret_cast<uintptr_t>(from) & ~uintptr_t(15);
    const uintptr_t high = (reinterpret_cast<uintptr_t>(from) +
                            size_t(count) * form.entryBytes + 15) &
                           ~uintptr_t(15);
    const int s = k % kStages;
    lead[warp][s] = int(reinterpret_cast<uintptr_t>(from) - low);
    headScale[warp][s] = Keys::headScale(codes, form);
    arriveExpecting(&full[warp][s], uint32_t(high - low));
    copyBulk(ring + s * kStageBytes, reinterpret_cast<const void *>(low),
             uint32_t(high - low), &full[warp][s]);
  };
  const int mine = (runs - warp + kRunScoreWarps - 1) / kRunScoreWarps;
  if (lane == 0)
    for (int k = 0; k < min(kStages, mine); ++k)
      issue(k);
  // The table while the first runs land.
  Keys::setUp(p, table);
  __syncthreads();
  const float unshift = Keys::unshift(table);

  float *scores = p.scores + size_t(row) * group * p.maxCandidates;
  for (int k = 0; k < mine; ++k) {
    const int s = k % kStages;
    const int c = chunk.first + (warp + k * kRunScoreWarps) * run;
    const int count = min(run, chunk.first + chunk.n - c);
    waitBarrier(&full[warp][s], uint32_t(k / kStages) & 1u);
    const uint8_t *base = ring + s * kStageBytes + lead[warp][s];
    const float scaleOfHead = headScale[warp][s];
    for (int i = 0; i < count; i += 8) {
      const uint8_t *entry =
          base + size_t(min(i + g, count - 1)) * form.entryBytes;
      float acc[Keys::kTerms][4] = {};
      const typename Keys::Lane codes = Keys::lane(entry, t);
#pragma unroll
      for (int j = 0; j < kSteps; ++j) {
        uint32_t bj[Keys::kTerms][2];
        Keys::fragments(codes, j, t, table, bj);
#pragma unroll
        for (int term = 0; term < Keys::kTerms; ++term)
          mmaF16(acc[term], a[j][0], a[j][1], a[j][2], a[j][3], bj[term][0],
                 bj[term][1]);
      }
      const float scale = Keys::scale(entry, form, scaleOfHead) * unshift;
      // Lane (g, t) holds head g's dots with candidates 2t and 2t + 1,
      // whose scales lanes 8t and 8t + 4 read.
      const float scale0 = __shfl_sync(0xffffffffu, scale, 8 * t);
      const float scale1 = __shfl_sync(0xffffffffu, scale, 8 * t + 4);
      float dot0 = acc[0][0] + acc[0][2], dot1 = acc[0][1] + acc[0][3];
      if constexpr (Keys::kTerms == 2) {
        dot0 += acc[1][0] + acc[1][2];
        dot1 += acc[1][1] + acc[1][3];
      }
      const int r = i + 2 * t;
      if (g < group) {
        float *out = scores + size_t(g) * p.maxCandidates + c;
        if (r < count)
          out[r] = dot0 * scale0;
        if (r + 1 < count)
          out[r + 1] = dot1 * scale1;
      }
    }
    // Every lane is done with the stage: lane 0 refills it.
    __syncwarp();
    if (lane == 0 && k + kStages < mine)
      issue(k + kStages);
  }
}

/// Ranks the candidates selectEntriesKernel() scored and keeps the
/// topTokens best, one block a (KV head, row) (rows it listed whole are
/// done).
template <int G>
__global__ void __launch_bounds__(kRankThreads)
    rankEntriesKernel(const SparseKernelParams p) {
  awaitPreviousKernel();
  const int row = blockIdx.y * int(p.kvHeads) + blockIdx.x;
  const int topTokens = int(p.topTokens);
  // The row's length, its kept blocks and their count are read at once
  // (one round trip where a chain of three was), the blocks into shared
  // memory after the keys, where each kept entry looks its block up.
  extern __shared__ __align__(16) uint32_t rankShared[];
  int32_t *keptBlocks =
      reinterpret_cast<int32_t *>(rankShared + p.maxCandidates);
  const int32_t *chosen = p.selection.blocks + size_t(row) * p.topBlocks;
  for (int j = threadIdx.x; j < int(p.topBlocks); j += kRankThreads)
    keptBlocks[j] = chosen[j];
  const int kept = int(p.selection.blockCounts[row]);
  const int selectable = max(p.lengths[blockIdx.y] - 1, 0);
  if (selectable <= topTokens)
    return;
  __syncthreads();
  const Candidates candidate(keptBlocks, kept, int(p.block), selectable);
  if (candidate.count <= topTokens)
    return;
  int32_t *listed = p.selection.entries + size_t(row) * topTokens;
  int32_t *candidates = p.selection.candidates + size_t(row) * topTokens;
  // Where each kept entry's scores are: the attention's logits.
  keepBestRanked<G>(
      p.scores + size_t(row) * p.group * p.maxCandidates, p.maxCandidates,
      candidate.count, int(p.group), topTokens, [](int) { return false; },
      [&](int at, int i) {
        listed[at] = candidate.entry(i);
        candidates[at] = i;
      });
  if (threadIdx.x == 0) {
    p.selection.entryCounts[row] = uint32_t(topTokens);
    p.selection.scored[row] = 1;
  }
}

bool launch(const void *kernel, const SparseKernelParams &p, dim3 grid,
            uint32_t threads, size_t sharedBytes, cudaStream_t stream) {
  if (!kernel)
    return false;
  if (!allowDynamicShared(kernel, sharedBytes))
    return false;
  SparseKernelParams params = p;
  void *args[] = {&params};
  return launchDependent(kernel, grid, dim3(threads), args, sharedBytes,
                         stream) == cudaSuccess;
}

const void *boundKernel(uint32_t headDim, uint32_t groupCapacity) {
  return kernelInstance(headDim, groupCapacity, [](auto d, auto g) {
    return &selectBlocksKernel<decltype(d)::value, decltype(g)::value>;
  });
}

/// The run scorer's keys for entries read as Rows (void: none; such
/// entries are scored on CUDA cores).
template <typename Rows> struct RunKeysOf {
  using type = void;
};
template <int D> struct RunKeysOf<Fp8Rows<D>> {
  using type = Fp8RunKeys<D>;
};
template <int D, int Bits> struct RunKeysOf<PolarRows<D, Bits>> {
  using type = PolarRunKeys<D, Bits>;
};
template <int D> struct RunKeysOf<Nvfp4Rows<D>> {
  using type = Nvfp4RunKeys<D>;
};

/// Level 2's scoring kernel: the run scorer where scoresRuns() says so, as
/// scoreLaunch() sizes the launch, else the CUDA-core one; null where the
/// two disagree (the launch then fails).
const void *scoreKernel(SparseEntries entries, uint32_t headDim,
                        uint32_t groupCapacity) {
  const bool runs = scoresRuns(entries);
  return rowsInstance(entries, headDim, groupCapacity,
                      [runs](auto rows, auto d, auto g) -> const void * {
                        constexpr int D = decltype(d)::value;
                        constexpr int G = decltype(g)::value;
                        using Rows = decltype(rows);
                        using RunKeys = typename RunKeysOf<Rows>::type;
                        if constexpr (std::is_void_v<RunKeys>)
                          return runs ? nullptr
                                      : reinterpret_cast<const void *>(
                                            &selectEntriesKernel<Rows, D, G>);
                        else
                          return runs ? reinterpret_cast<const void *>(
                                            &selectRunEntriesKernel<D, RunKeys>)
                                      : nullptr;
                      });
}

} // namespace

uint32_t boundBlocksPerMultiprocessor(uint32_t headDim,
                                      uint32_t groupCapacity) {
  // With the largest chunk's dynamic shared memory.
  return blocksPerMultiprocessor(boundKernel(headDim, groupCapacity),
                                 kSelectThreads, kMaxBoundChunkBlocks * 4);
}

uint32_t scoreBlocksPerMultiprocessor(SparseEntries entries, uint32_t headDim,
                                      uint32_t groupCapacity) {
  const ScoreLaunch score = scoreLaunch(entries, headDim, kMaxScoreChunkSlots);
  return blocksPerMultiprocessor(scoreKernel(entries, headDim, groupCapacity),
                                 score.threads, score.sharedBytes);
}

bool launchSelectBlocks(const SparseKernelParams &p, uint32_t headDim,
                        uint32_t groupCapacity, uint32_t chunks, uint32_t batch,
                        size_t boundSharedBytes, size_t rankSharedBytes,
                        cudaStream_t stream) {
  const void *bound = boundKernel(headDim, groupCapacity);
  const void *rank = groupInstance(groupCapacity, [](auto g) {
    return &rankBlocksKernel<decltype(g)::value>;
  });
  return launch(bound, p, dim3(chunks, p.kvHeads, batch), kSelectThreads,
                boundSharedBytes, stream) &&
         launch(rank, p, dim3(p.kvHeads, batch), kRankThreads, rankSharedBytes,
                stream);
}

bool launchSelectEntries(const SparseKernelParams &p, uint32_t headDim,
                         uint32_t groupCapacity, uint32_t chunks,
                         uint32_t batch, const ScoreLaunch &score,
                         size_t rankSharedBytes, cudaStream_t stream) {
  const void *scoring = scoreKernel(p.entries, headDim, groupCapacity);
  const void *rank = groupInstance(groupCapacity, [](auto g) {
    return &rankEntriesKernel<decltype(g)::value>;
  });
  return launch(scoring, p, dim3(chunks, p.kvHeads, batch), score.threads,
                score.sharedBytes, stream) &&
         launch(rank, p, dim3(p.kvHeads, batch), kRankThreads, rankSharedBytes,
                stream);
}

} // namespace kvrt::cuda
