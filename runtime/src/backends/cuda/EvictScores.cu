//===- EvictScores.cu - Eviction scores of every cached entry -------------===//
//
// One block per (256 entries, KV head, sequence). TriAttention: the block's
// first headDim / 2 threads make the KV group's direction u and norm
// weights m in double, operation by operation as evict::TriAttentionScorer
// (no fused multiply-adds, so that the floats match), then headDim / 8
// lanes read each key, eight coordinates (sixteen bf16 bytes) a lane,
// decode them, and add their share of k . u + sum_f m_f |k_f|: a pair's
// partner coordinate is in the same lane (interleaved) or headDim / 16
// lanes on (half style). EvictKernels.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EntryDecode.cuh"
#include "runtime/src/backends/cuda/EvictKernels.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kEntriesPerBlock = 256;
constexpr uint32_t kMaxHeadDim = 256;

using Kind = DeviceSideLayout::Kind;

/// E2M1's magnitudes by code (its sign is bit 3).
__constant__ float kE2M1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};

/// E4M3 code `code` as a float (exact).
__device__ __forceinline__ float decodeE4M3(uint32_t code) {
  return decodeE4M3x2(code).x;
}

/// The eight coordinates [8 lane, 8 lane + 8) of the key at `entry` (in
/// the head's `area`), decoded as the CPU codec decodes them.
template <Kind K>
__device__ __forceinline__ void
loadEight(const uint8_t *area, const uint8_t *entry,
          const DeviceSideLayout &side, int lane, int headDim, float (&x)[8]) {
  if constexpr (K == Kind::Bf16) {
    const uint4 v = *reinterpret_cast<const uint4 *>(entry + lane * 16);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      x[2 * k] = __uint_as_float(w[k] << 16);
      x[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
  } else if constexpr (K == Kind::Fp8E4M3) {
    const uint32_t *codes =
        reinterpret_cast<const uint32_t *>(entry + lane * 8);
    const float scale = *reinterpret_cast<const float *>(
        side.slotScales ? entry + side.scaleOffset : area + side.scaleOffset);
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint32_t w = codes[j];
      const float2 lo = decodeE4M3x2(w), hi = decodeE4M3x2(w >> 16);
      x[4 * j] = lo.x * scale;
      x[4 * j + 1] = lo.y * scale;
      x[4 * j + 2] = hi.x * scale;
      x[4 * j + 3] = hi.y * scale;
    }
  } else {
    static_assert(K == Kind::Nvfp4, "a key encoding the scorer decodes");
    const uint32_t codes =
        *reinterpret_cast<const uint32_t *>(entry + lane * 4);
    const float scale =
        decodeE4M3(entry[headDim / 2 + lane / 2]) * side.tensorScale;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t code = (codes >> (4 * i)) & 15u;
      const float v = kE2M1[code & 7u];
      x[i] = (code & 8u ? -v : v) * scale;
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    streamingKernel(EvictLaunch p, float *scores) {
  const EvictSequence s = p.sequences[blockIdx.z];
  float *out = scores + (size_t(blockIdx.z) * p.cache.kvHeads + blockIdx.y) *
                            p.maxLength;
  for (int i = blockIdx.x * kEntriesPerBlock + threadIdx.x;
       i < min(s.length, int(blockIdx.x + 1) * kEntriesPerBlock); i += kThreads)
    out[i] = i < s.sinks ? INFINITY : float(i);
}

template <Kind K>
__global__ void __launch_bounds__(kThreads)
    triAttentionKernel(EvictLaunch p, float *scores) {
  __shared__ float u[kMaxHeadDim], m[kMaxHeadDim / 2];
  const EvictSequence s = p.sequences[blockIdx.z];
  const int kvHead = blockIdx.y, d = int(p.cache.headDim), half = d / 2;
  const int first = blockIdx.x * kEntriesPerBlock;
  if (first >= s.length)
    return;
  const TriAttentionCentres &c = p.centres;
  const int group = int(p.qHeads / p.cache.kvHeads);
  if (int f = threadIdx.x; f < half) {
    // evict::TriAttentionScorer's constructor, for the mean over the group.
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
      const size_t q = size_t(kvHead * group + h) * half + f;
      const double re = c.re[q], im = c.im[q];
      const double ur = __dsub_rn(__dmul_rn(re, rr), __dmul_rn(im, ri));
      const double ui = __dadd_rn(__dmul_rn(re, ri), __dmul_rn(im, rr));
      a = __dadd_rn(a, __dmul_rn(__dmul_rn(weight, ur), inverseFactor));
      b = __dadd_rn(b, __dmul_rn(__dmul_rn(weight, ui), inverseFactor));
      mag = __dadd_rn(mag,
                      __dmul_rn(__dmul_rn(weight, c.spread[q]), inverseFactor));
    }
    u[c.interleaved ? 2 * f : f] = float(a);
    u[c.interleaved ? 2 * f + 1 : f + half] = float(b);
    m[f] = float(mag);
  }
  __syncthreads();
  // headDim / 8 lanes per key, kThreads / lanes keys at a time.
  const int lanes = d / 8, lane = threadIdx.x % lanes;
  const int perPass = kThreads / lanes;
  const int32_t *table =
      p.cache.pageTables + size_t(s.tableRow) * p.cache.pageTableStride;
  const DeviceSideLayout &side = p.cache.key;
  float *out =
      scores + (size_t(blockIdx.z) * p.cache.kvHeads + kvHead) * p.maxLength;
  const int last = min(s.length, first + kEntriesPerBlock);
  // Every lane of a key's group runs the same iterations (the shuffles
  // need them all), so the loop bound is the group's.
  for (int base = first; base < last; base += perPass) {
    const int i = base + int(threadIdx.x) / lanes;
    float x[8] = {};
    if (i < last) {
      const int page = table[i / int(p.cache.pageSize)];
      const int slot = i % int(p.cache.pageSize);
      const uint8_t *area =
          p.cache.keys +
          (size_t(page) * p.cache.kvHeads + kvHead) * side.areaStride;
      loadEight<K>(area,
                   area + side.codesOffset + size_t(slot) * side.entryBytes,
                   side, lane, d, x);
    }
    float sum = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j)
      sum += x[j] * u[8 * lane + j];
    if (c.interleaved) {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        sum += sqrtf(x[2 * j] * x[2 * j] + x[2 * j + 1] * x[2 * j + 1]) *
               m[4 * lane + j];
    } else {
      // Lane l < lanes / 2 holds pairs 8 l + j with partners 8 (l + lanes
      // / 2) + j.
      float partner[8];
#pragma unroll
      for (int j = 0; j < 8; ++j)
        partner[j] = __shfl_down_sync(0xffffffffu, x[j], lanes / 2, lanes);
      if (lane < lanes / 2) {
#pragma unroll
        for (int j = 0; j < 8; ++j)
          sum += sqrtf(x[j] * x[j] + partner[j] * partner[j]) * m[8 * lane + j];
      }
    }
    for (int offset = lanes / 2; offset > 0; offset /= 2)
      sum += __shfl_xor_sync(0xffffffffu, sum, offset, lanes);
    if (lane == 0 && i < last)
      out[i] = sum;
  }
}

} // namespace

