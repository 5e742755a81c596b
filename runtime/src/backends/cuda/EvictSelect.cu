//===- EvictSelect.cu - The budget's best entries, on the device ----------===//
//
// Five kernels, each over tiles of kEvictSelectTile entries of every
// selection row (rows x tiles blocks, so a batch of 8 shared selections
// of 32K entries is 256 blocks, not 8):
// 1. combineKernel: each block reduces the row's heads' score moments
//    (EvictScores.cu wrote one per score tile) in a fixed order, so every
//    block gets the same mean and deviation; standardises (TriAttention)
//    and combines the heads' scores as cpu::LayerEviction and
//    evict::selectKept() do, writes them, and counts the candidates'
//    score words (the high half of evict::rankKey()) by their top 11 bits.
// 2, 3. passKernel: each block finds in the last histogram the digit where
//    the `free` best candidates end (cub's block scan over the bins, the
//    same in every block) and counts the candidates of that prefix by the
//    next 11, then 10 bits.
// 4. countKernel: the k-th largest score word T and how many entries at T
//    are kept (r); each tile counts what it keeps for sure (sinks, window,
//    words above T) and its candidates at T.
// 5. writeKernel: a tile's offset from the earlier tiles' counts; the
//    candidates at T kept are the r earliest, as rankKey's ~index orders
//    them; the kept indices written ascending by a block scan.
// EvictKernels.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/backends/cuda/EvictMoments.cuh"
#include "runtime/src/evict/RankKey.h"

#include <cub/block/block_scan.cuh>
#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kPerThread = int(kEvictSelectTile) / kThreads;
constexpr int kBinsPerThread = int(kEvictRadixBins) / kThreads;
static_assert(kPerThread >= 1 && kBinsPerThread >= 1, "tile and bins");
/// KV heads a standardised selection holds statistics for.
constexpr uint32_t kMaxHeads = 64;
/// Pass k's digit: 11, 11, then 10 bits from the top of the score word.
__device__ __forceinline__ int shiftOf(int pass) {
  return pass == 0 ? 21 : pass == 1 ? 10 : 0;
}
__device__ __forceinline__ uint32_t maskOf(int pass) {
  return pass == 2 ? 1023u : 2047u;
}

size_t align(size_t bytes) { return (bytes + 255) / 256 * 256; }

__host__ __device__ uint32_t tiles(uint32_t length, uint32_t tile) {
  return (length + tile - 1) / tile;
}

/// The score word of rankKey(): higher is better, ties by index aside.
__device__ __forceinline__ uint32_t scoreWord(float v) {
  return uint32_t(evict::rankKey(v, 0) >> 32);
}

struct Row {
  EvictSequence s;
  /// Selection row, its sequence and its first head.
  size_t row, sequence;
  int firstHead, heads;
};

__device__ Row rowOf(const EvictLaunch &p) {
  const uint32_t rowsPer = p.shared ? 1 : p.cache.kvHeads;
  Row r;
  r.sequence = blockIdx.y / rowsPer;
  r.s = p.sequences[r.sequence];
  r.firstHead = p.shared ? 0 : int(blockIdx.y % rowsPer);
  r.heads = p.shared ? int(p.cache.kvHeads) : 1;
  r.row = r.sequence * p.cache.kvHeads + r.firstHead;
  return r;
}

/// Finds, in `histogram` of the candidates left, the digit where the
/// `need` best end: returns it and the need left within it. The same in
/// every block that calls it.
struct Pick {
  uint32_t digit, need;
};
__device__ Pick pickDigit(const uint32_t *histogram, uint32_t need) {
  using Scan = cub::BlockScan<uint32_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  __shared__ Pick picked;
  // Thread t holds the bins from the top: 2047 - (t * kBinsPerThread + j).
  uint32_t counts[kBinsPerThread];
#pragma unroll
  for (int j = 0; j < kBinsPerThread; ++j)
    counts[j] =
        histogram[kEvictRadixBins - 1 - (threadIdx.x * kBinsPerThread + j)];
  uint32_t before[kBinsPerThread];
  Scan(temp).ExclusiveSum(counts, before);
#pragma unroll
  for (int j = 0; j < kBinsPerThread; ++j)
    if (before[j] < need && before[j] + counts[j] >= need)
      picked = {kEvictRadixBins - 1 - (threadIdx.x * kBinsPerThread + j),
                need - before[j]};
  __syncthreads();
  return picked;
}

