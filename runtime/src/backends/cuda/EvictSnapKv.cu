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
// H2O (accumulateH2o) runs the same two launches for a prefill's rows (the
// decode attention adds its rows' weights itself: AttentionMass.cu), a
// block per (tile, KV head, row of the call) over the group's queries of
// that row, and the second adds each entry's weights, summed over the
// group, to the layer's mass with atomicAdd (a prefill's rows meet in one
// entry, so the order of the additions, and their rounding, varies).
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
/// Dynamic shared memory a launch may take without asking for more.
constexpr size_t kDefaultSharedBytes = 48 * 1024;

/// How a block lays out its work and shared memory for head dimension d:
/// a pass decodes keysPerPass keys (d / 16 lanes a key), and each thread
/// makes the logits of 4 rows and 4 keys from them, an outer product per
/// coordinate of two float4 loads (the rows' queries and the keys stored
/// coordinate-major). With 4 rows or fewer (H2O's one row of a group) the
/// row groups would idle: they split the coordinates instead (d / 4 =
/// rowGroups slices of 4) and sum their products through shared memory.
struct Layout {
  int d, lanes, keysPerPass, keyGroups, rowGroups, rows, paddedRows;
  __host__ __device__ Layout(int d, int group, int observe)
      : d(d), lanes(d / 16 > 1 ? d / 16 : 1), keysPerPass(kThreads / lanes),
        keyGroups(keysPerPass / 4), rowGroups(kThreads / keyGroups),
        rows(group * observe), paddedRows((rows + 3) / 4 * 4) {}
  /// Logits a row takes: keysPerPass and 4 more, so that a warp's float4
  /// stores of 4 rows and 8 key groups spread over the banks.
  __host__ __device__ int logitStride() const { return keysPerPass + 4; }
  /// Whether the row groups split the coordinates, and the products they
  /// sum then: [rowGroups][4][keysPerPass].
  __host__ __device__ bool splitsCoordinates() const {
    return paddedRows == 4 && rowGroups * 4 == d;
  }
  __host__ __device__ size_t splitFloats() const {
    return splitsCoordinates() ? size_t(rowGroups) * 4 * keysPerPass : 0;
  }
  /// Floats: queries [d][paddedRows], keys [d][keysPerPass], logits
  /// [paddedRows][logitStride()], row maxima and sums [paddedRows] each;
  /// then ints: row positions [paddedRows], key positions [keysPerPass];
  /// then the split coordinates' products.
  __host__ __device__ size_t bytes() const {
    return (size_t(paddedRows) * d + size_t(keysPerPass) * d +
            size_t(paddedRows) * logitStride() + 3 * size_t(paddedRows) +
            keysPerPass + splitFloats()) *
           4;
  }
};

/// dot[a][b] += q[a] k[b]: one coordinate of 4 rows' and 4 keys' products.
__device__ __forceinline__ void
addOuterProduct(float (&dot)[4][4], const float4 &q, const float4 &k) {
  const float qs[4] = {q.x, q.y, q.z, q.w}, ks[4] = {k.x, k.y, k.z, k.w};
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b)
      dot[a][b] += qs[a] * ks[b];
}

