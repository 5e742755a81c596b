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

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_ENTRYLOOPS_H
