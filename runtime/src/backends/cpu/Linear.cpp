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
#include "kvrt/Artifact.h"
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

/// Rows of x that pass over each weight load together.
constexpr int64_t kRowPair = 2;

/// y[r, o] for rows [r, r + Rows) and the outputs of the group at o,
/// whose weight rows are wk (a short last group repeats the last weight
/// row; only outputs below oEnd are stored).
template <int64_t Rows>
__attribute__((always_inline)) inline void
dotGroup(const float *x, int64_t r, int64_t in,
         const float *const (&wk)[kGroup], int64_t out, int64_t o, int64_t oEnd,
         const float *bias, float *y) {
  const int64_t full = in / kLanes * kLanes;
  const float *xr[Rows];
  for (int64_t j = 0; j < Rows; ++j)
    xr[j] = x + (r + j) * in;
  Vec8 acc[Rows][kGroup] = {};
  for (int64_t i = 0; i < full; i += kLanes) {
    Vec8 xv[Rows];
    for (int64_t j = 0; j < Rows; ++j)
      xv[j] = load8(xr[j] + i);
    for (int64_t k = 0; k < kGroup; ++k) {
      const Vec8 wv = load8(wk[k] + i);
      for (int64_t j = 0; j < Rows; ++j)
        acc[j][k] += xv[j] * wv;
    }
  }
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t k = 0; k < kGroup; ++k)
      for (int64_t e = 0; full + e < in; ++e)
        acc[j][k][e] += xr[j][full + e] * wk[k][full + e];
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t k = 0; k < kGroup && o + k < oEnd; ++k)
      y[(r + j) * out + o + k] =
          reduce8(acc[j][k]) + (bias ? bias[o + k] : 0.0f);
}

/// y[r, o] for every row and the output groups in [oBegin, oEnd), oBegin a
/// multiple of kGroup; `w` holds weight rows oBegin .. min(oEnd rounded up
/// to a group, out) - 1. Every output is computed by the same instructions
/// in the same lane of its group whatever the rows, the pairing of rows
/// and the chunking (a short last group repeats the last weight row and
/// drops the extra results), so its value never depends on the batch or
/// the thread count. Rows go in pairs, which halves the weight loads per
/// multiply-add (a passkey run at batch 4 on two cores, 2026-12-05: 51.8 s
/// against 54.2 s).
KVRT_MULTIVERSION
void linearBlock(const float *x, int64_t rows, int64_t in, const float *w,
                 int64_t out, int64_t oBegin, int64_t oEnd, const float *bias,
                 float *y) {
  for (int64_t r = 0; r < rows;) {
    const bool pair = r + kRowPair <= rows;
    for (int64_t o = oBegin; o < oEnd; o += kGroup) {
      const float *wk[kGroup];
      for (int64_t k = 0; k < kGroup; ++k)
        wk[k] = w + (std::min(o + k, out - 1) - oBegin) * in;
      if (pair)
        dotGroup<kRowPair>(x, r, in, wk, out, o, oEnd, bias, y);
      else
        dotGroup<1>(x, r, in, wk, out, o, oEnd, bias, y);
    }
    r += pair ? kRowPair : 1;
  }
}

} // namespace

void linear(ThreadPool &pool, const float *x, int64_t rows, int64_t in,
            const float *w, int64_t out, const float *bias, float *y) {
  linear(pool, x, rows, in, WeightView{w, schema::DTYPE_F32}, out, bias, y);
}

void linear(ThreadPool &pool, const float *x, int64_t rows, int64_t in,
            WeightView w, int64_t out, const float *bias, float *y) {
  // Work is split and blocked in whole groups of outputs.
  int64_t groups = (out + kGroup - 1) / kGroup;
  int64_t block = std::max<int64_t>(1, kBlockBytes / (in * 4 * kGroup));
  int64_t grain = std::max<int64_t>(
      1, kMinChunkWork / std::max<int64_t>(1, rows * in * kGroup));
  const bool decoded = w.dtype == schema::DTYPE_F32;
  const uint8_t *bytes = static_cast<const uint8_t *>(w.data);
  // Rows of a block format are decoded a block of outputs at a time into
  // the thread's scratch, which then serves every row of x from the cache:
  // the weights cross memory once, in their own (smaller) format.
  const uint64_t rowBytes = tensorBytes(w.dtype, uint64_t(in));
  pool.parallelFor(groups, grain, [&](int64_t begin, int64_t end, unsigned) {
    thread_local std::vector<float> scratch;
    for (int64_t g = begin; g < end; g += block) {
      const int64_t first = g * kGroup;
      const int64_t last = std::min(out, std::min(end, g + block) * kGroup);
      const float *rowsOfW;
      if (decoded) {
        rowsOfW = static_cast<const float *>(w.data) + first * in;
      } else {
        scratch.resize(size_t(block * kGroup * in));
        decodeValues(w.dtype, bytes + first * rowBytes,
                     uint64_t((last - first) * in), scratch.data());
        rowsOfW = scratch.data();
      }
      linearBlock(x, rows, in, rowsOfW, out, first, last, bias, y);
    }
  });
}

} // namespace kvrt::cpu