__global__ void __launch_bounds__(kThreads)
    combineKernel(EvictLaunch p, EvictWorkspace w, bool standardise,
                  uint32_t scoreTiles) {
  __shared__ Standardisation standardisation[kMaxHeads];
  __shared__ uint32_t histogram[kEvictRadixBins];
  const Row r = rowOf(p);
  const int first = int(blockIdx.x * kEvictSelectTile);
  if (first >= r.s.length)
    return;
  const int tid = threadIdx.x;
  for (int b = tid; b < int(kEvictRadixBins); b += kThreads)
    histogram[b] = 0;
  if (tid < r.heads) {
    const int h = r.firstHead + tid;
    standardisation[h] =
        standardise
            ? standardisationOf(w.moments + (r.sequence * p.cache.kvHeads + h) *
                                                scoreTiles * 3,
                                tiles(r.s.length, kEvictScoreTile))
            : Standardisation{0, 0};
  }
  __syncthreads();
  const float *scores = w.scores + r.sequence * p.cache.kvHeads * p.maxLength;
  float *combined = w.combined + r.row * p.maxLength;
  for (int k = 0; k < kPerThread; ++k) {
    const int i = first + k * kThreads + tid;
    if (i >= r.s.length)
      break;
    float value;
    auto standardised = [&](int h) {
      return standardisation[h](scores[size_t(h) * p.maxLength + i]);
    };
    if (r.heads == 1) {
      value = standardised(r.firstHead);
    } else {
      double sum = 0;
      for (int h = 0; h < r.heads; ++h) {
        const float v = standardised(h);
        sum += isnan(v) ? -double(INFINITY) : double(v);
      }
      value = float(sum / double(r.heads));
    }
    combined[i] = value;
    if (i >= r.s.sinks && i < r.s.recentStart)
      atomicAdd(&histogram[scoreWord(value) >> shiftOf(0)], 1u);
  }
  __syncthreads();
  uint32_t *global = w.histograms + r.row * 3 * kEvictRadixBins;
  for (int b = tid; b < int(kEvictRadixBins); b += kThreads)
    if (histogram[b])
      atomicAdd(&global[b], histogram[b]);
}

/// The prefix and need after `pass` picks: those after pass - 1 (rowState
/// slot pass - 2, written by block 0 of the previous kernel), then the pick
/// in histogram pass - 1.
__device__ Pick prefixAfter(const EvictWorkspace &w, size_t row, int pass,
                            uint32_t free) {
  const uint32_t *state = w.rowState + (row * 2 + (pass - 2)) * 2;
  const uint32_t prefix = pass > 1 ? state[0] : 0;
  const uint32_t need = pass > 1 ? state[1] : free;
  const Pick pick =
      pickDigit(w.histograms + (row * 3 + pass - 1) * kEvictRadixBins, need);
  return {prefix | pick.digit << shiftOf(pass - 1), pick.need};
}

__global__ void __launch_bounds__(kThreads)
    passKernel(EvictLaunch p, EvictWorkspace w, int pass) {
  __shared__ uint32_t histogram[kEvictRadixBins];
  const Row r = rowOf(p);
  const int first = int(blockIdx.x * kEvictSelectTile);
  if (first >= r.s.length || r.s.free <= 0)
    return;
  const int tid = threadIdx.x;
  for (int b = tid; b < int(kEvictRadixBins); b += kThreads)
    histogram[b] = 0;
  const Pick prefix = prefixAfter(w, r.row, pass, uint32_t(r.s.free));
  if (blockIdx.x == 0 && tid == 0) {
    // Slot pass - 1, read by the next kernels only.
    w.rowState[(r.row * 2 + pass - 1) * 2] = prefix.digit;
    w.rowState[(r.row * 2 + pass - 1) * 2 + 1] = prefix.need;
  }
  const uint32_t high = ~0u << shiftOf(pass - 1);
  const float *combined = w.combined + r.row * p.maxLength;
  for (int k = 0; k < kPerThread; ++k) {
    const int i = first + k * kThreads + tid;
    if (i >= r.s.recentStart)
      break;
    if (i < r.s.sinks)
      continue;
    const uint32_t word = scoreWord(combined[i]);
    if ((word & high) == prefix.digit)
      atomicAdd(&histogram[word >> shiftOf(pass) & maskOf(pass)], 1u);
  }
  __syncthreads();
  uint32_t *global = w.histograms + (r.row * 3 + pass) * kEvictRadixBins;
  for (int b = tid; b < int(kEvictRadixBins); b += kThreads)
    if (histogram[b])
      atomicAdd(&global[b], histogram[b]);
}

