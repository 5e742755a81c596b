//===- EvictScores.cu - Eviction scores of every cached entry -------------===//
//
// TriAttention in two kernels. directionsKernel: one block per (KV head,
// sequence), one thread per frequency pair, makes the group's direction u
// and norm weights m in double, operation by operation as
// evict::TriAttentionScorer (no fused multiply-adds, so that the floats
// match), once per call. (Made by each block of scoresKernel instead, it
// cost 7% more at B = 8, L = 32K.) scoresKernel: one block per
// (kEvictScoreTile entries, KV head, sequence); d / 16 lanes a key, lane l
// holding the 8-coordinate chunks l and l + d / 16 (a pair's both halves in
// half style, whole pairs interleaved, so no lane needs another's coordinates
// for the norms) and their 16 direction and 8 norm weights in registers. Each
// thread holds two sets of two keys (two 16-byte words a key in bf16),
// loading one set while it adds its share of k . u + sum_f m_f |k_f| (16
// FMAs and 8 norms a key) for the other; the lanes' shares meet by
// shuffles. Per key: 2 d bytes of bf16 read once, about 3 d / 16 shuffles,
// no trigonometry. With combine=zmax both kernels run per query head
// instead (a key is then read once per head of its group), and
// standardisedMaxKernel makes the KV head's scores from its heads'.
// EvictKernels.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/backends/cuda/EvictKeyChunks.cuh"
#include "runtime/src/backends/cuda/EvictMoments.cuh"

#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 256;
/// Keys a thread scores per set; it has two sets, one in flight.
constexpr int kKeys = 2;
constexpr uint32_t kMaxHeadDim = 256;
/// Query heads a KV head's standardised maximum combines.
constexpr uint32_t kMaxGroup = 64;

using evictkeys::decodeChunk;
using evictkeys::Kind;
using evictkeys::loadChunks;
using evictkeys::Raw;

/// The square root within 1 ulp (CUDA's table for sqrtf without
/// -prec-sqrt): one MUFU instruction, where IEEE rounding costs a
/// subroutine call per norm and made the scores bound by instructions.
__device__ __forceinline__ float approximateSqrt(float x) {
  float root;
  asm("sqrt.approx.f32 %0, %1;" : "=f"(root) : "f"(x));
  return root;
}

__global__ void __launch_bounds__(kThreads)
    streamingKernel(EvictLaunch p, float *scores) {
  const EvictSequence s = p.sequences[blockIdx.z];
  float *out = scores + (size_t(blockIdx.z) * p.cache.kvHeads + blockIdx.y) *
                            p.maxLength;
  const int first = int(blockIdx.x * kEvictScoreTile);
  for (int i = first + int(threadIdx.x);
       i < min(s.length, first + int(kEvictScoreTile)); i += kThreads)
    out[i] = i < s.sinks ? INFINITY : float(i);
}

/// H2O: each entry's accumulated attention over the group's query heads
/// (their mean, as the CPU's h2oScores).
__global__ void __launch_bounds__(kThreads)
    h2oScoresKernel(EvictLaunch p, float *scores) {
  const EvictSequence s = p.sequences[blockIdx.z];
  const uint32_t kvHeads = p.cache.kvHeads, pageSize = p.cache.pageSize;
  const float group = float(p.qHeads / kvHeads);
  const int32_t *table =
      p.cache.pageTables + size_t(s.tableRow) * p.cache.pageTableStride;
  float *out =
      scores + (size_t(blockIdx.z) * kvHeads + blockIdx.y) * p.maxLength;
  const int first = int(blockIdx.x * kEvictScoreTile);
  for (int i = first + int(threadIdx.x);
       i < min(s.length, first + int(kEvictScoreTile)); i += kThreads) {
    const uint32_t page = uint32_t(i) / pageSize;
    out[i] = p.mass[(size_t(table[page]) * kvHeads + blockIdx.y) * pageSize +
                    (uint32_t(i) - page * pageSize)] /
             group;
  }
}