bool evictScoresRead(DeviceSideLayout::Kind kind) {
  return kind == Kind::Bf16 || kind == Kind::Fp8E4M3 || kind == Kind::Nvfp4;
}

Status scoreEntries(const EvictLaunch &p, cudaStream_t stream) {
  if (!p.count)
    return Status::ok();
  const dim3 grid((p.maxLength + kEntriesPerBlock - 1) / kEntriesPerBlock,
                  p.cache.kvHeads, p.count);
  float *scores = static_cast<float *>(p.workspace);
  if (p.scoring == EvictScoring::Streaming) {
    streamingKernel<<<grid, kThreads, 0, stream>>>(p, scores);
  } else {
    const uint32_t d = p.cache.headDim;
    if (d < 16 || d > kMaxHeadDim || (d & (d - 1)) ||
        !evictScoresRead(p.cache.key.kind))
      return Status::error("TriAttention scores keys of bf16, fp8 or nvfp4 "
                           "and head dimensions that are powers of two from "
                           "16 to 256 on the GPU");
    switch (p.cache.key.kind) {
    case Kind::Bf16:
      triAttentionKernel<Kind::Bf16><<<grid, kThreads, 0, stream>>>(p, scores);
      break;
    case Kind::Fp8E4M3:
      triAttentionKernel<Kind::Fp8E4M3>
          <<<grid, kThreads, 0, stream>>>(p, scores);
      break;
    default:
      triAttentionKernel<Kind::Nvfp4><<<grid, kThreads, 0, stream>>>(p, scores);
      break;
    }
  }
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the eviction scores", e);
  return Status::ok();
}

} // namespace kvrt::cuda
