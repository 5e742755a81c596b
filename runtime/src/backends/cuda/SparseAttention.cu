//===- SparseAttention.cu - Flash-decoding over selected entries ----------===//
//
// Block 0 of each (KV head, row) (or, where the row's splits are one
// cluster, its last split) brings the summary of the block that
// holds the row's newest token up to date (SummariseBlock.cuh): this
// step's level 1 has read the summaries, and the next step's reads that
// block as its newest selectable one, so the update needs no launch of its
// own. Then one thread block per (split, KV head, row) takes up to
// splitEntries items of the row's list: the entries level 2 kept
// (SparseSelection), then the row's newest token. It looks up each item's
// page once, then reads keys (where it must) and values straight from the
// pool, eight lanes an entry (GatherEntries.cuh: 16-byte chunks of bf16,
// 4-byte words of fp8 codes and their scale, decoded in registers), four
// entries a warp and kUnroll of those in flight per lane, every load
// serving all query heads of the group:
//
//   logits: where level 2 ranked the row, its scores of the kept
//           entries (rankEntriesKernel lists where they are: the same q.k
//           from the same codes, so the entries' keys are not read
//           again); else, and for the newest token, dots of the keys
//           with the group's queries, summed over the eight by
//           reduceScatter(); times scale * log2(e); -inf where the stored
//           position is not visible;
//   softmax of the split's scores in shared memory (exp2, the maximum
//           subtracted), as SplitBlock.cuh does;
//   values: weight * value into fp32 registers, summed over the warp's four
//           entries by shuffles and over the warps in shared memory.
//
// Where the cache keeps tokens exact beside their codes, the row's own
// token and the listed sinks are the exact splits' (ExactAttention.cu,
// launched beside this one): the list has no newest token, and a listed
// sink weighs nothing here (its position reads as never visible).
//
// Gathered rows are 64 to 256 bytes anywhere in the pool, so plain loads
// (several in flight) serve better than bulk copies of whole tiles. The
// splits leave partials that SplitReduce.cu merges, as the dense kernels
// do; or, where the plan launches each row's blocks as one cluster
// (SparseDecodePlan::mergesInCluster), they merge them among themselves
// through distributed shared memory (mergeInCluster()).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DependentLaunch.cuh"
#include "runtime/src/backends/cuda/GatherEntries.cuh"
#include "runtime/src/backends/cuda/RotateRows.cuh"
#include "runtime/src/backends/cuda/SparseKernels.h"
#include "runtime/src/backends/cuda/SplitKernel.cuh"
#include "runtime/src/backends/cuda/SummariseBlock.cuh"

#include <climits>
#include <cooperative_groups.h>
#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

static_assert(kSparseSplitThreads == kSummaryThreads,
              "block 0 of a row summarises with a split's threads");
static_assert(kMaxSplitEntries % kSparseSplitThreads == 0,
              "a split's items are a whole number per thread");

/// Where the row's splits are one cluster (block s its split s): split s
/// merges the group's heads g with g % splits == s, reading every split's
/// maximum, sum and partial output (`partial`, [G][D] in each block's
/// shared memory) from the cluster's blocks, and turns polar's rows back
/// in `merged` (D floats of its own); the merge launch and the partials'
/// trip through global memory go. A split that saw no entry has sum 0 and
/// its partial is never read. Every thread of every block of the cluster
/// calls it (its barriers count them all).
template <int D, int G>
__device__ void mergeInCluster(const SparseKernelParams &p, int split,
                               size_t firstRow, float (&partial)[G][D],
                               float (&rowMax)[G], float (&rowSum)[G],
                               float *merged) {
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  // Every block's partial is in its shared memory.
  cluster.sync();
  const int tid = threadIdx.x, splits = int(p.splits);
  for (int g = split; g < int(p.group); g += splits) {
    float value = 0.0f;
    if (tid < D) {
      float m[kMaxMergedSplits], l[kMaxMergedSplits], o[kMaxMergedSplits];
#pragma unroll
      for (int s = 0; s < int(kMaxMergedSplits); ++s)
        if (s < splits) {
          m[s] = *cluster.map_shared_rank(&rowMax[g], s);
          l[s] = *cluster.map_shared_rank(&rowSum[g], s);
          o[s] = *cluster.map_shared_rank(&partial[g][tid], s);
        }
      float most = -INFINITY;
#pragma unroll
      for (int s = 0; s < int(kMaxMergedSplits); ++s)
        if (s < splits && l[s] > 0.0f)
          most = fmaxf(most, m[s]);
      float total = 0.0f, sum = 0.0f;
#pragma unroll
      for (int s = 0; s < int(kMaxMergedSplits); ++s)
        if (s < splits && l[s] > 0.0f) {
          const float w = exp2f(m[s] - most);
          total = fmaf(w, l[s], total);
          sum = fmaf(w, o[s], sum);
        }
      value = total > 0.0f ? sum * (1.0f / total) : 0.0f;
    }
    if (p.rotatesOutput) {
      if (tid < D)
        merged[tid] = value;
      rotateRowsInShared(merged, 1, D, p.outputSigns, true, tid, D,
                         [] { __syncthreads(); });
      if (tid < D)
        value = merged[tid];
    }
    if (tid < D)
      p.out[(firstRow + g) * D + tid] = value;
  }
  // No block's shared memory goes while another reads it.
  cluster.sync();
}

