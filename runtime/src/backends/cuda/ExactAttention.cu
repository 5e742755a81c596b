//===- ExactAttention.cu - Attention over the tokens kept exact -----------===//
//
// One block per (KV head, row) of eight warps, over the row's exact tokens
// (ExactTokens.h: the store's sinks and window below `before`, then the
// call's own tokens up to the row) in tiles of 64. A tile's keys and values
// are loaded into shared memory at once (16 bytes a thread, so that every
// load of the tile is in flight together: a row has few tokens, and their
// latency, not their bytes, is the cost), the key rows two bf16 apart so
// that a warp's 32 tokens read 32 banks. Then one thread per (token, query
// head) scores, one warp per head updates the running maximum and sum, and
// one thread per (head, coordinate) accumulates the weighted values. Block
// z of Z takes tiles z, z + Z, ... and leaves one of the row's last Z
// splits: maximum and sum in the log2 units of the split kernels' partials
// and, for polar, the output rotated into the value domain the other
// splits are in, so that SplitReduce.cu and the rotation back after it
// treat it as one more split. Beside sparse selection (SparseSelect.h)
// the rows are a sparse layer's decode rows, and a sink whose codes the
// row could have read counts only where the selection listed it.
//
// storeExactTokens() copies each row's own token into the store: 16 bytes
// a thread.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/ExactTokens.h"
#include "runtime/src/backends/cuda/RotateRows.cuh"
#include "runtime/src/backends/cuda/SplitBlock.cuh"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = int(kExactTileTokens);
constexpr int kMaxGroup = 8;

struct ExactParams {
  ExactTokensView exact;
  const int32_t *positions;
  const int32_t *pageTables;
  const int32_t *tableRows;
  const int32_t *lengths;
  const float *q;
  const int32_t *queryPositions;
  float *partialOut;
  float *partialMaxSum;
  uint32_t pageTableStride;
  uint32_t pageSize;
  uint32_t kvHeads;
  uint32_t qHeads;
  uint32_t splits;
  float scaleLog2;
  int32_t slidingWindow;
  bool rotate;
  uint32_t valueSigns[4];
  ListedEntries listed;
};

/// Where a row's exact tokens are: token t of `count`, in the order sinks,
/// window, the call's own.
struct RowTokens {
  const ExactTokensView &e;
  size_t storeRow;
  int sinks, windowBegin, windowed, before, own, ownRow, kvHeads, kvHead;
  /// Tokens [0, coded) are read as codes (but the sinks).
  int coded;

  __device__ int index(int t) const {
    return t < sinks              ? t
           : t < sinks + windowed ? windowBegin + (t - sinks)
                                  : before + (t - sinks - windowed);
  }
  /// The offset of token t's entry (in bf16) in the store, or (own tokens)
  /// in the call's bf16 copy; `isOwn` says which.
  template <int D> __device__ size_t entry(int t, bool &isOwn) const {
    isOwn = t >= sinks + windowed;
    if (isOwn)
      return (size_t(ownRow + t - sinks - windowed) * kvHeads + kvHead) * D;
    const int i = index(t);
    return (storeRow + (t < sinks ? i : e.sinks + i % int(e.window))) * D;
  }
};

