//===- DecoderKernels.cu - The decoder's kernels besides attention --------===//
//
// All of them are memory bound at decode and a few percent of a step at
// prefill: plain grid-stride loops, one block per row where a row is
// reduced (RMSNorm), fp32 arithmetic as the CPU kernels.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Synthetic.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"
#include "runtime/src/backends/cuda/RopeTurn.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocksFor(int64_t n) {
  return unsigned(
      std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t(132) * 16));
}

__device__ float bf16Value(uint16_t bits) {
  return __uint_as_float(uint32_t(bits) << 16);
}

__global__ void embeddingKernel(const uint16_t *table, int64_t width,
                                const int32_t *tokens, int64_t rows,
                                float *out) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    out[i] = bf16Value(table[int64_t(tokens[r]) * width + c]);
  }
}

/// A block per row, wide so that a decode step's few rows still have all
/// their loads in flight at once (256 threads looping over a 4096-wide row
/// waited on memory 16 times in a row: 11 us per call at batch 1). Each
/// thread keeps its PerThread values and weights in registers from the
/// first load to the last store, so a row costs one round trip to memory
/// before the reduction and none after it.
constexpr int kNormThreads = 1024;
// 16 values a thread spilled at 64 registers (1024 threads an SM).
static_assert(kNormMaxDim == 8 * kNormThreads, "8 values a thread at most");

template <int PerThread>
__global__ void __launch_bounds__(kNormThreads)
    rmsNormKernel(const float *x, const float *residual, float *added, int dim,
                  const float *weight, float epsilon, float *y,
                  __nv_bfloat16 *yBf16) {
  const size_t row = size_t(blockIdx.x) * dim;
  float v[PerThread], w[PerThread];
  double sum = 0;
#pragma unroll
  for (int k = 0; k < PerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    v[k] = w[k] = 0;
    if (i < dim) {
      v[k] = residual ? x[row + i] + residual[row + i] : x[row + i];
      w[k] = weight[i];
    }
  }
#pragma unroll
  for (int k = 0; k < PerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (residual && i < dim)
      added[row + i] = v[k];
    sum += double(v[k]) * v[k];
  }
  __shared__ double partial[kNormThreads / 32];
  for (int offset = 16; offset; offset /= 2)
    sum += __shfl_xor_sync(~0u, sum, offset);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0;
  for (unsigned j = 0; j < blockDim.x / 32; ++j)
    sum += partial[j];
  const float inv = float(1.0 / sqrt(sum / double(dim) + epsilon));
#pragma unroll
  for (int k = 0; k < PerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i >= dim)
      continue;
    const float out = v[k] * inv * w[k];
    y[row + i] = out;
    if (yBf16)
      yBf16[row + i] = __float2bfloat16_rn(out);
  }
}

/// One thread per (row, head, pair), in RopeTurn.cuh's arithmetic.
__global__ void ropeKernel(const float *x, int64_t xStride, int64_t rows,
                           int64_t heads, int64_t headDim,
                           const int32_t *positions, const double *inverse,
                           double factor, bool interleaved, float *y) {
  const int64_t half = headDim / 2, n = rows * heads * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i % half, rh = i / half, r = rh / heads;
    const RopeTurn t = ropeTurn(positions[r], inverse, uint32_t(p), factor);
    const int64_t first = interleaved ? 2 * p : p;
    const int64_t second = first + (interleaved ? 1 : half);
    const int64_t from = r * xStride + (rh % heads) * headDim;
    const float x1 = x[from + first], x2 = x[from + second];
    y[rh * headDim + first] = ropeFirst(x1, x2, t);
    y[rh * headDim + second] = ropeSecond(x1, x2, t);
  }
}

__global__ void swigluKernel(const float *gate, int64_t gateStride,
                             const float *up, int64_t upStride, int64_t rows,
                             int64_t width, float *out,
                             __nv_bfloat16 *outBf16) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    const float g = gate[r * gateStride + c];
    const float v = g / (1.0f + expf(-g)) * up[r * upStride + c];
    out[i] = v;
    if (outBf16)
      outBf16[i] = __float2bfloat16_rn(v);
  }
}

__global__ void addKernel(const float *a, const float *b, int64_t n,
                          float *out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void rowsToBf16Kernel(const float *x, const uint32_t *rows,
                                 int64_t count, int64_t width,
                                 __nv_bfloat16 *out) {
  const int64_t n = count * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    const int64_t from = rows ? int64_t(rows[r]) : r;
    out[i] = __float2bfloat16_rn(x[from * width + c]);
  }
}

/// The better of two (logit, index) candidates: the larger logit, NaN as
/// -inf, the smaller index between equal ones, as kvrt::greedyToken().
__device__ void keepBetter(float &best, int32_t &at, float value,
                           int32_t index) {
  if (isnan(value))
    value = -INFINITY;
  if (value > best || (value == best && index < at)) {
    best = value;
    at = index;
  }
}