/// u and m of scored row blockIdx.x (a KV head, for the mean over its
/// group, or with standardisedMax a query head) of sequence blockIdx.y:
/// directions row [u in the key's layout (d floats), m (d / 2 floats)].
__global__ void directionsKernel(EvictLaunch p, float *directions) {
  const EvictSequence s = p.sequences[blockIdx.y];
  const int d = int(p.cache.headDim), half = d / 2;
  const int f = threadIdx.x;
  const TriAttentionCentres &c = p.centres;
  // evict::TriAttentionScorer's constructor: its rows' heads and weight.
  const int group = p.standardisedMax ? 1 : int(p.qHeads / p.cache.kvHeads);
  const int firstHead = int(blockIdx.x) * group;
  const double w = c.frequency[f];
  double tr, ti;
  sincos(double(s.queryPosition) * w, &ti, &tr);
  const double zr = c.meanRe[f], zi = c.meanIm[f];
  const double rr = __dsub_rn(__dmul_rn(zr, tr), __dmul_rn(zi, ti));
  const double ri = __dadd_rn(__dmul_rn(zr, ti), __dmul_rn(zi, tr));
  const double weight = 1.0 / double(group);
  const double inverseFactor = 1.0 / c.attentionFactor;
  double a = 0, b = 0, mag = 0;
  for (int h = 0; h < group; ++h) {
    const size_t q = size_t(firstHead + h) * half + f;
    const double re = c.re[q], im = c.im[q];
    const double ur = __dsub_rn(__dmul_rn(re, rr), __dmul_rn(im, ri));
    const double ui = __dadd_rn(__dmul_rn(re, ri), __dmul_rn(im, rr));
    a = __dadd_rn(a, __dmul_rn(__dmul_rn(weight, ur), inverseFactor));
    b = __dadd_rn(b, __dmul_rn(__dmul_rn(weight, ui), inverseFactor));
    mag = __dadd_rn(mag,
                    __dmul_rn(__dmul_rn(weight, c.spread[q]), inverseFactor));
  }
  float *row =
      directions + (size_t(blockIdx.y) * gridDim.x + blockIdx.x) * (3 * half);
  row[c.interleaved ? 2 * f : f] = float(a);
  row[c.interleaved ? 2 * f + 1 : f + half] = float(b);
  row[d + f] = float(mag);
}

/// The block's moments, added up, at `to` (thread 0 writes).
__device__ void storeBlockMoments(const Moments &moments, double *to) {
  using Reduce = cub::BlockReduce<Moments, kThreads>;
  __shared__ typename Reduce::TempStorage temp;
  const Moments total = Reduce(temp).Reduce(moments, AddMoments());
  if (threadIdx.x == 0) {
    to[0] = total.sum;
    to[1] = total.squares;
    to[2] = total.finite;
  }
}

