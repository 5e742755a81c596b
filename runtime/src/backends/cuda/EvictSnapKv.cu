//===- EvictSnapKv.cu - SnapKV's scores of every cached entry -------------===//
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
// exponentials over its tile (the workspace's partials), the second joins
// the tiles' partials and sums each query head's weights per entry (the
// votes); a third kernel pools. A block holds the group's query rows in
// shared memory, decodes a pass of keys there (d / 16 lanes a key, as
// TriAttention's scorer reads them: EvictKeyChunks.cuh), both stored
// coordinate-major, and each thread makes the logits of 4 rows and 4 keys
// in fp32, 16 FMAs per pair of float4 loads. About 2 * rows * d FMAs a key
// for both launches: for Llama-3-8B's shape (128 rows, d = 128) the work is
// the FMA units', not the bytes'.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/backends/cuda/EvictKeyChunks.cuh"

#include <climits>
#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

using evictkeys::Kind;
using evictkeys::Raw;

constexpr int kThreads = 256;
/// The block's query rows and a pass's logits, at most (floats each).
constexpr uint32_t kQueryFloats = 16384, kLogitFloats = 16384;

/// How a block lays out its work and shared memory for head dimension d:
/// a pass decodes keysPerPass keys (d / 16 lanes a key), and each thread
/// makes the logits of 4 rows and 4 keys from them, an outer product per
/// coordinate of two float4 loads (the rows' queries and the keys stored
/// coordinate-major).
struct Layout {
  int d, lanes, keysPerPass, keyGroups, rowGroups, rows, paddedRows;
  __host__ __device__ Layout(int d, int group, int observe)
      : d(d), lanes(d / 16 > 1 ? d / 16 : 1), keysPerPass(kThreads / lanes),
        keyGroups(keysPerPass / 4), rowGroups(kThreads / keyGroups),
        rows(group * observe), paddedRows((rows + 3) / 4 * 4) {}
  /// Logits a row takes: keysPerPass and 4 more, so that a warp's float4
  /// stores of 4 rows and 8 key groups spread over the banks.
  __host__ __device__ int logitStride() const { return keysPerPass + 4; }
  /// Floats: queries [d][paddedRows], keys [d][keysPerPass], logits
  /// [paddedRows][logitStride()], row maxima and sums [paddedRows] each;
  /// then ints: row positions [paddedRows], key positions [keysPerPass].
  __host__ __device__ size_t bytes() const {
    return (size_t(paddedRows) * d + size_t(keysPerPass) * d +
            size_t(paddedRows) * logitStride() + 3 * size_t(paddedRows) +
            keysPerPass) *
           4;
  }
};