/// out[r] = greedyToken() of row r; a block per row.
__global__ void __launch_bounds__(kThreads)
    rowArgmaxKernel(const float *x, int64_t width, int32_t *out) {
  const float *row = x + blockIdx.x * width;
  float best = -INFINITY;
  int32_t at = INT32_MAX;
  for (int64_t i = threadIdx.x; i < width; i += kThreads)
    keepBetter(best, at, row[i], int32_t(i));
  for (int offset = 16; offset; offset /= 2)
    keepBetter(best, at, __shfl_xor_sync(0xffffffffu, best, offset),
               __shfl_xor_sync(0xffffffffu, at, offset));
  __shared__ float bests[kThreads / 32];
  __shared__ int32_t ats[kThreads / 32];
  if (threadIdx.x % 32 == 0) {
    bests[threadIdx.x / 32] = best;
    ats[threadIdx.x / 32] = at;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w)
      keepBetter(best, at, bests[w], ats[w]);
    out[blockIdx.x] = at;
  }
}

__global__ void syntheticKernel(uint64_t seed, float step, float constant,
                                uint64_t count, bool bf16, void *out) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count;
       i += uint64_t(gridDim.x) * blockDim.x) {
    const float value = step > 0 ? syntheticValue(seed, i, step) : constant;
    if (bf16)
      static_cast<uint16_t *>(out)[i] = syntheticBf16(value);
    else
      static_cast<float *>(out)[i] = value;
  }
}

bool accepted() { return cudaPeekAtLastError() == cudaSuccess; }

} // namespace

bool launchEmbedding(const uint16_t *table, int64_t width,
                     const int32_t *tokens, int64_t rows, float *out,
                     cudaStream_t stream) {
  embeddingKernel<<<blocksFor(rows * width), kThreads, 0, stream>>>(
      table, width, tokens, rows, out);
  return accepted();
}

bool launchRmsNorm(const float *x, const float *residual, float *added,
                   int64_t rows, int64_t dim, const float *weight,
                   float epsilon, float *y, uint16_t *yBf16,
                   cudaStream_t stream) {
  if (rows == 0)
    return true;
  if (dim > kNormMaxDim)
    return false;
  // The fewest values a thread that fit the row in one block, and the
  // fewest warps that hold them.
  int perThread = 1;
  while (perThread * int64_t(kNormThreads) < dim)
    perThread *= 2;
  const unsigned threads =
      unsigned((dim + perThread - 1) / perThread + 31) / 32 * 32;
  auto *kernel = perThread == 1   ? rmsNormKernel<1>
                 : perThread == 2 ? rmsNormKernel<2>
                 : perThread == 4 ? rmsNormKernel<4>
                                  : rmsNormKernel<8>;
  kernel<<<unsigned(rows), threads, 0, stream>>>(
      x, residual, added, int(dim), weight, epsilon, y,
      reinterpret_cast<__nv_bfloat16 *>(yBf16));
  return accepted();
}

bool launchRope(const float *x, int64_t xStride, int64_t rows, int64_t heads,
                int64_t headDim, const int32_t *positions,
                const double *inverseFrequencies, double attentionFactor,
                bool interleaved, float *y, cudaStream_t stream) {
  ropeKernel<<<blocksFor(rows * heads * headDim / 2), kThreads, 0, stream>>>(
      x, xStride, rows, heads, headDim, positions, inverseFrequencies,
      attentionFactor, interleaved, y);
  return accepted();
}

bool launchSwiglu(const float *gate, int64_t gateStride, const float *up,
                  int64_t upStride, int64_t rows, int64_t width, float *out,
                  uint16_t *outBf16, cudaStream_t stream) {
  swigluKernel<<<blocksFor(rows * width), kThreads, 0, stream>>>(
      gate, gateStride, up, upStride, rows, width, out,
      reinterpret_cast<__nv_bfloat16 *>(outBf16));
  return accepted();
}

bool launchAdd(const float *a, const float *b, int64_t n, float *out,
               cudaStream_t stream) {
  addKernel<<<blocksFor(n), kThreads, 0, stream>>>(a, b, n, out);
  return accepted();
}

bool launchRowsToBf16(const float *x, const uint32_t *rows, int64_t count,
                      int64_t width, uint16_t *out, cudaStream_t stream) {
  rowsToBf16Kernel<<<blocksFor(count * width), kThreads, 0, stream>>>(
      x, rows, count, width, reinterpret_cast<__nv_bfloat16 *>(out));
  return accepted();
}

bool launchRowArgmax(const float *x, int64_t rows, int64_t width, int32_t *out,
                     cudaStream_t stream) {
  if (rows > 0)
    rowArgmaxKernel<<<unsigned(rows), kThreads, 0, stream>>>(x, width, out);
  return accepted();
}

bool launchSynthetic(uint64_t seed, float step, float constant, uint64_t count,
                     bool bf16, void *out, cudaStream_t stream) {
  syntheticKernel<<<blocksFor(int64_t(count)), kThreads, 0, stream>>>(
      seed, step, constant, count, bf16, out);
  return accepted();
}

} // namespace kvrt::cuda