/// The kept of entry i given T and whether candidates exist: 1 kept for
/// sure, 2 a candidate at T, 0 evicted.
__device__ int classify(const EvictSequence &s, const float *combined, int i,
                        uint32_t threshold) {
  if (i < s.sinks || i >= s.recentStart)
    return 1;
  if (s.free <= 0)
    return 0;
  const uint32_t word = scoreWord(combined[i]);
  return word > threshold ? 1 : word == threshold ? 2 : 0;
}

/// T and r of a row: the score word of the `free`-th best candidate, and
/// how many candidates at it are kept.
__device__ Pick threshold(const EvictWorkspace &w, const Row &r) {
  if (r.s.free <= 0)
    return {0, 0};
  return prefixAfter(w, r.row, 3, uint32_t(r.s.free));
}

__global__ void __launch_bounds__(kThreads)
    countKernel(EvictLaunch p, EvictWorkspace w, uint32_t selectTiles) {
  const Row r = rowOf(p);
  const int first = int(blockIdx.x * kEvictSelectTile);
  if (first >= r.s.length)
    return;
  const Pick t = threshold(w, r);
  const float *combined = w.combined + r.row * p.maxLength;
  int sure = 0, ties = 0;
  for (int k = 0; k < kPerThread; ++k) {
    const int i = first + k * kThreads + int(threadIdx.x);
    if (i < r.s.length) {
      const int c = classify(r.s, combined, i, t.digit);
      sure += c == 1;
      ties += c == 2;
    }
  }
  __shared__ int sums[2];
  if (threadIdx.x == 0)
    sums[0] = sums[1] = 0;
  __syncthreads();
  if (sure)
    atomicAdd(&sums[0], sure);
  if (ties)
    atomicAdd(&sums[1], ties);
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t *to = w.tileCounts + (r.row * selectTiles + blockIdx.x) * 2;
    to[0] = sums[0];
    to[1] = sums[1];
  }
}

__global__ void __launch_bounds__(kThreads)
    writeKernel(EvictLaunch p, EvictWorkspace w, uint32_t selectTiles) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  __shared__ int offsets[2];
  const Row r = rowOf(p);
  const int first = int(blockIdx.x * kEvictSelectTile);
  if (first >= r.s.length)
    return;
  const Pick t = threshold(w, r);
  const int32_t *counts = w.tileCounts + r.row * selectTiles * 2;
  if (threadIdx.x == 0) {
    // Kept before this tile, and candidates at T before it.
    int kept = 0, ties = 0;
    for (uint32_t b = 0; b < blockIdx.x; ++b) {
      kept +=
          counts[2 * b] + max(0, min(counts[2 * b + 1], int(t.need) - ties));
      ties += counts[2 * b + 1];
    }
    offsets[0] = kept;
    offsets[1] = ties;
  }
  __syncthreads();
  const float *combined = w.combined + r.row * p.maxLength;
  int classes[kPerThread], keep[kPerThread], tie[kPerThread];
  for (int k = 0; k < kPerThread; ++k) {
    const int i = first + int(threadIdx.x) * kPerThread + k;
    classes[k] = i < r.s.length ? classify(r.s, combined, i, t.digit) : 0;
    tie[k] = classes[k] == 2;
  }
  // Index order within the tile: thread t holds entries t * kPerThread + k.
  int tieRank[kPerThread];
  Scan(temp).ExclusiveSum(tie, tieRank);
  __syncthreads();
  for (int k = 0; k < kPerThread; ++k)
    keep[k] = classes[k] == 1 ||
              (classes[k] == 2 && offsets[1] + tieRank[k] < int(t.need));
  int at[kPerThread];
  Scan(temp).ExclusiveSum(keep, at);
  int32_t *kept = w.kept + r.row * p.maxKept;
  for (int k = 0; k < kPerThread; ++k)
    if (keep[k])
      kept[offsets[0] + at[k]] = first + int(threadIdx.x) * kPerThread + k;
}

} // namespace