/// Three blocks a multiprocessor, 80 registers (`nvcc -Xptxas -v`; bf16
/// spills 52 bytes): `kvrt-cuda-attention --evict` on an H200 (B = 8, L =
/// 32K, bf16, 2026-12-03) took 0.177 ms, and 0.185 with two blocks and no
/// spill.
template <Kind K>
__global__ void __launch_bounds__(kThreads, 3)
    scoresKernel(EvictLaunch p, EvictWorkspace w) {
  const EvictSequence s = p.sequences[blockIdx.z];
  // Scored row blockIdx.y: a KV head, or (standardisedMax) a query head.
  const int kvHead = int(blockIdx.y) /
                     (p.standardisedMax ? int(p.qHeads / p.cache.kvHeads) : 1);
  const int d = int(p.cache.headDim);
  const int first = int(blockIdx.x * kEvictScoreTile);
  if (first >= s.length)
    return;
  const size_t row = size_t(blockIdx.z) * gridDim.y + blockIdx.y;
  const bool interleaved = p.centres.interleaved;
  // d / 16 lanes a key (at least one), kThreads / lanes keys a pass.
  const int lanes = max(d / 16, 1), lane = int(threadIdx.x) % lanes;
  const int perPass = kThreads / lanes;
  // The lane's weights: u of chunks lane and lane + lanes, m of their
  // pairs (half style: pairs 8 lane + j; interleaved: 4 chunk + j).
  float u[16], m[8];
  {
    const float *direction = w.directions + row * (3 * d / 2);
#pragma unroll
    for (int c = 0; c < 2; ++c)
#pragma unroll
      for (int j = 0; j < 8; ++j)
        u[8 * c + j] = direction[8 * (lane + c * lanes) + j];
#pragma unroll
    for (int j = 0; j < 8; ++j)
      m[j] = direction[d + (interleaved ? 4 * (lane + (j / 4) * lanes) + j % 4
                                        : 8 * lane + j)];
  }
  const int32_t *table =
      p.cache.pageTables + size_t(s.tableRow) * p.cache.pageTableStride;
  const DeviceSideLayout &side = p.cache.key;
  const int pageSize = int(p.cache.pageSize);
  // Pages are usually a power of two: a shift, not a division, per key.
  const int pageShift = __popc(pageSize) == 1 ? __ffs(pageSize) - 1 : -1;
  float *out =
      (p.standardisedMax ? w.headScores : w.scores) + row * p.maxLength;
  const int last = min(s.length, first + int(kEvictScoreTile));
  const int step = kKeys * perPass;
  auto load = [&](Raw(&raw)[kKeys], int base) {
#pragma unroll
    for (int k = 0; k < kKeys; ++k) {
      const int i = base + k * perPass + int(threadIdx.x) / lanes;
      raw[k].blockScales = 0;
      if (i < last) {
        const int page = pageShift >= 0 ? i >> pageShift : i / pageSize;
        const int slot = i - page * pageSize;
        const uint8_t *area =
            p.cache.keys +
            (size_t(table[page]) * p.cache.kvHeads + kvHead) * side.areaStride;
        loadChunks<K>(area,
                      area + side.codesOffset + size_t(slot) * side.entryBytes,
                      side, lane, lanes, d, raw[k]);
      }
    }
  };
  Moments moments;
  auto score = [&](const Raw(&raw)[kKeys], int base) {
#pragma unroll
    for (int k = 0; k < kKeys; ++k) {
      float x[8], y[8];
      decodeChunk<K>(raw[k], 0, side, x);
      decodeChunk<K>(raw[k], 1, side, y);
      float sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        sum += x[j] * u[j] + y[j] * u[8 + j];
      if (interleaved) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
          sum += approximateSqrt(x[2 * j] * x[2 * j] +
                                 x[2 * j + 1] * x[2 * j + 1]) *
                     m[j] +
                 approximateSqrt(y[2 * j] * y[2 * j] +
                                 y[2 * j + 1] * y[2 * j + 1]) *
                     m[4 + j];
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j)
          sum += approximateSqrt(x[j] * x[j] + y[j] * y[j]) * m[j];
      }
#pragma unroll
      for (int offset = kMaxHeadDim / 32; offset > 0; offset /= 2)
        if (offset < lanes)
          sum += __shfl_xor_sync(0xffffffffu, sum, offset, lanes);
      const int i = base + k * perPass + int(threadIdx.x) / lanes;
      if (lane == 0 && i < last) {
        out[i] = sum;
        addScore(moments, sum);
      }
    }
  };
  // Two sets of keys, one loading while the other is scored. Every lane of
  // a key's group runs the same iterations (the shuffles need them all),
  // so the loop bounds are the block's.
  Raw a[kKeys], b[kKeys];
  load(a, first);
  for (int base = first; base < last; base += 2 * step) {
    if (base + step < last)
      load(b, base + step);
    score(a, base);
    if (base + step >= last)
      break;
    if (base + 2 * step < last)
      load(a, base + 2 * step);
    score(b, base + step);
  }
  storeBlockMoments(moments, (p.standardisedMax ? w.headMoments : w.moments) +
                                 (row * gridDim.x + blockIdx.x) * 3);
}