/// Keys and values of the form `Rows` (both sides of a cache in one
/// encoding).
template <typename Rows, int D, int G>
__global__ void __launch_bounds__(kSparseSplitThreads)
    sparseSplitKernel(const SparseKernelParams p) {
  awaitPreviousKernel();
  constexpr int kDims = D / 8, kUnroll = 4;
  constexpr int kWarps = int(kSparseSplitThreads) / 32;
  __shared__ float scores[G][kMaxSplitEntries];
  __shared__ int2 rows[kMaxSplitEntries];
  __shared__ int rowPositions[kMaxSplitEntries];
  __shared__ float perWarp[kWarps][G][D];
  __shared__ float rowMax[G], rowSum[G];
  __shared__ float levels[2][16];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int item = lane / 8, part = lane % 8;
  const int kvHead = blockIdx.y, b = blockIdx.z;
  // For the next step, whose level 1 reads it (this step's has run), the
  // summary of the block that holds the newest token: by block 0 of the
  // row, or where the row's splits are one cluster (which a summary block
  // would make too wide to fit every row's at once) by its last split, the
  // shortest, before they merge.
  __shared__ SummaryScratch<D> scratch;
  if (!p.mergesInCluster && blockIdx.x == 0) {
    loadLevels<Rows>(p, levels);
    summariseNewestBlock<Rows, D>(p, kvHead, b, levels[0], scratch);
    return;
  }
  const int split = int(blockIdx.x) - (p.mergesInCluster ? 0 : 1);
  // The selection kernels have run: their host copies are complete, and
  // the host's schedule may read them (a word of mapped memory rather
  // than an event node, which costs a captured step more).
  if (p.hostSignal && tid == 0 && split == 0 && kvHead == 0 && b == 0) {
    __threadfence_system();
    *reinterpret_cast<volatile uint32_t *>(p.hostSignal) = p.signalEnd;
  }
  const int row = b * int(p.kvHeads) + kvHead;
  const int group = int(p.group), pageSize = int(p.pageSize);
  const size_t firstRow = size_t(b) * p.qHeads + size_t(kvHead) * group;
  // A cluster's split ends with the summary (the last split) and the merge.
  auto endInCluster = [&] {
    if (split == int(p.splits) - 1)
      summariseNewestBlock<Rows, D>(p, kvHead, b, levels[0], scratch);
    mergeInCluster<D, G>(p, split, firstRow, perWarp[0], rowMax, rowSum,
                         perWarp[1][0]);
  };
  const int start = split * int(p.splitEntries);
  const int32_t *entries = p.selection.entries + size_t(row) * p.topTokens;
  const int32_t *candidates =
      p.selection.candidates + size_t(row) * p.topTokens + start;
  // A thread's items (at most kItems) take three dependent rounds of loads
  // together: the row's length and list count with the list's entries and
  // candidates, then pages and level 2's scores, then slots and positions.
  // The list is read before its count says how much of it this step
  // wrote; what lies past the count (an earlier step's, or never written)
  // is dropped below, never used as an index. In turn, the count and each
  // item's chain were waited for one after another: 2.7 us of polar-4's
  // split kernel at B = 8, L = 128K (docs/benchmarks.md).
  constexpr int kItems = int(kMaxSplitEntries / kSparseSplitThreads);
  int entry[kItems], candidate[kItems];
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int i = tid + j * int(kSparseSplitThreads), at = start + i;
    const bool stored = i < int(p.splitEntries) && at < int(p.topTokens);
    entry[j] = stored ? entries[at] : 0;
    candidate[j] = stored ? candidates[i] : 0;
  }
  const int length = p.lengths[b], counted = int(p.selection.entryCounts[row]);
  const bool scored = p.selection.scored[row];
  const int queryPosition = p.queryPositions[b];
  // While those loads are on their way (every thread, before any returns).
  loadLevels<Rows>(p, levels);
  const int listed = length > 0 ? counted : 0;
  const int own = p.exactSplits ? 0 : 1;
  const int count = length > 0 ? listed + own : 0;
  const int n = min(count, start + int(p.splitEntries)) - start;
  if (n <= 0) {
    // Zeros, or a partial that weighs nothing.
    if (p.splits == 1) {
      for (int e = tid; e < group * D; e += kSparseSplitThreads)
        p.out[firstRow * D + e] = 0.0f;
    } else if (p.mergesInCluster) {
      if (tid < group)
        rowSum[tid] = 0.0f;
      endInCluster();
    } else if (tid < group) {
      float *maxSum =
          p.partialMaxSum + ((firstRow + tid) * p.splits + split) * 2;
      maxSum[0] = -INFINITY;
      maxSum[1] = 0.0f;
    }
    return;
  }

  auto visible = [&](int position) {
    return position <= queryPosition &&
           (p.slidingWindow == 0 || queryPosition - position < p.slidingWindow);
  };
  // The first fromScores items' logits are level 2's scores where it
  // ranked the row; the others' (the newest token's, or all of an
  // unscored row's) come from their keys below.
  const int fromScores = scored ? min(max(listed - start, 0), n) : 0;
  const float *rowScores = p.scores + size_t(row) * group * p.maxCandidates;
  const int32_t *table = p.pageTables + size_t(b) * p.pageTableStride;
  int page[kItems];
  float logit[kItems][G];
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int i = tid + j * int(kSparseSplitThreads), at = start + i;
    entry[j] = i < n && at < listed ? entry[j] : length - 1;
    candidate[j] = i < fromScores ? candidate[j] : -1;
  }
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    page[j] = table[entry[j] / pageSize];
#pragma unroll
    for (int g = 0; g < G; ++g)
      logit[j][g] =
          candidate[j] >= 0 && g < group
              ? __ldcg(rowScores + size_t(g) * p.maxCandidates + candidate[j])
              : 0.0f;
  }
  int at[kItems], position[kItems];
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int slot = entry[j] % pageSize;
    at[j] = entryPage(p.slotOf, page[j], int(p.kvHeads), kvHead);
    position[j] = p.positions[size_t(page[j]) * pageSize + slot];
  }
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int i = tid + j * int(kSparseSplitThreads);
    if (entry[j] < int(p.exactSinks))
      position[j] = INT_MAX;
    if (i < n) {
      rows[i] = make_int2(at[j], entry[j] % pageSize);
      rowPositions[i] = position[j];
      if (candidate[j] >= 0)
#pragma unroll
        for (int g = 0; g < G; ++g)
          if (g < group)
            scores[g][i] =
                visible(position[j]) ? logit[j][g] * p.scaleLog2 : -INFINITY;
    }
  }
  __syncthreads();

  const EntryAreas keyAreas =
      entryAreas(p.keys, p.slotKeys, p.keyPageStride, p.keyAreaStride, kvHead);
  const int firstBase = warp * 4 * kUnroll, stride = kWarps * 4 * kUnroll;
  // From the warps' round that holds the first item without a score (its
  // earlier items' logits are computed again, alike). A warp with no such
  // item reads no query: in a split of scored entries, none does.
  const int keysFrom = fromScores / stride * stride;
  float q[G][kDims];
  if (keysFrom + firstBase < n) {
    const float *rowQ = p.q + firstRow * D;
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int i = 0; i < kDims; ++i)
        q[g][i] =
            g < group ? rowQ[g * D + Rows::dim(part, i)] * p.scaleLog2 : 0.0f;
  }
  for (int base = keysFrom + firstBase; base < n; base += stride) {
    typename Rows::Raw k[kUnroll];
    // Past the end the eight reads the last item again; dropped below.
    gatherEntries<Rows, kUnroll>(keyAreas, p.keyForm, rows, base, item, part, n,
                                 k);
    int position[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      position[u] = rowPositions[min(base + 4 * u + item, n - 1)];
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
        scores[head][r] = visible(position[u]) ? score : -INFINITY;
    }
  }
  // The warp's first values are on their way while the softmax runs.
  const EntryAreas valueAreas = entryAreas(
      p.values, p.slotValues, p.valuePageStride, p.valueAreaStride, kvHead);
  typename Rows::Raw v[kUnroll];
  if (firstBase < n)
    gatherEntries<Rows, kUnroll>(valueAreas, p.valueForm, rows, firstBase, item,
                                 part, n, v);
  __syncthreads();

  for (int g = warp; g < group; g += kWarps) {
    const WarpExp2 row = warpExp2(scores[g], n);
    if (lane == 0) {
      rowMax[g] = row.max;
      rowSum[g] = row.sum;
    }
  }
  __syncthreads();

  float acc[G][kDims];
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < kDims; ++i)
      acc[g][i] = 0.0f;
  for (int base = firstBase; base < n; base += stride) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int r = base + 4 * u + item;
      float w[G];
