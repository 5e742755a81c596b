//===- F32Runs.cpp - Runs of f32 entries scored and accumulated -----------===//
//
// Built without fused multiply-adds, as the codecs are (EntryLoops.h).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/cache/codecs/F32Runs.h"
#include "runtime/src/backends/cpu/Simd.h"

#include <algorithm>
#include <cstring>

namespace kvrt::codecs {
namespace {

using cpu::Vec8;

/// Entries scored together: their eight lane sums are reduced as one.
constexpr int kEntriesPerBlock = 8;
/// Entries accumulated between loads and stores of the accumulators: about
/// 16 KB of a 64-float head, so that each pass over their columns reads L1.
constexpr int64_t kAccumulateBlock = 64;

/// [a0 + a4, a1 + a5, a2 + a6, a3 + a7, b0 + b4, b1 + b5, b2 + b6, b3 + b7].
KVRT_INLINE Vec8 halvesAdded(Vec8 a, Vec8 b) {
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) +
         __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
}

/// [a0 + a2, a1 + a3] of each four-lane half of a, then of b, in the order
/// a's low half, b's low half, a's high half, b's high half.
KVRT_INLINE Vec8 pairsAdded(Vec8 a, Vec8 b) {
  return __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13) +
         __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
}

/// Lane k holds the sum of sums[k]'s lanes in scoresOfHeads()'s order,
/// ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)): the same additions of the
/// same operands, eight sums at a time.
KVRT_INLINE Vec8 laneTotals(const Vec8 *sums) {
  // Per sum k, a_j = s_j + s_(j+4): a in lanes 0-3 for k even, 4-7 odd.
  const Vec8 a01 = halvesAdded(sums[0], sums[1]);
  const Vec8 a23 = halvesAdded(sums[2], sums[3]);
  const Vec8 a45 = halvesAdded(sums[4], sums[5]);
  const Vec8 a67 = halvesAdded(sums[6], sums[7]);
  // b0 = a0 + a2, b1 = a1 + a3: [b0, b1] of sums 0, 2, 1, 3 (then 4-7).
  const Vec8 b0123 = pairsAdded(a01, a23), b4567 = pairsAdded(a45, a67);
  // b0 + b1, sums in order.
  return __builtin_shufflevector(b0123, b4567, 0, 4, 2, 6, 8, 12, 10, 14) +
         __builtin_shufflevector(b0123, b4567, 1, 5, 3, 7, 9, 13, 11, 15);
}

/// scoresOfHeads<1>() of one query and one entry: what the f32 codec gives.
KVRT_INLINE float scoreOne(const float *query, const float *entry, uint32_t n) {
  const uint32_t full = n / 8 * 8;
  Vec8 sum = {};
  for (uint32_t i = 0; i < full; i += 8)
    sum += cpu::load8(query + i) * cpu::load8(entry + i);
  float total = ((sum[0] + sum[4]) + (sum[2] + sum[6])) +
                ((sum[1] + sum[5]) + (sum[3] + sum[7]));
  for (uint32_t i = full; i < n; ++i)
    total += query[i] * entry[i];
  return total;
}

/// Rows of acc (Heads of them, n floats apart) gaining weights[h *
/// weightStride + t] * entries[t] over `count` entries, on Chunks runs of
/// eight columns from `column`, the sums in registers.
template <int Heads, int Chunks>
KVRT_INLINE void accumulateColumns(const float *weights, int64_t weightStride,
                                   const float *entries, int64_t count,
                                   uint32_t n, uint32_t column, float *acc) {
  Vec8 sums[Heads][Chunks];
  for (int h = 0; h < Heads; ++h)
    for (int c = 0; c < Chunks; ++c)
      sums[h][c] = cpu::load8(acc + h * n + column + 8 * c);
  for (int64_t t = 0; t < count; ++t) {
    const float *entry = entries + t * n + column;
    Vec8 x[Chunks];
    for (int c = 0; c < Chunks; ++c)
      x[c] = cpu::load8(entry + 8 * c);
    for (int h = 0; h < Heads; ++h) {
      const float weight = weights[h * weightStride + t];
      for (int c = 0; c < Chunks; ++c)
        sums[h][c] = sums[h][c] + weight * x[c];
    }
  }
  for (int h = 0; h < Heads; ++h)
    for (int c = 0; c < Chunks; ++c)
      std::memcpy(acc + h * n + column + 8 * c, &sums[h][c], sizeof(Vec8));
}