/// Logits of (observed query row, entry) for the entries of blockIdx.x's
/// tile; Votes = false: each row's maximum and sum of exponentials over the
/// tile into the partials; Votes = true: each query head's weights summed
/// over the window into the votes, normalised by the partials of every
/// tile.
template <Kind K, bool Votes>
__global__ void __launch_bounds__(kThreads)
    snapKvKernel(EvictLaunch p, EvictWorkspace w) {
  // float4: queries, keys and logits are read four at a time.
  extern __shared__ float4 sharedWords[];
  float *shared = reinterpret_cast<float *>(sharedWords);
  const EvictSequence s = p.sequences[blockIdx.z];
  const int kvHead = blockIdx.y, d = int(p.cache.headDim);
  const int first = int(blockIdx.x * kEvictScoreTile);
  if (first >= s.length)
    return;
  const int group = int(p.qHeads / p.cache.kvHeads), observe = int(p.observe);
  const Layout layout{d, group, observe};
  const int rows = layout.rows, padded = layout.paddedRows;
  const int keysPerPass = layout.keysPerPass, lanes = layout.lanes;
  const int logitStride = layout.logitStride();
  float *queries = shared;
  float *keys = queries + padded * d;
  float *logits = keys + keysPerPass * d;
  float *rowMax = logits + padded * logitStride;
  float *rowSum = rowMax + padded;
  int *rowPosition = reinterpret_cast<int *>(rowSum + padded);
  int *keyPosition = rowPosition + padded;
  const int tid = int(threadIdx.x);
  const size_t row = size_t(blockIdx.z) * p.cache.kvHeads + kvHead;
  const uint32_t tiles = gridDim.x;

  // Row h * observe + j: query head kvHead * group + h at window place j;
  // rows past `rows` (padding) see nothing.
  const size_t width = size_t(p.qHeads) * d;
  const float *ring = p.observed + size_t(s.observedRow) * observe * width;
  for (int i = tid; i < padded * d; i += kThreads) {
    const int r = i % padded, c = i / padded, h = r / observe, j = r % observe;
    queries[i] =
        r < rows ? ring[j * width + size_t(kvHead * group + h) * d + c] : 0.0f;
  }
  for (int r = tid; r < padded; r += kThreads) {
    rowPosition[r] =
        r < rows
            ? p.observedPositions[size_t(s.observedRow) * observe + r % observe]
            : -1;
    if constexpr (Votes) {
      // The row's maximum and sum over the whole sequence; tiles past its
      // length made none.
      const uint32_t made =
          (uint32_t(s.length) + kEvictScoreTile - 1) / kEvictScoreTile;
      const float2 *partial = w.partials + row * tiles * padded + r;
      float m = -INFINITY;
      for (uint32_t t = 0; t < made; ++t)
        m = fmaxf(m, partial[t * padded].x);
      float sum = 0;
      for (uint32_t t = 0; t < made && m != -INFINITY; ++t)
        if (partial[t * padded].x != -INFINITY)
          sum += partial[t * padded].y * expf(partial[t * padded].x - m);
      rowMax[r] = m;
      rowSum[r] = sum > 0 ? 1.0f / sum : 0.0f;
    } else {
      rowMax[r] = -INFINITY;
      rowSum[r] = 0;
    }
  }

  const int32_t *table =
      p.cache.pageTables + size_t(s.tableRow) * p.cache.pageTableStride;
  const DeviceSideLayout &side = p.cache.key;
  const int pageSize = int(p.cache.pageSize);
  const int last = min(s.length, first + int(kEvictScoreTile));
  const int keyGroup = tid % layout.keyGroups,
            rowGroup = tid / layout.keyGroups;
  for (int base = first; base < last; base += keysPerPass) {
    __syncthreads(); // The previous pass's keys and logits are read.
    {
      // Neighbouring threads take neighbouring keys: their coordinate-major
      // stores meet no bank twice.
      const int k = tid % keysPerPass, lane = tid / keysPerPass, i = base + k;
      if (i < last) {
        const int page = i / pageSize, slot = i - page * pageSize;
        const size_t area = size_t(table[page]) * p.cache.kvHeads + kvHead;
        const uint8_t *bytes = p.cache.keys + area * side.areaStride;
        Raw raw;
        raw.blockScales = 0;
        evictkeys::loadChunks<K>(
            bytes, bytes + side.codesOffset + size_t(slot) * side.entryBytes,
            side, lane, lanes, d, raw);
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          float x[8];
          evictkeys::decodeChunk<K>(raw, c, side, x);
#pragma unroll
          for (int j = 0; j < 8; ++j)
            keys[(8 * (lane + c * lanes) + j) * keysPerPass + k] = x[j];
        }
        if (lane == 0)
          keyPosition[k] = p.positions[area * pageSize + slot];
      } else if (lane == 0) {
        keyPosition[k] = INT_MAX; // Past the tile: seen by no row.
      }
    }
    __syncthreads();
    for (int r0 = 4 * rowGroup; r0 < padded; r0 += 4 * layout.rowGroups) {
      float dot[4][4] = {};
      for (int c = 0; c < d; ++c) {
        const float4 q =
            *reinterpret_cast<const float4 *>(queries + c * padded + r0);
        const float4 k = *reinterpret_cast<const float4 *>(
            keys + c * keysPerPass + 4 * keyGroup);
        const float qs[4] = {q.x, q.y, q.z, q.w}, ks[4] = {k.x, k.y, k.z, k.w};
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
          for (int b = 0; b < 4; ++b)
            dot[a][b] += qs[a] * ks[b];
      }
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const int at = rowPosition[r0 + a];
        float out[4];
#pragma unroll
        for (int b = 0; b < 4; ++b)
          out[b] = at >= 0 && keyPosition[4 * keyGroup + b] <= at
                       ? dot[a][b] * p.scale
                       : -INFINITY;
        *reinterpret_cast<float4 *>(logits + (r0 + a) * logitStride +
                                    4 * keyGroup) =
            make_float4(out[0], out[1], out[2], out[3]);
      }
    }
    __syncthreads();
    if constexpr (!Votes) {
      // Keys past the tile are -inf: skipped like hidden ones.
      for (int r = tid; r < padded; r += kThreads) {
        float m = rowMax[r], sum = rowSum[r];
        for (int k = 0; k < keysPerPass; k += 4) {
          const float4 l4 =
              *reinterpret_cast<const float4 *>(logits + r * logitStride + k);
          for (const float l : {l4.x, l4.y, l4.z, l4.w}) {
            if (l == -INFINITY)
              continue;
            if (l > m) {
              sum = sum * expf(m - l) + 1.0f;
              m = l;
            } else {
              sum += expf(l - m);
            }
          }
        }
        rowMax[r] = m;
        rowSum[r] = sum;
      }
    } else {
      const int count = min(keysPerPass, last - base);
      for (int task = tid; task < group * keysPerPass; task += kThreads) {
        const int h = task / keysPerPass, key = task % keysPerPass;
        if (key >= count)
          continue;
        float vote = 0;
        for (int j = 0; j < observe; ++j) {
          const int r = h * observe + j;
          const float l = logits[r * logitStride + key];
          if (l != -INFINITY)
            vote += expf(l - rowMax[r]) * rowSum[r];
        }
        w.votes[(row * group + h) * p.maxLength + base + key] = vote;
      }
    }
  }
  if constexpr (!Votes) {
    __syncthreads();
    float2 *partial = w.partials + (row * tiles + blockIdx.x) * padded;
    for (int r = tid; r < padded; r += kThreads)
      partial[r] = make_float2(rowMax[r], rowSum[r]);
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

template <Kind K>
Status launchSnapKv(const EvictLaunch &p, const EvictWorkspace &w,
                    const dim3 &grid, size_t bytes, cudaStream_t stream) {
  for (const void *kernel :
       {reinterpret_cast<const void *>(&snapKvKernel<K, false>),
        reinterpret_cast<const void *>(&snapKvKernel<K, true>)})
    if (cudaError_t e = cudaFuncSetAttribute(
            kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)))
      return cudaFailed("sizing SnapKV's shared memory", e);
  snapKvKernel<K, false><<<grid, kThreads, bytes, stream>>>(p, w);
  snapKvKernel<K, true><<<grid, kThreads, bytes, stream>>>(p, w);
  return Status::ok();
}

} // namespace