EvictWorkspace evictWorkspace(const EvictLaunch &p) {
  const size_t rows = size_t(p.count) * p.cache.kvHeads;
  const size_t length = p.maxLength, kept = p.maxKept;
  char *base = static_cast<char *>(p.workspace);
  size_t at = 0;
  auto take = [&](size_t bytes) {
    char *where = base + at;
    at += align(bytes);
    return where;
  };
  const size_t scoreTiles = tiles(p.maxLength, kEvictScoreTile);
  EvictWorkspace w;
  w.moments =
      reinterpret_cast<double *>(take(rows * scoreTiles * 3 * sizeof(double)));
  w.scores = reinterpret_cast<float *>(take(rows * length * 4));
  w.combined = reinterpret_cast<float *>(take(rows * length * 4));
  w.kept = reinterpret_cast<int32_t *>(take(rows * kept * 4));
  const size_t scoredRows =
      p.standardisedMax ? size_t(p.count) * p.qHeads : rows;
  w.directions = reinterpret_cast<float *>(
      take(scoredRows * (3 * p.cache.headDim / 2) * 4));
  if (p.standardisedMax) {
    w.headScores = reinterpret_cast<float *>(take(scoredRows * length * 4));
    w.headMoments = reinterpret_cast<double *>(
        take(scoredRows * scoreTiles * 3 * sizeof(double)));
  }
  if (p.scoring == EvictScoring::SnapKv) {
    const size_t group = p.qHeads / p.cache.kvHeads;
    w.partials = reinterpret_cast<float2 *>(
        take(rows * scoreTiles * snapKvPaddedRows(uint32_t(group), p.observe) *
             sizeof(float2)));
    w.votes = reinterpret_cast<float *>(take(rows * group * length * 4));
  }
  // Cleared by selectEntries() as one range: histograms, state.
  w.histograms =
      reinterpret_cast<uint32_t *>(take(rows * 3 * kEvictRadixBins * 4));
  w.rowState = reinterpret_cast<uint32_t *>(take(rows * 2 * 2 * 4));
  w.tileCounts = reinterpret_cast<int32_t *>(
      take(rows * tiles(p.maxLength, kEvictSelectTile) * 2 * 4));
  // Cleared by compactEntries(): the counter and the chunks' flags (a chunk
  // holds one entry at least).
  w.chunkCounter = reinterpret_cast<uint32_t *>(take(4));
  w.chunkRead = reinterpret_cast<uint32_t *>(take(rows * kept * 4));
  w.bytes = at;
  return w;
}

size_t evictWorkspaceBytes(const EvictLaunch &shape) {
  EvictLaunch p = shape;
  p.workspace = nullptr;
  return evictWorkspace(p).bytes;
}

const int32_t *keptIndices(const EvictLaunch &launch) {
  return evictWorkspace(launch).kept;
}

Status selectEntries(const EvictLaunch &p, cudaStream_t stream) {
  if (!p.count)
    return Status::ok();
  if (p.cache.kvHeads > kMaxHeads)
    return Status::error("the GPU's eviction selects over at most " +
                         std::to_string(kMaxHeads) + " KV heads a layer");
  const EvictWorkspace w = evictWorkspace(p);
  const size_t cleared = reinterpret_cast<char *>(w.tileCounts) -
                         reinterpret_cast<char *>(w.histograms);
  if (cudaError_t e = cudaMemsetAsync(w.histograms, 0, cleared, stream))
    return cudaFailed("clearing the eviction's histograms", e);
  const uint32_t selectTiles = tiles(p.maxLength, kEvictSelectTile);
  const dim3 grid(selectTiles, p.count * (p.shared ? 1 : p.cache.kvHeads));
  combineKernel<<<grid, kThreads, 0, stream>>>(
      p, w, p.scoring == EvictScoring::TriAttention,
      tiles(p.maxLength, kEvictScoreTile));
  for (int pass = 1; pass < 3; ++pass)
    passKernel<<<grid, kThreads, 0, stream>>>(p, w, pass);
  countKernel<<<grid, kThreads, 0, stream>>>(p, w, selectTiles);
  writeKernel<<<grid, kThreads, 0, stream>>>(p, w, selectTiles);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the eviction selection", e);
  return Status::ok();
}

} // namespace kvrt::cuda
