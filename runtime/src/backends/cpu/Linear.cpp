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
#include "runtime/src/backends/cpu/BlockFormats.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <algorithm>
#include <vector>

namespace kvrt::cpu {
namespace {

/// Bytes of f32 weights a block keeps in the L2 cache while rows pass over
/// it; work is split in whole blocks of kOutputsAligned outputs.
constexpr int64_t kBlockBytes = 256 * 1024;
constexpr int64_t kOutputsAligned = 4;
/// Multiply-adds below which a chunk is not worth handing to a thread.
constexpr int64_t kMinChunkWork = 1 << 16;

/// Rows of x that pass over each vector of weights together, sharing its
/// load and, for a block format, its decoding, are at most four.
constexpr int64_t kMaxRowsPerPass = 4;

/// f32 weights, a vector at a time, in the interface of Blocks<Format>.
/// A call of up to four rows (a decode step) makes one pass, reading its
/// weights from memory once; more rows go three at a time over each block
/// of weights in the cache, against four outputs: twelve accumulators, each
/// vector of weights loaded for three rows. That took a 576 x 1536
/// projection of 256 rows 2.7 ms where pairs against four outputs (eight
/// accumulators, six loads to eight multiply-adds) took 5.3
/// (kvrt-linear-bench, two cores, 2026-12-07; docs/measurements.md).
struct F32Values {
  static constexpr int64_t kElements = kLanes;
  static constexpr int64_t kBytes = kLanes * 4;
  static constexpr int64_t rowsPerPass(int64_t rows) {
    return rows <= kMaxRowsPerPass ? kMaxRowsPerPass : 3;
  }
  /// Outputs a pass of `rows` rows computes together, sharing each load of
  /// x: at most twelve accumulators.
  static constexpr int64_t outputsPerGroup(int64_t rows) {
    return rows <= 3 ? 4 : 2;
  }
  KVRT_INLINE static void decode(const uint8_t *p, Vec8 (&parts)[1]) {
    std::memcpy(&parts[0], p, sizeof parts[0]);
  }
};

/// A block format's weights, a block at a time, decoded in registers as
/// they are multiplied, once for every four rows. Decoding a block of
/// weights ahead into the thread's scratch, which every row then read from
/// the cache (commit b08c7fe), made a decode step of the default model
/// 1.6x slower (two cores, 2026-12-05: 16.7-16.8 ms against 10.1-10.4;
/// docs/measurements.md); only calls of many rows decode ahead
/// (linearBlock).
template <schema::DType Format> struct BlockValues : Blocks<Format> {
  static constexpr int64_t kElements = kBlockElements;
  static constexpr int64_t rowsPerPass(int64_t) { return kMaxRowsPerPass; }
  /// At most eight accumulators, which leaves a block's decoded weights
  /// room in sixteen registers.
  static constexpr int64_t outputsPerGroup(int64_t rows) {
    return rows <= 2 ? 4 : 2;
  }
};

/// y[r, o] for rows [r, r + Rows) and the outputs of the group at o,
/// whose weight rows start at wk (a short last group repeats the last
/// weight row; only outputs below oEnd are stored). Each accumulator
/// takes x[i .. i + 8) * w[i .. i + 8) in the order of i whatever the
/// format and the tiling, so its value never depends on them, and a block
/// format gives its decoded values' bits.
template <int64_t Rows, int64_t Group, typename Values>
KVRT_INLINE void dotGroup(const float *x, int64_t r, int64_t in,
                          const uint8_t *const (&wk)[Group], int64_t out,
                          int64_t o, int64_t oEnd, const float *bias,
                          float *y) {
  constexpr int64_t kParts = Values::kElements / kLanes;
  const int64_t steps = in / Values::kElements;
  const int64_t full = steps * Values::kElements;
  const float *xr[Rows];
  for (int64_t j = 0; j < Rows; ++j)
    xr[j] = x + (r + j) * in;
  Vec8 acc[Rows][Group] = {};
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t i = s * Values::kElements;
    // Unrolled, so that the accumulators stay in registers.
#pragma GCC unroll 4
    for (int64_t k = 0; k < Group; ++k) {
      Vec8 wv[kParts];
      Values::decode(wk[k] + s * Values::kBytes, wv);
      for (int64_t p = 0; p < kParts; ++p)
        for (int64_t j = 0; j < Rows; ++j)
          acc[j][k] += load8(xr[j] + i + kLanes * p) * wv[p];
    }
  }
  // Only f32 rows have a tail: a block format's rows are whole blocks.
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t k = 0; k < Group; ++k)
      for (int64_t e = 0; full + e < in; ++e) {
        float w;
        std::memcpy(&w, wk[k] + 4 * (full + e), sizeof w);
        acc[j][k][e] += xr[j][full + e] * w;
      }
  for (int64_t j = 0; j < Rows; ++j)
    for (int64_t k = 0; k < Group && o + k < oEnd; ++k)
      y[(r + j) * out + o + k] =
          reduce8(acc[j][k]) + (bias ? bias[o + k] : 0.0f);
}