/// Whether `index` is among row r's first listed entries (ascending, so a
/// sink is among the first `index + 1`).
__device__ bool listed(const ListedEntries &l, int r, int index) {
  const int32_t *entries = l.entries + size_t(r) * l.stride;
  const int count = min(int(l.counts[r]), index + 1);
  for (int j = 0; j < count; ++j)
    if (entries[j] >= index)
      return entries[j] == index;
  return false;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    exactAttentionKernel(const ExactParams p) {
  // Key rows D + 2 bf16 apart: word j of token t is in bank (t + j) % 32.
  constexpr int kKeyStride = D + 2;
  constexpr int kOutputs = (kMaxGroup * D + kThreads - 1) / kThreads;
  __shared__ float q[kMaxGroup][D];
  __shared__ __align__(16) uint16_t keys[kTile * kKeyStride];
  __shared__ __align__(16) uint16_t values[kTile * D];
  __shared__ float weights[kMaxGroup][kTile];
  __shared__ bool visible[kTile];
  __shared__ float runMax[kMaxGroup], runSum[kMaxGroup], rescale[kMaxGroup];

  const ExactTokensView &e = p.exact;
  const int kvHead = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
  const int group = int(p.qHeads / p.kvHeads);
  const int tableRow = p.tableRows ? p.tableRows[b] : b;
  const int slot = e.calls[3 * tableRow], before = e.calls[3 * tableRow + 1];
  const int own = p.lengths[b] - before;
  const int coded = codedTokens(before, int(e.recent), int(e.flushGroup));
  RowTokens tokens{e,
                   (size_t(slot) * p.kvHeads + kvHead) * (e.sinks + e.window),
                   min(int(e.sinks), before),
                   max(int(e.sinks), coded),
                   0,
                   before,
                   own,
                   int(e.firstRow) + b - (own - 1),
                   int(p.kvHeads),
                   kvHead,
                   coded};
  tokens.windowed = max(0, before - tokens.windowBegin);
  const int count = tokens.sinks + tokens.windowed + own;
  const int32_t *table = p.pageTables + size_t(tableRow) * p.pageTableStride;
  const int pageSize = int(p.pageSize);
  const int queryPosition = p.queryPositions[b];
  const size_t firstQuery = size_t(b) * p.qHeads + size_t(kvHead) * group;

  for (int i = tid; i < group * D; i += kThreads)
    q[i / D][i % D] = p.q[firstQuery * D + i] * p.scaleLog2;
  if (tid < kMaxGroup) {
    runMax[tid] = -INFINITY;
    runSum[tid] = 0.0f;
  }
  float acc[kOutputs] = {};

  for (int first = blockIdx.z * kTile; first < count;
       first += gridDim.z * kTile) {
    const int tile = min(kTile, count - first);
    // Every 16-byte chunk of the tile's keys and values: all loads issued
    // before the first store, so that their latencies overlap.
    constexpr int kChunks = D / 8, kLoads = 2 * kTile * kChunks / kThreads;
    uint4 staged[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int c = tid + i * kThreads, k = c % (kTile * kChunks);
      const int t = k / kChunks;
      if (t >= tile)
        continue;
      bool isOwn;
      const size_t at = tokens.template entry<D>(first + t, isOwn);
      const bool value = c >= kTile * kChunks;
      const uint16_t *from = (value ? (isOwn ? e.ownValues : e.values)
                                    : (isOwn ? e.ownKeys : e.keys)) +
                             at;
      staged[i] = reinterpret_cast<const uint4 *>(from)[k % kChunks];
    }
    // The positions' loads while the chunks' are in flight.
    if (tid < tile) {
      const int index = tokens.index(first + tid);
      const int position =
          p.positions[size_t(table[index / pageSize]) * pageSize +
                      index % pageSize];
      visible[tid] =
          position <= queryPosition &&
          (!p.slidingWindow || queryPosition - position < p.slidingWindow) &&
          (!p.listed.entries || index >= tokens.coded ||
           listed(p.listed, b * int(p.kvHeads) + kvHead, index));
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int c = tid + i * kThreads, k = c % (kTile * kChunks);
      const int t = k / kChunks, chunk = k % kChunks;
      if (t >= tile)
        continue;
      if (c >= kTile * kChunks) {
        reinterpret_cast<uint4 *>(values + t * D)[chunk] = staged[i];
      } else {
        uint32_t *row =
            reinterpret_cast<uint32_t *>(keys + t * kKeyStride) + chunk * 4;
        row[0] = staged[i].x;
        row[1] = staged[i].y;
        row[2] = staged[i].z;
        row[3] = staged[i].w;
      }
    }
    __syncthreads();

    // Scores: thread (token t, head g), in log2 units.
    for (int pair = tid; pair < group * kTile; pair += kThreads) {
      const int g = pair / kTile, t = pair % kTile;
      if (t >= tile)
        continue;
      const uint32_t *row =
          reinterpret_cast<const uint32_t *>(keys + t * kKeyStride);
      // Four partial sums: four chains of FMAs in flight, not one.
      float score[4] = {};
#pragma unroll 16
      for (int j = 0; j < D / 2; ++j) {
        const uint32_t two = row[j];
        score[j % 2] =
            fmaf(q[g][2 * j], __uint_as_float(two << 16), score[j % 2]);
        score[2 + j % 2] =
            fmaf(q[g][2 * j + 1], __uint_as_float(two & 0xffff0000u),
                 score[2 + j % 2]);
      }
      weights[g][t] = visible[t] ? (score[0] + score[1]) + (score[2] + score[3])
                                 : -INFINITY;
    }
    __syncthreads();

    // Warp g: the tile's weights and head g's running maximum and sum.
    const int warp = tid / 32, lane = tid % 32;
    if (warp < group) {
      const WarpExp2 row = warpExp2(weights[warp], tile, runMax[warp]);
      if (lane == 0) {
        const float keep =
            runMax[warp] == -INFINITY ? 0.0f : exp2f(runMax[warp] - row.max);
        rescale[warp] = keep;
        runSum[warp] = fmaf(runSum[warp], keep, row.sum);
        runMax[warp] = row.max;
      }
    }
    __syncthreads();

    // Outputs: thread (head g, coordinate d).
#pragma unroll
    for (int k = 0; k < kOutputs; ++k) {
      const int out = tid + k * kThreads, g = out / D, d = out % D;
      if (g >= group)
        continue;
      float sum[4] = {acc[k] * rescale[g]};
      int t = 0;
      for (; t + 4 <= tile; t += 4)
#pragma unroll
        for (int u = 0; u < 4; ++u)
          sum[u] = fmaf(
              weights[g][t + u],
              __uint_as_float(uint32_t(values[(t + u) * D + d]) << 16), sum[u]);
      for (; t < tile; ++t)
        sum[0] =
            fmaf(weights[g][t],
                 __uint_as_float(uint32_t(values[t * D + d]) << 16), sum[0]);
      acc[k] = (sum[0] + sum[1]) + (sum[2] + sum[3]);
    }
    __syncthreads();
  }

  // The partial: outputs through shared memory (the keys' tile) for polar's
  // rotation, then out.
  float *outputs = reinterpret_cast<float *>(keys);
  static_assert(kMaxGroup * D * 4 <= kTile * kKeyStride * 2,
                "the outputs fit the keys' tile");
#pragma unroll
  for (int k = 0; k < kOutputs; ++k) {
    const int out = tid + k * kThreads;
    if (out < group * D)
      outputs[out] = acc[k];
  }
  __syncthreads();
  if (p.rotate)
    rotateRowsInShared(outputs, group, D, p.valueSigns, false, tid, kThreads,
                       [] { __syncthreads(); });
  for (int g = 0; g < group; ++g) {
    const size_t split =
        (firstQuery + g) * p.splits + p.splits - gridDim.z + blockIdx.z;
    for (int d = tid; d < D; d += kThreads)
      p.partialOut[split * D + d] = outputs[g * D + d];
    if (tid == 0) {
      p.partialMaxSum[split * 2] = runMax[g];
      p.partialMaxSum[split * 2 + 1] = runSum[g];
    }
  }
}

struct StoreParams {
  ExactTokensView exact;
  const int32_t *lengths;
  const int32_t *tableRows;
  uint32_t kvHeads;
  uint32_t headDim;
};

__global__ void storeExactKernel(const StoreParams p) {
  const ExactTokensView &e = p.exact;
  const int r = blockIdx.x;
  const int index = p.lengths[r] - 1;
  const int32_t *call = e.calls + 3 * (p.tableRows ? p.tableRows[r] : r);
  const int sinks = int(e.sinks), window = int(e.window);
  int entry;
  if (index < sinks)
    entry = index;
  else if (window && index >= call[2] - window)
    entry = sinks + index % window;
  else
    return;
  // 16-byte chunks of a head's entry, then every head's keys and values.
  const int chunks = int(p.headDim) / 8, perSide = int(p.kvHeads) * chunks;
  for (int c = threadIdx.x; c < 2 * perSide; c += blockDim.x) {
    const bool value = c >= perSide;
    const int k = value ? c - perSide : c, head = k / chunks;
    const uint16_t *from =
        (value ? e.ownValues : e.ownKeys) +
        (size_t(e.firstRow + r) * p.kvHeads + head) * p.headDim;
    uint16_t *to =
        (value ? e.values : e.keys) +
        ((size_t(call[0]) * p.kvHeads + head) * (e.sinks + e.window) + entry) *
            p.headDim;
    reinterpret_cast<uint4 *>(to)[k % chunks] =
        reinterpret_cast<const uint4 *>(from)[k % chunks];
  }
}

} // namespace