/// accumulateColumns() over every full run of eight columns.
template <int Heads>
KVRT_INLINE void accumulateHeads(const float *weights, int64_t weightStride,
                                 const float *entries, int64_t count,
                                 uint32_t n, float *acc) {
  const uint32_t full = n / 8 * 8;
  uint32_t column = 0;
  for (; column + 16 <= full; column += 16)
    accumulateColumns<Heads, 2>(weights, weightStride, entries, count, n,
                                column, acc);
  if (column < full)
    accumulateColumns<Heads, 1>(weights, weightStride, entries, count, n,
                                column, acc);
}

} // namespace

KVRT_MULTIVERSION
void f32RunScores(const float *queries, int64_t heads, uint32_t n,
                  const float *entries, int64_t count, float scale,
                  float *scores, int64_t scoreStride) {
  const uint32_t full = n / 8 * 8;
  int64_t t = 0;
  for (; t + kEntriesPerBlock <= count; t += kEntriesPerBlock) {
    const float *block = entries + t * n;
    for (int64_t h = 0; h < heads; ++h) {
      const float *query = queries + h * n;
      Vec8 sums[kEntriesPerBlock] = {};
      for (uint32_t i = 0; i < full; i += 8) {
        const Vec8 q = cpu::load8(query + i);
#pragma GCC unroll 8
        for (int k = 0; k < kEntriesPerBlock; ++k)
          sums[k] += q * cpu::load8(block + k * n + i);
      }
      Vec8 totals = laneTotals(sums);
      for (int k = 0; full < n && k < kEntriesPerBlock; ++k)
        for (uint32_t i = full; i < n; ++i)
          totals[k] += query[i] * block[k * n + i];
      const Vec8 scaled = scale * totals;
      std::memcpy(scores + h * scoreStride + t, &scaled, sizeof scaled);
    }
  }
  for (; t < count; ++t)
    for (int64_t h = 0; h < heads; ++h)
      scores[h * scoreStride + t] =
          scale * scoreOne(queries + h * n, entries + t * n, n);
}

KVRT_MULTIVERSION
void f32RunAccumulate(const float *weights, int64_t weightStride, int64_t heads,
                      const float *entries, int64_t count, uint32_t n,
                      float *acc) {
  const uint32_t full = n / 8 * 8;
  for (int64_t first = 0; first < count; first += kAccumulateBlock) {
    const int64_t block = std::min(kAccumulateBlock, count - first);
    const float *w = weights + first;
    const float *e = entries + first * n;
    for (int64_t h = 0; h < heads; h += 4) {
      const float *wh = w + h * weightStride;
      float *ah = acc + h * n;
      switch (std::min<int64_t>(4, heads - h)) {
      case 1:
        accumulateHeads<1>(wh, weightStride, e, block, n, ah);
        break;
      case 2:
        accumulateHeads<2>(wh, weightStride, e, block, n, ah);
        break;
      case 3:
        accumulateHeads<3>(wh, weightStride, e, block, n, ah);
        break;
      default:
        accumulateHeads<4>(wh, weightStride, e, block, n, ah);
      }
    }
    // A head dimension's last columns, fewer than eight, entry by entry.
    for (int64_t h = 0; full < n && h < heads; ++h)
      for (int64_t t = 0; t < block; ++t)
        for (uint32_t i = full; i < n; ++i)
          acc[h * n + i] += w[h * weightStride + t] * e[t * n + i];
  }
}

} // namespace kvrt::codecs