Status snapKvFits(uint32_t group, uint32_t observe, uint32_t headDim) {
  // Within the queries' bound Layout's int arithmetic cannot overflow.
  if ((uint64_t(group) * observe + 3) / 4 * 4 * headDim <= kQueryFloats) {
    const Layout layout{int(headDim), int(group), int(observe)};
    if (uint64_t(layout.paddedRows) * layout.logitStride() <= kLogitFloats)
      return Status::ok();
  }
  return Status::error(
      "SnapKV on the GPU holds a KV head's observed query rows (" +
      std::to_string(group) + " heads x " + std::to_string(observe) +
      " queries of " + std::to_string(headDim) +
      " coordinates) in shared memory, at most " +
      std::to_string(kQueryFloats) + " floats and " +
      std::to_string(kLogitFloats) +
      " logits a pass of keys; observe fewer "
      "queries, or run it on the cpu backend");
}

Status scoreSnapKv(const EvictLaunch &p, const EvictWorkspace &w,
                   cudaStream_t stream) {
  const uint32_t group = p.qHeads / p.cache.kvHeads;
  KVRT_RETURN_IF_ERROR(snapKvFits(group, p.observe, p.cache.headDim));
  const dim3 grid((p.maxLength + kEvictScoreTile - 1) / kEvictScoreTile,
                  p.cache.kvHeads, p.count);
  const size_t bytes =
      Layout{int(p.cache.headDim), int(group), int(p.observe)}.bytes();
  switch (p.cache.key.kind) {
  case Kind::Bf16:
    KVRT_RETURN_IF_ERROR(launchSnapKv<Kind::Bf16>(p, w, grid, bytes, stream));
    break;
  case Kind::Fp8E4M3:
    KVRT_RETURN_IF_ERROR(
        launchSnapKv<Kind::Fp8E4M3>(p, w, grid, bytes, stream));
    break;
  default:
    KVRT_RETURN_IF_ERROR(launchSnapKv<Kind::Nvfp4>(p, w, grid, bytes, stream));
    break;
  }
  poolKernel<<<grid, kThreads, 0, stream>>>(p, w);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching SnapKV's scores", e);
  return Status::ok();
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