/// Rows [r, r + Rows) of y for the outputs in [oBegin, oEnd).
template <int64_t Rows, typename Values>
KVRT_INLINE void passOverWeights(const float *x, int64_t r, int64_t in,
                                 const uint8_t *w, uint64_t rowBytes,
                                 int64_t out, int64_t oBegin, int64_t oEnd,
                                 const float *bias, float *y) {
  constexpr int64_t kOutputs = Values::outputsPerGroup(Rows);
  for (int64_t o = oBegin; o < oEnd; o += kOutputs) {
    const uint8_t *wk[kOutputs];
    for (int64_t k = 0; k < kOutputs; ++k)
      wk[k] = w + uint64_t(std::min(o + k, out - 1) - oBegin) * rowBytes;
    // The first pass asks for the next group's rows ahead, from memory:
    // the hardware's prefetcher alone left block formats streaming at a
    // third of the bandwidth f32 rows got (kvrt-linear-bench: Q8_0 576 x
    // 49152 at one row 2.6 ms without, 0.95 ms with). Later passes find
    // them in the cache.
    if (r == 0 && o + kOutputs < oEnd) {
      const uint8_t *next = wk[kOutputs - 1] + rowBytes;
      const uint64_t bytes =
          uint64_t(std::min(kOutputs, oEnd - o - kOutputs)) * rowBytes;
      for (uint64_t line = 0; line < bytes; line += 64)
        __builtin_prefetch(next + line);
    }
    dotGroup<Rows, kOutputs, Values>(x, r, in, wk, out, o, oEnd, bias, y);
  }
}

/// y[r, o] for every row and the outputs in [oBegin, oEnd), oBegin a
/// multiple of kOutputsAligned; `w` holds weight rows oBegin .. min(oEnd
/// rounded up to kOutputsAligned, out) - 1, `rowBytes` apart. Every output
/// is computed in the same lanes in the same order whatever the rows, their
/// passes and the chunking, so its value never depends on the batch or the
/// thread count.
template <typename Values>
KVRT_INLINE void linearRows(const float *x, int64_t rows, int64_t in,
                            const uint8_t *w, uint64_t rowBytes, int64_t out,
                            int64_t oBegin, int64_t oEnd, const float *bias,
                            float *y) {
  for (int64_t r = 0; r < rows;) {
    const int64_t pass = std::min(rows - r, Values::rowsPerPass(rows));
    switch (pass) {
    case 4:
      passOverWeights<4, Values>(x, r, in, w, rowBytes, out, oBegin, oEnd, bias,
                                 y);
      break;
    case 3:
      passOverWeights<3, Values>(x, r, in, w, rowBytes, out, oBegin, oEnd, bias,
                                 y);
      break;
    case 2:
      passOverWeights<2, Values>(x, r, in, w, rowBytes, out, oBegin, oEnd, bias,
                                 y);
      break;
    default:
      passOverWeights<1, Values>(x, r, in, w, rowBytes, out, oBegin, oEnd, bias,
                                 y);
    }
    r += pass;
  }
}