/// combine=zmax: KV head blockIdx.y's scores of sequence blockIdx.z's tile
/// blockIdx.x, each its group's query heads' scores standardised, then
/// their maximum (NaN as -inf), as evict::combineHeads(); with the tile's
/// moments for the KV head's own standardisation.
__global__ void __launch_bounds__(kThreads)
    standardisedMaxKernel(EvictLaunch p, EvictWorkspace w) {
  __shared__ Standardisation standardisation[kMaxGroup];
  const EvictSequence s = p.sequences[blockIdx.z];
  const int first = int(blockIdx.x * kEvictScoreTile);
  if (first >= s.length)
    return;
  const int group = int(p.qHeads / p.cache.kvHeads);
  const size_t firstHead = size_t(blockIdx.z) * p.qHeads + blockIdx.y * group;
  const uint32_t scoreTiles = gridDim.x;
  if (int(threadIdx.x) < group)
    standardisation[threadIdx.x] = standardisationOf(
        w.headMoments + (firstHead + threadIdx.x) * scoreTiles * 3,
        (uint32_t(s.length) + kEvictScoreTile - 1) / kEvictScoreTile);
  __syncthreads();
  const size_t row = size_t(blockIdx.z) * p.cache.kvHeads + blockIdx.y;
  float *out = w.scores + row * p.maxLength;
  Moments moments;
  const int last = min(s.length, first + int(kEvictScoreTile));
  for (int i = first + int(threadIdx.x); i < last; i += kThreads) {
    double best = -double(INFINITY);
    for (int h = 0; h < group; ++h) {
      const float v =
          standardisation[h](w.headScores[(firstHead + h) * p.maxLength + i]);
      best = fmax(best, isnan(v) ? -double(INFINITY) : double(v));
    }
    out[i] = float(best);
    addScore(moments, out[i]);
  }
  storeBlockMoments(moments, w.moments + (row * scoreTiles + blockIdx.x) * 3);
}

} // namespace

bool evictScoresRead(DeviceSideLayout::Kind kind) {
  return kind == Kind::Bf16 || kind == Kind::Fp8E4M3 || kind == Kind::Nvfp4;
}

Status scoreEntries(const EvictLaunch &p, cudaStream_t stream) {
  if (!p.count)
    return Status::ok();
  const dim3 grid((p.maxLength + kEvictScoreTile - 1) / kEvictScoreTile,
                  p.cache.kvHeads, p.count);
  const EvictWorkspace w = evictWorkspace(p);
  if (p.scoring == EvictScoring::Streaming) {
    streamingKernel<<<grid, kThreads, 0, stream>>>(p, w.scores);
  } else if (p.scoring == EvictScoring::H2o) {
    h2oScoresKernel<<<grid, kThreads, 0, stream>>>(p, w.scores);
  } else {
    const uint32_t d = p.cache.headDim;
    if (d < 16 || d > kMaxHeadDim || (d & (d - 1)) ||
        !evictScoresRead(p.cache.key.kind))
      return Status::error("TriAttention and SnapKV score keys of bf16, fp8 "
                           "or nvfp4 and head dimensions that are powers of "
                           "two from 16 to 256 on the GPU");
    if (p.scoring == EvictScoring::SnapKv)
      return scoreSnapKv(p, w, stream);
    const uint32_t group = p.qHeads / p.cache.kvHeads;
    if (p.standardisedMax && group > kMaxGroup)
      return Status::error("TriAttention's standardised maximum combines at "
                           "most " +
                           std::to_string(kMaxGroup) +
                           " query heads a KV head on the GPU");
    // Scored rows: the KV heads, or each query head.
    const dim3 scored(grid.x, p.standardisedMax ? p.qHeads : p.cache.kvHeads,
                      grid.z);
    directionsKernel<<<dim3(scored.y, p.count), d / 2, 0, stream>>>(
        p, w.directions);
    switch (p.cache.key.kind) {
    case Kind::Bf16:
      scoresKernel<Kind::Bf16><<<scored, kThreads, 0, stream>>>(p, w);
      break;
    case Kind::Fp8E4M3:
      scoresKernel<Kind::Fp8E4M3><<<scored, kThreads, 0, stream>>>(p, w);
      break;
    default:
      scoresKernel<Kind::Nvfp4><<<scored, kThreads, 0, stream>>>(p, w);
      break;
    }
    if (p.standardisedMax)
      standardisedMaxKernel<<<grid, kThreads, 0, stream>>>(p, w);
  }
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the eviction scores", e);
  return Status::ok();
}

} // namespace kvrt::cuda
