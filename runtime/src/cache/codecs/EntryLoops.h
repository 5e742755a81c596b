//===- EntryLoops.h - Entries decoded in registers --------------*- C++ -*-===//
//
// Codec::score() and Codec::accumulate() decode an entry into scratch, then
// run codecs::dot and addScaled over it. The loops here take an entry that
// the codec decodes eight elements at a time into registers instead, once
// for every query head of the call. `Entry` gives:
//
//   load8(i)  elements i .. i + 7 (i a multiple of 8), with the bits that
//             the codec's decode path gives them;
//   load(i)   element i alone, for a head dimension's tail of fewer than 8;
//   scale     a factor of the whole entry, applied to each score after the
//             sum and to each weight before the products (polar's level
//             scale; 1 elsewhere, which changes no bit);
//   kDecodeOnce  whether the loops decode each element once for all heads
//             (decoding costs more than a load) or read it again per head.
//
// The sums are codecs::dot's (its even and odd four-lane sums are the halves
// of one eight-lane sum, reduced in its order) and the products addScaled's,
// so attention gives the same bits as the decode path, provided the file that
// instantiates them is built without fused multiply-adds (-ffp-contract=off)
// and calls them from KVRT_MULTIVERSION functions, whose x86-64-v3 clone
// runs them in AVX2. An entry holding vectors (polar's and nvfp4's tables)
// is best made inside the clone: built by the caller and passed in, nvfp4's
// decode step at 2048 tokens took 13.4 ms against 11.7.
//
// Attention reads a page's visible entries, and a prefill its prompt in the
// f32 tail, as runs of consecutive entries: scoresOfRun() and
// accumulateOfRun() take an `entryAt(t)` that gives a run's entry t, so that
// a codec's virtual call, its tables and the clone's dispatch are paid once
// per run, and entries read where they lie are scored eight at a time
// (their lane sums reduced together) and summed with the accumulators in
// registers, still with the bits of the loops above.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_ENTRYLOOPS_H
#define KVRT_CACHE_CODECS_ENTRYLOOPS_H

#include "runtime/src/backends/cpu/Simd.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace kvrt::codecs {

using cpu::Vec8;
typedef int32_t Vec8i __attribute__((vector_size(32)));

/// The eight Bits-bit codes packed (low bits first) in the Bits bytes at
/// `packed`, one per lane.
template <uint32_t Bits> KVRT_INLINE Vec8i codesOf(const uint8_t *packed) {
  uint32_t word = 0;
  for (uint32_t b = 0; b < Bits; ++b)
    word |= uint32_t(packed[b]) << (8 * b);
  const Vec8i shifts = {0,        Bits,     2 * Bits, 3 * Bits,
                        4 * Bits, 5 * Bits, 6 * Bits, 7 * Bits};
  const Vec8i mask = Vec8i{} + int32_t((1u << Bits) - 1);
  return (Vec8i{} + int32_t(word)) >> shifts & mask;
}

/// table[codes[j]] in lane j, for codes below 16: `low` holds entries 0-7,
/// `high` 8-15 (unused below 8 entries).
KVRT_INLINE Vec8 throughTable(Vec8i codes, Vec8 low, Vec8 high) {
#if defined(__clang__)
  // Clang (the fuzzing build) has no shuffle by variable lanes.
  Vec8 out;
  for (int j = 0; j < 8; ++j)
    out[j] = codes[j] < 8 ? low[codes[j]] : high[codes[j] - 8];
  return out;
#else
  return __builtin_shuffle(low, high, codes);
#endif
}

/// The eight binary16 values at `p`: one conversion where the clone has
/// F16C. Every half converts exactly, to the value halvesToFloats() gives
/// (HalfBytes.h), but a signalling NaN, which F16C quiets; the codecs never
/// store one.
KVRT_INLINE Vec8 loadF16x8(const uint8_t *p) {
  typedef _Float16 Half8 __attribute__((vector_size(16)));
  Half8 halves;
  std::memcpy(&halves, p, sizeof halves);
  return __builtin_convertvector(halves, Vec8);
}

/// scores[h] = entry.scale * (q_h . entry) for Heads queries `stride` floats
/// apart; n elements, each decoded once.
template <int Heads, typename Entry>
KVRT_INLINE void scoresOfHeads(const float *queries, uint32_t stride,
                               const Entry &entry, uint32_t n, float *scores) {
  const uint32_t full = n / 8 * 8;
  Vec8 sums[Heads] = {};
  for (uint32_t i = 0; i < full; i += 8) {
    const Vec8 x = entry.load8(i);
#pragma GCC unroll 4
    for (int h = 0; h < Heads; ++h)
      sums[h] += cpu::load8(queries + h * stride + i) * x;
  }
  float total[Heads];
#pragma GCC unroll 4
  for (int h = 0; h < Heads; ++h) {
    const Vec8 s = sums[h];
    total[h] =
        ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  }
  for (uint32_t i = full; i < n; ++i) {
    const float x = entry.load(i);
#pragma GCC unroll 4
    for (int h = 0; h < Heads; ++h)
      total[h] += queries[h * stride + i] * x;
  }
#pragma GCC unroll 4
  for (int h = 0; h < Heads; ++h)
    scores[h] = entry.scale * total[h];
}