/// Calls of more rows than this decode a block format's weights ahead.
constexpr int64_t kDecodeAheadAbove = 32;

/// linearRows over weights of any format, in each clone's instructions. A
/// block format's weights are decoded in registers as they are multiplied
/// for a decode step's few rows; for more rows (a prefill) each block of
/// outputs is decoded ahead (kvrt::decodeValues, the same values) into the
/// thread's scratch, over which the rows pass as over f32 weights, each sum
/// in the same order: the same bits. Decoded ahead, a 576 x 576 projection
/// of 256 rows of Q4_1 took 1.16 ms where decoding for every four rows took
/// 1.45; at 16 rows it was slower, 108 us against 91 (kvrt-linear-bench,
/// two cores, 2026-12-07).
KVRT_MULTIVERSION
void linearBlock(const float *x, int64_t rows, int64_t in, const uint8_t *w,
                 schema::DType dtype, uint64_t rowBytes, int64_t out,
                 int64_t oBegin, int64_t oEnd, const float *bias, float *y) {
  if (dtype != schema::DTYPE_F32 && rows > kDecodeAheadAbove) {
    // linearRows reads weight rows up to oEnd rounded up to whole groups;
    // a block format's rows are whole blocks, one after another.
    const int64_t weightRows =
        std::min(out, (oEnd + kOutputsAligned - 1) / kOutputsAligned *
                          kOutputsAligned) -
        oBegin;
    static thread_local std::vector<float> decoded;
    decoded.resize(size_t(weightRows * in));
    decodeValues(dtype, w, uint64_t(weightRows * in), decoded.data());
    return linearRows<F32Values>(
        x, rows, in, reinterpret_cast<const uint8_t *>(decoded.data()),
        uint64_t(in) * 4, out, oBegin, oEnd, bias, y);
  }
  switch (dtype) {
  case schema::DTYPE_Q8_0:
    return linearRows<BlockValues<schema::DTYPE_Q8_0>>(
        x, rows, in, w, rowBytes, out, oBegin, oEnd, bias, y);
  case schema::DTYPE_Q4_0:
    return linearRows<BlockValues<schema::DTYPE_Q4_0>>(
        x, rows, in, w, rowBytes, out, oBegin, oEnd, bias, y);
  case schema::DTYPE_Q4_1:
    return linearRows<BlockValues<schema::DTYPE_Q4_1>>(
        x, rows, in, w, rowBytes, out, oBegin, oEnd, bias, y);
  default:
    return linearRows<F32Values>(x, rows, in, w, rowBytes, out, oBegin, oEnd,
                                 bias, y);
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
  int64_t groups = (out + kOutputsAligned - 1) / kOutputsAligned;
  int64_t block =
      std::max<int64_t>(1, kBlockBytes / (in * 4 * kOutputsAligned));
  int64_t grain = std::max<int64_t>(
      1, kMinChunkWork / std::max<int64_t>(1, rows * in * kOutputsAligned));
  const uint8_t *bytes = static_cast<const uint8_t *>(w.data);
  const uint64_t rowBytes = tensorBytes(w.dtype, uint64_t(in));
  pool.parallelFor(groups, grain, [&](int64_t begin, int64_t end, unsigned) {
    for (int64_t g = begin; g < end; g += block) {
      const int64_t first = g * kOutputsAligned;
      const int64_t last =
          std::min(out, std::min(end, g + block) * kOutputsAligned);
      linearBlock(x, rows, in, bytes + uint64_t(first) * rowBytes, w.dtype,
                  rowBytes, out, first, last, bias, y);
    }
  });
}

} // namespace kvrt::cpu