/// Logits of (observed query row, entry) for the entries of blockIdx.x's
/// tile; Votes = false: each row's maximum and sum of exponentials over the
/// tile into the partials; Votes = true: each query head's weights summed
/// over the window into the votes, normalised by the partials of every
/// tile. H2o: blockIdx.z is a row of the call (`rows`) and its group's
/// queries the observed rows (one place of the window); Votes adds the
/// weights, summed over the group, to the layer's mass instead.
template <Kind K, bool Votes, bool H2o>
__global__ void __launch_bounds__(kThreads)
    snapKvKernel(EvictLaunch p, EvictWorkspace w, H2oRows calls) {
  // float4: queries, keys and logits are read four at a time.
  extern __shared__ float4 sharedWords[];
  float *shared = reinterpret_cast<float *>(sharedWords);
  int length, tableRow, observedRow = 0;
  if constexpr (H2o) {
    length = calls.rowLengths[blockIdx.z];
    tableRow = calls.rowTables[blockIdx.z];
  } else {
    const EvictSequence s = p.sequences[blockIdx.z];
    length = s.length;
    tableRow = s.tableRow;
    observedRow = s.observedRow;
  }
  const int kvHead = blockIdx.y, d = int(p.cache.headDim);
  const int first = int(blockIdx.x * kEvictScoreTile);
  if (first >= length)
    return;
  const int group = int(p.qHeads / p.cache.kvHeads),
            observe = H2o ? 1 : int(p.observe);
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
  float *products = reinterpret_cast<float *>(keyPosition + keysPerPass);
  const int tid = int(threadIdx.x);
  const size_t row = size_t(blockIdx.z) * p.cache.kvHeads + kvHead;
  const uint32_t tiles = gridDim.x;

  // Row h * observe + j: query head kvHead * group + h at window place j;
  // rows past `rows` (padding) see nothing.
  const size_t width = H2o ? calls.queryStride : size_t(p.qHeads) * d;
  const float *ring =
      H2o ? calls.queries + size_t(blockIdx.z) * calls.queryStride
          : p.observed + size_t(observedRow) * observe * width;
  for (int i = tid; i < padded * d; i += kThreads) {
    const int r = i % padded, c = i / padded, h = r / observe, j = r % observe;
    queries[i] =
        r < rows ? ring[j * width + size_t(kvHead * group + h) * d + c] : 0.0f;
  }
  for (int r = tid; r < padded; r += kThreads) {
    rowPosition[r] =
        r >= rows ? -1
        : H2o
            ? calls.rowPositions[blockIdx.z]
            : p.observedPositions[size_t(observedRow) * observe + r % observe];
    if constexpr (Votes) {
      // The row's maximum and sum over the whole sequence; tiles past its
      // length made none.
      const uint32_t made =
          (uint32_t(length) + kEvictScoreTile - 1) / kEvictScoreTile;
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
      p.cache.pageTables + size_t(tableRow) * p.cache.pageTableStride;
  const DeviceSideLayout &side = p.cache.key;
  const int pageSize = int(p.cache.pageSize);
  const int last = min(length, first + int(kEvictScoreTile));
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
    if (layout.splitsCoordinates()) {
      // Row group g takes coordinates 4g .. 4g + 3 of the 4 rows.
      float dot[4][4] = {};
#pragma unroll
      for (int c = 4 * rowGroup; c < 4 * rowGroup + 4; ++c) {
        const float4 q = *reinterpret_cast<const float4 *>(queries + c * 4);
        const float4 k = *reinterpret_cast<const float4 *>(
            keys + c * keysPerPass + 4 * keyGroup);
        addOuterProduct(dot, q, k);
      }
#pragma unroll
      for (int a = 0; a < 4; ++a)
        *reinterpret_cast<float4 *>(
            products + (rowGroup * 4 + a) * keysPerPass + 4 * keyGroup) =
            make_float4(dot[a][0], dot[a][1], dot[a][2], dot[a][3]);
      __syncthreads();
      for (int t = tid; t < 4 * keysPerPass; t += kThreads) {
        const int a = t / keysPerPass, k = t % keysPerPass;
        float sum = 0;
        for (int g = 0; g < layout.rowGroups; ++g)
          sum += products[(g * 4 + a) * keysPerPass + k];
        const int at = rowPosition[a];
        logits[a * logitStride + k] =
            at >= 0 && keyPosition[k] <= at ? sum * p.scale : -INFINITY;
      }
    }
    for (int r0 = 4 * rowGroup; r0 < padded && !layout.splitsCoordinates();
         r0 += 4 * layout.rowGroups) {
      float dot[4][4] = {};
      for (int c = 0; c < d; ++c) {
        const float4 q =
            *reinterpret_cast<const float4 *>(queries + c * padded + r0);
        const float4 k = *reinterpret_cast<const float4 *>(
            keys + c * keysPerPass + 4 * keyGroup);
        addOuterProduct(dot, q, k);
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
    } else if constexpr (H2o) {
      // The group's weights of each key, added to its entry's mass.
      const int count = min(keysPerPass, last - base);
      for (int key = tid; key < count; key += kThreads) {
        float sum = 0;
        for (int h = 0; h < group; ++h) {
          const float l = logits[h * logitStride + key];
          if (l != -INFINITY)
            sum += expf(l - rowMax[h]) * rowSum[h];
        }
        const int i = base + key, page = i / pageSize;
        if (sum > 0)
          atomicAdd(p.mass +
                        (size_t(table[page]) * p.cache.kvHeads + kvHead) *
                            pageSize +
                        (i - page * pageSize),
                    sum);
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

/// The partials launch, then the votes (SnapKV) or the mass (H2O).
template <Kind K, bool H2o>
Status launchSoftmax(const EvictLaunch &p, const EvictWorkspace &w,
                     const H2oRows &calls, const dim3 &grid, size_t bytes,
                     cudaStream_t stream) {
  // Past the default 48 KB only (SnapKV's larger windows, outside any
  // graph capture: H2O's one row of queries stays below).
  for (const void *kernel :
       {reinterpret_cast<const void *>(&snapKvKernel<K, false, H2o>),
        reinterpret_cast<const void *>(&snapKvKernel<K, true, H2o>)})
    if (bytes > kDefaultSharedBytes)
      if (cudaError_t e = cudaFuncSetAttribute(
              kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)))
        return cudaFailed("sizing the attention weights' shared memory", e);
  snapKvKernel<K, false, H2o><<<grid, kThreads, bytes, stream>>>(p, w, calls);
  snapKvKernel<K, true, H2o><<<grid, kThreads, bytes, stream>>>(p, w, calls);
  return Status::ok();
}

template <bool H2o>
Status launchByKind(const EvictLaunch &p, const EvictWorkspace &w,
                    const H2oRows &calls, const dim3 &grid, size_t bytes,
                    cudaStream_t stream) {
  switch (p.cache.key.kind) {
  case Kind::Bf16:
    return launchSoftmax<Kind::Bf16, H2o>(p, w, calls, grid, bytes, stream);
  case Kind::Fp8E4M3:
    return launchSoftmax<Kind::Fp8E4M3, H2o>(p, w, calls, grid, bytes, stream);
  default:
    return launchSoftmax<Kind::Nvfp4, H2o>(p, w, calls, grid, bytes, stream);
  }
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
  KVRT_RETURN_IF_ERROR(launchByKind<false>(p, w, {}, grid, bytes, stream));
  poolKernel<<<grid, kThreads, 0, stream>>>(p, w);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching SnapKV's scores", e);
  return Status::ok();
}

size_t h2oPartialsBytes(const EvictLaunch &p, const H2oRows &calls) {
  const Layout layout{int(p.cache.headDim), int(p.qHeads / p.cache.kvHeads), 1};
  return size_t(calls.rows) * p.cache.kvHeads *
         ((calls.maxLength + kEvictScoreTile - 1) / kEvictScoreTile) *
         layout.paddedRows * sizeof(float2);
}

Status accumulateH2o(const EvictLaunch &p, const H2oRows &calls,
                     float2 *partials, cudaStream_t stream) {
  if (!calls.rows)
    return Status::ok();
  const uint32_t group = p.qHeads / p.cache.kvHeads;
  KVRT_RETURN_IF_ERROR(snapKvFits(group, 1, p.cache.headDim));
  const size_t bytes = Layout{int(p.cache.headDim), int(group), 1}.bytes();
  if (bytes > kDefaultSharedBytes)
    return Status::error("H2O on the GPU holds a row's " +
                         std::to_string(group) + " queries of " +
                         std::to_string(p.cache.headDim) +
                         " coordinates and their logits in at most 48 KB "
                         "of shared memory; run it on the cpu backend");
  EvictWorkspace w;
  w.partials = partials;
  const dim3 grid((calls.maxLength + kEvictScoreTile - 1) / kEvictScoreTile,
                  p.cache.kvHeads, calls.rows);
  KVRT_RETURN_IF_ERROR(launchByKind<true>(p, w, calls, grid, bytes, stream));
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching H2O's attention weights", e);
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