/// scoresOfHeads() for `heads` queries: four at a time (their sums stay in
/// registers) where Entry::kDecodeOnce, else one at a time, each head's
/// loads and sums independent of the others' (for entries whose load8() is
/// a load: out-of-order execution then overlaps the heads' dependent sums,
/// and decoding once only adds work).
template <typename Entry>
KVRT_INLINE void scoresOf(const float *queries, int64_t heads, uint32_t stride,
                          const Entry &entry, uint32_t n, float *scores) {
  if constexpr (!Entry::kDecodeOnce) {
    for (int64_t h = 0; h < heads; ++h)
      scoresOfHeads<1>(queries + h * stride, stride, entry, n, scores + h);
    return;
  }
  for (int64_t first = 0; first < heads; first += 4) {
    const float *q = queries + first * stride;
    switch (std::min<int64_t>(4, heads - first)) {
    case 1:
      scoresOfHeads<1>(q, stride, entry, n, scores + first);
      break;
    case 2:
      scoresOfHeads<2>(q, stride, entry, n, scores + first);
      break;
    case 3:
      scoresOfHeads<3>(q, stride, entry, n, scores + first);
      break;
    default:
      scoresOfHeads<4>(q, stride, entry, n, scores + first);
    }
  }
}

/// acc[h * n + d] += (weights[h] * entry.scale) * entry[d] for `heads` rows:
/// each element decoded once for every row where Entry::kDecodeOnce, else
/// row by row.
template <typename Entry>
KVRT_INLINE void accumulateOf(const float *weights, int64_t heads,
                              const Entry &entry, uint32_t n, float *acc) {
  const uint32_t full = n / 8 * 8;
  if constexpr (Entry::kDecodeOnce) {
    for (uint32_t i = 0; i < full; i += 8) {
      const Vec8 x = entry.load8(i);
      for (int64_t h = 0; h < heads; ++h) {
        float *row = acc + h * n + i;
        const Vec8 sum = cpu::load8(row) + (weights[h] * entry.scale) * x;
        std::memcpy(row, &sum, sizeof sum);
      }
    }
  } else {
    for (int64_t h = 0; h < heads; ++h) {
      const float weight = weights[h] * entry.scale;
      float *row = acc + h * n;
      for (uint32_t i = 0; i < full; i += 8) {
        const Vec8 sum = cpu::load8(row + i) + weight * entry.load8(i);
        std::memcpy(row + i, &sum, sizeof sum);
      }
    }
  }
  for (int64_t h = 0; h < heads; ++h)
    for (uint32_t i = full; i < n; ++i)
      acc[h * n + i] += (weights[h] * entry.scale) * entry.load(i);
}

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

/// Entries scored together by scoresOfRun(): their eight lane sums are
/// reduced as one.
constexpr int kRunBlock = 8;

/// scores[h * scoreStride + t] = scale * (entryAt(t).scale * (q_h .
/// entryAt(t))) for `count` entries and `heads` queries `stride` floats
/// apart: scoresOf() entry by entry, then the scale, with the same bits.
/// Entries decoded once per head group are scored one by one; entries read
/// where they lie (entry.scale 1) eight at a time per query, their sums
/// reduced together.
template <typename EntryAt>
KVRT_INLINE void scoresOfRun(const float *queries, int64_t heads,
                             uint32_t stride, const EntryAt &entryAt,
                             int64_t count, uint32_t n, float scale,
                             float *scores, int64_t scoreStride) {
  int64_t t = 0;
  if constexpr (!decltype(entryAt(0))::kDecodeOnce) {
    const uint32_t full = n / 8 * 8;
    for (; t + kRunBlock <= count; t += kRunBlock) {
      for (int64_t h = 0; h < heads; ++h) {
        const float *query = queries + h * stride;
        Vec8 sums[kRunBlock] = {};
        for (uint32_t i = 0; i < full; i += 8) {
          const Vec8 q = cpu::load8(query + i);
#pragma GCC unroll 8
          for (int k = 0; k < kRunBlock; ++k)
            sums[k] += q * entryAt(t + k).load8(i);
        }
        Vec8 totals = laneTotals(sums);
        for (int k = 0; full < n && k < kRunBlock; ++k)
          for (uint32_t i = full; i < n; ++i)
            totals[k] += query[i] * entryAt(t + k).load(i);
        const Vec8 scaled = scale * totals;
        std::memcpy(scores + h * scoreStride + t, &scaled, sizeof scaled);
      }
    }
  }
  for (; t < count; ++t) {
    const auto entry = entryAt(t);
    // Four heads at a time, as scoresOf() takes them.
    for (int64_t first = 0; first < heads; first += 4) {
      float sums[4];
      const int64_t group = std::min<int64_t>(4, heads - first);
      scoresOf(queries + first * stride, group, stride, entry, n, sums);
      for (int64_t h = 0; h < group; ++h)
        scores[(first + h) * scoreStride + t] = scale * sums[h];
    }
  }
}