#pragma unroll
      for (int g = 0; g < G; ++g)
        w[g] = r < n && g < group ? scores[g][r] : 0.0f;
      float x[kDims];
      if constexpr (Rows::kScaled) {
        Rows::decodeUnscaled(v[u], levels[1], x);
#pragma unroll
        for (int g = 0; g < G; ++g)
          w[g] *= v[u].scale;
      } else {
        Rows::decode(v[u], levels[1], x);
      }
#pragma unroll
      for (int i = 0; i < kDims; ++i)
#pragma unroll
        for (int g = 0; g < G; ++g)
          acc[g][i] = fmaf(w[g], x[i], acc[g][i]);
    }
    if (base + stride < n)
      gatherEntries<Rows, kUnroll>(valueAreas, p.valueForm, rows, base + stride,
                                   item, part, n, v);
  }

  // Sum the warp's four entries, then the warps.
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int i = 0; i < kDims; ++i) {
      acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], 8);
      acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], 16);
    }
  if (item == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g)
      if (g < group)
#pragma unroll
        for (int i = 0; i < kDims; ++i)
          perWarp[warp][g][Rows::dim(part, i)] = acc[g][i];
  }
  __syncthreads();
  for (int e = tid; e < group * D; e += kSparseSplitThreads) {
    const int g = e / D, d = e % D;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w)
      sum += perWarp[w][g][d];
    const size_t out = firstRow + g;
    if (p.splits == 1)
      p.out[out * D + d] = rowSum[g] > 0.0f ? sum / rowSum[g] : 0.0f;
    else if (p.mergesInCluster)
      perWarp[0][g][d] = sum; // Read by this thread alone above.
    else
      p.partialOut[(out * p.splits + split) * D + d] = sum;
  }
  if (p.mergesInCluster) {
    endInCluster();
    return;
  }
  if (p.splits > 1 && tid < group) {
    float *maxSum = p.partialMaxSum + ((firstRow + tid) * p.splits + split) * 2;
    maxSum[0] = rowMax[tid];
    maxSum[1] = rowSum[tid];
  }
}

