//===- Linear.cpp - Dense projections (GEMM / GEMV) -----------------------===//
//
// No BLAS: the CPU backend is the reference for small models, where decode
// is a GEMV bound by the bandwidth of reading the weights once, not by
// arithmetic; a hand-written kernel that keeps a block of weights in cache
// while every row of the batch passes over it gets most of the way, keeps
// the summation order fixed (results independent of batch size, which a
// BLAS does not promise) and leaves serving hosts one dependency fewer.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <algorithm>

namespace kvrt::cpu {
namespace {

/// Outputs computed together, sharing each load of x.
constexpr int64_t kGroup = 4;
/// Bytes of weights a block keeps in the L2 cache while rows pass over it.
constexpr int64_t kBlockBytes = 256 * 1024;
/// Multiply-adds below which a chunk is not worth handing to a thread.
constexpr int64_t kMinChunkWork = 1 << 16;

/// y[r, o] for every row and the output groups in [oBegin, oEnd), oBegin a
/// multiple of kGroup. Every output is computed by the same instructions in
/// the same lane of its group whatever the rows and the chunking (a short
/// last group repeats the last weight row and drops the extra results), so
/// its value never depends on the batch or the thread count.
KVRT_MULTIVERSION
void linearBlock(const float *x, int64_t rows, int64_t in, const float *w,
                 int64_t out, int64_t oBegin, int64_t oEnd, const float *bias,
                 float *y) {
  int64_t full = in / kLanes * kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * in;
    float *yr = y + r * out;
    for (int64_t o = oBegin; o < oEnd; o += kGroup) {
      const float *wk[kGroup];
      for (int64_t k = 0; k < kGroup; ++k)
        wk[k] = w + std::min(o + k, out - 1) * in;
      Vec8 acc[kGroup] = {};
      for (int64_t i = 0; i < full; i += kLanes) {
        Vec8 xv = load8(xr + i);
        for (int64_t k = 0; k < kGroup; ++k)
          acc[k] += xv * load8(wk[k] + i);
      }
      for (int64_t k = 0; k < kGroup; ++k)
        for (int64_t j = 0; full + j < in; ++j)
          acc[k][j] += xr[full + j] * wk[k][full + j];
      for (int64_t k = 0; k < kGroup && o + k < oEnd; ++k)
        yr[o + k] = reduce8(acc[k]) + (bias ? bias[o + k] : 0.0f);
    }
  }
}

} // namespace

void linear(ThreadPool &pool, const float *x, int64_t rows, int64_t in,
            const float *w, int64_t out, const float *bias, float *y) {
  // Work is split and blocked in whole groups of outputs.
  int64_t groups = (out + kGroup - 1) / kGroup;
  int64_t block = std::max<int64_t>(1, kBlockBytes / (in * 4 * kGroup));
  int64_t grain = std::max<int64_t>(
      1, kMinChunkWork / std::max<int64_t>(1, rows * in * kGroup));
  pool.parallelFor(groups, grain, [&](int64_t begin, int64_t end, unsigned) {
    for (int64_t g = begin; g < end; g += block)
      linearBlock(x, rows, in, w, out, g * kGroup,
                  std::min(out, std::min(end, g + block) * kGroup), bias, y);
  });
}

} // namespace kvrt::cpu