/// Rows of acc (Heads of them, n floats apart) gaining weights[h *
/// weightStride + t] * entryAt(t) over `count` entries, on Chunks runs of
/// eight columns from `column`, the sums in registers.
template <int Heads, int Chunks, typename EntryAt>
KVRT_INLINE void accumulateColumns(const float *weights, int64_t weightStride,
                                   const EntryAt &entryAt, int64_t count,
                                   uint32_t n, uint32_t column, float *acc) {
  Vec8 sums[Heads][Chunks];
  for (int h = 0; h < Heads; ++h)
    for (int c = 0; c < Chunks; ++c)
      sums[h][c] = cpu::load8(acc + h * n + column + 8 * c);
  for (int64_t t = 0; t < count; ++t) {
    const auto entry = entryAt(t);
    Vec8 x[Chunks];
    for (int c = 0; c < Chunks; ++c)
      x[c] = entry.load8(column + 8 * c);
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

/// accumulateColumns() over every full run of eight columns in [begin,
/// end) (multiples of eight; each column's sum does not depend on which
/// others go with it).
template <int Heads, typename EntryAt>
KVRT_INLINE void accumulateHeads(const float *weights, int64_t weightStride,
                                 const EntryAt &entryAt, int64_t count,
                                 uint32_t n, uint32_t begin, uint32_t end,
                                 float *acc) {
  uint32_t column = begin;
  for (; column + 16 <= end; column += 16)
    accumulateColumns<Heads, 2>(weights, weightStride, entryAt, count, n,
                                column, acc);
  if (column < end)
    accumulateColumns<Heads, 1>(weights, weightStride, entryAt, count, n,
                                column, acc);
}

/// Entries accumulated between loads and stores of the accumulators: about
/// 16 KB of 64-float f32 entries, so that each pass over their columns
/// reads L1.
constexpr int64_t kAccumulateBlock = 64;

/// acc[h * n + d] += weights[h * weightStride + t] * entryAt(t)[d] for
/// `heads` rows and `count` entries in order: accumulateOf() entry by entry
/// with the same bits. Entries decoded once per head group go one by one;
/// entries read where they lie (entry.scale 1) with the sums held in
/// registers across entries, for the columns d in [begin, end) alone where
/// a caller splits a row's sums (begin a multiple of eight, end too or n;
/// entries read where they lie only).
template <typename EntryAt>
KVRT_INLINE void accumulateOfRun(const float *weights, int64_t weightStride,
                                 int64_t heads, const EntryAt &entryAt,
                                 int64_t count, uint32_t n, float *acc,
                                 uint32_t begin = 0, uint32_t end = ~0u) {
  if constexpr (decltype(entryAt(0))::kDecodeOnce) {
    for (int64_t t = 0; t < count; ++t) {
      const auto entry = entryAt(t);
      for (int64_t first = 0; first < heads; first += 4) {
        float w[4];
        const int64_t group = std::min<int64_t>(4, heads - first);
        for (int64_t h = 0; h < group; ++h)
          w[h] = weights[(first + h) * weightStride + t];
        accumulateOf(w, group, entry, n, acc + first * n);
      }
    }
    return;
  }
  end = std::min(end, n);
  const uint32_t full = std::min(end, n / 8 * 8);
  for (int64_t first = 0; first < count; first += kAccumulateBlock) {
    const int64_t block = std::min(kAccumulateBlock, count - first);
    const float *w = weights + first;
    auto at = [&](int64_t t) { return entryAt(first + t); };
    for (int64_t h = 0; h < heads; h += 4) {
      const float *wh = w + h * weightStride;
      float *ah = acc + h * n;
      switch (std::min<int64_t>(4, heads - h)) {
      case 1:
        accumulateHeads<1>(wh, weightStride, at, block, n, begin, full, ah);
        break;
      case 2:
        accumulateHeads<2>(wh, weightStride, at, block, n, begin, full, ah);
        break;
      case 3:
        accumulateHeads<3>(wh, weightStride, at, block, n, begin, full, ah);
        break;
      default:
        accumulateHeads<4>(wh, weightStride, at, block, n, begin, full, ah);
      }
    }
    // A head dimension's last columns, fewer than eight, entry by entry.
    for (int64_t h = 0; full < end && h < heads; ++h)
      for (int64_t t = 0; t < block; ++t)
        for (uint32_t i = std::max(full, begin); i < end; ++i)
          acc[h * n + i] += w[h * weightStride + t] * at(t).load(i);
  }
}

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_ENTRYLOOPS_H