const void *splitKernel(SparseEntries entries, uint32_t headDim,
                        uint32_t groupCapacity) {
  return rowsInstance(
      entries, headDim, groupCapacity, [](auto rows, auto d, auto g) {
        return &sparseSplitKernel<decltype(rows), decltype(d)::value,
                                  decltype(g)::value>;
      });
}

} // namespace

uint32_t sparseSplitBlocksPerMultiprocessor(SparseEntries entries,
                                            uint32_t headDim,
                                            uint32_t groupCapacity) {
  return blocksPerMultiprocessor(splitKernel(entries, headDim, groupCapacity),
                                 kSparseSplitThreads, 0);
}

uint32_t sparseSplitClustersAtOnce(SparseEntries entries, uint32_t headDim,
                                   uint32_t groupCapacity, uint32_t width) {
  return clustersAtOnce(splitKernel(entries, headDim, groupCapacity),
                        kSparseSplitThreads, width);
}

bool launchSparseSplits(const SparseKernelParams &p, uint32_t headDim,
                        uint32_t groupCapacity, uint32_t batch,
                        cudaStream_t stream) {
  const void *kernel = splitKernel(p.entries, headDim, groupCapacity);
  if (!kernel)
    return false;
  SparseKernelParams params = p;
  void *args[] = {&params};
  if (!p.mergesInCluster)
    return launchDependent(
               kernel, dim3(1 + p.splits - p.exactSplits, p.kvHeads, batch),
               dim3(kSparseSplitThreads), args, 0, stream) == cudaSuccess;
  // A row's splits as one cluster, launched once the ranking has ended:
  // as a dependent launch, placed beside the ranking's blocks, the step
  // took 8-12 us longer for five caches of six at B = 8, L = 128K on an
  // H100 (docs/benchmarks.md, 2026-12-07, fourteenth session).
  cudaLaunchAttribute cluster;
  const cudaLaunchConfig_t config =
      clusterLaunch(dim3(p.splits, p.kvHeads, batch), kSparseSplitThreads,
                    p.splits, stream, cluster);
  return cudaLaunchKernelExC(&config, kernel, args) == cudaSuccess;
}

} // namespace kvrt::cuda