bool launchExactAttention(const PagedKvView &cache, const float *q,
                          const int32_t *queryPositions, uint32_t batch,
                          uint32_t qHeads, float scaleLog2,
                          int32_t slidingWindow, float *partialOut,
                          float *partialMaxSum, uint32_t splits,
                          uint32_t exactSplits, const uint32_t *valueSigns,
                          const ListedEntries &listed, cudaStream_t stream) {
  if ((cache.headDim != 64 && cache.headDim != 128) || !cache.kvHeads ||
      qHeads % cache.kvHeads || qHeads / cache.kvHeads > kMaxGroup ||
      !exactSplits || splits <= exactSplits)
    return false;
  ExactParams p{cache.exact,
                cache.positions,
                cache.pageTables,
                cache.tableRows,
                cache.lengths,
                q,
                queryPositions,
                partialOut,
                partialMaxSum,
                cache.pageTableStride,
                cache.pageSize,
                cache.kvHeads,
                qHeads,
                splits,
                scaleLog2,
                slidingWindow,
                valueSigns != nullptr,
                {},
                listed};
  if (valueSigns)
    for (int i = 0; i < 4; ++i)
      p.valueSigns[i] = valueSigns[i];
  const dim3 grid(cache.kvHeads, batch, exactSplits);
  if (cache.headDim == 64)
    exactAttentionKernel<64><<<grid, kThreads, 0, stream>>>(p);
  else
    exactAttentionKernel<128><<<grid, kThreads, 0, stream>>>(p);
  return cudaPeekAtLastError() == cudaSuccess;
}

Status storeExactTokens(const PagedKvView &view, uint32_t rows,
                        cudaStream_t stream) {
  if (!view.exact.active() || rows == 0)
    return Status::ok();
  if (view.headDim % 8)
    return Status::error("exact tokens on CUDA need a head dimension that "
                         "is a multiple of 8");
  StoreParams p{view.exact, view.lengths, view.tableRows, view.kvHeads,
                view.headDim};
  storeExactKernel<<<rows, 128, 0, stream>>>(p);
  if (cudaError_t error = cudaGetLastError())
    return Status::error(std::string("storing exact tokens failed: ") +
                         cudaGetErrorString(error));
  return Status::ok();
}

} // namespace kvrt::cuda
