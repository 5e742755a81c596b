//===- BoundCodes.h - Block summaries in eight bits -------------*- C++ -*-===//
//
// A block summary (BlockSummary.h) holds, per channel, a lower and an upper
// bound of the block's keys. They are stored as FP8 E4M3 codes times one
// power of two 2^e per block and KV head, e the smallest exponent that puts
// the block's largest bound within E4M3's 448: half the bytes of bf16
// bounds, which level 1 of a selecting step reads in full (replayed on the
// default model with no loss of quality: docs/sparse-selection.md).
//
// The codes are rounded outward (lower bounds down, upper bounds up), so
// they still bound the keys. Magnitudes below E4M3's smallest normal
// number 2^-6 (times 2^e) go to 0 or to +-2^-6 on the outer side, so no
// code is subnormal: level 1 on the GPU widens codes to bf16 by moving
// their bits (TwoLevelSelect.cu), which keeps them exact and normal only so.
// Header-only and callable from CUDA kernels, so that the GPU's summaries
// (SummariseBlock.cuh) have the CPU's bits.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SPARSE_BOUNDCODES_H
#define KVRT_SPARSE_BOUNDCODES_H

#include "runtime/src/support/HostDevice.h"

#include <cstdint>
#include <cstring>

namespace kvrt::sparse {

/// The range of a block's exponent. The lowest keeps every code's value
/// (at least 2^-6 times 2^e) a normal float; the highest keeps level 1's
/// scaling on the GPU finite. Bounds beyond 448 * 2^71 are stored as NaN.
inline constexpr int kMinBoundExponent = -120, kMaxBoundExponent = 71;
/// The code of NaN (S.1111.111) without its sign.
inline constexpr uint8_t kBoundNaN = 0x7f;

/// The exponent e of a block whose bounds reach `largest` in magnitude: the
/// smallest with largest <= 448 * 2^e, clamped to the range above.
KVRT_HOST_DEVICE inline int boundExponent(float largest) {
  uint32_t bits;
  std::memcpy(&bits, &largest, 4);
  bits &= 0x7fffffffu;
  if (bits >= 0x7f800000u) // infinite or NaN
    return kMaxBoundExponent;
  if (bits < 0x00800000u) // zero or subnormal
    return kMinBoundExponent;
  // largest = 1.m * 2^x and 448 = 1.75 * 2^8 (a mantissa field of 0x600000).
  const int x = int(bits >> 23) - 127;
  const int e = x - 8 + ((bits & 0x7fffffu) > 0x600000u ? 1 : 0);
  return e < kMinBoundExponent   ? kMinBoundExponent
         : e > kMaxBoundExponent ? kMaxBoundExponent
                                 : e;
}

/// The E4M3 code of `x / 2^exponent` rounded outward: down for a lower
/// bound, up for an upper one (`upper`), never to a subnormal code.
KVRT_HOST_DEVICE inline uint8_t boundCode(float x, int exponent, bool upper) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const bool negative = bits >> 31;
  const uint32_t magnitude = bits & 0x7fffffffu;
  const uint8_t sign = negative ? 0x80 : 0x00;
  if (magnitude > 0x7f800000u)
    return sign | kBoundNaN;
  // Rounding away from zero moves a lower bound of a negative number or an
  // upper bound of a positive one outward; towards zero the others.
  const bool away = upper != negative;
  if (magnitude == 0)
    return 0x00;
  // A subnormal float is below 2^-126 <= 2^-6 * 2^exponent.
  const int field =
      magnitude < 0x00800000u ? 0 : int(magnitude >> 23) - 127 - exponent + 7;
  if (field < 1) // below the smallest normal code, 2^-6
    return away ? uint8_t(sign | 0x08) : uint8_t(0x00);
  if (field > 15)
    return sign | kBoundNaN;
  const uint32_t mantissa = magnitude & 0x7fffffu;
  uint32_t code = uint32_t(field) << 3 | mantissa >> 20;
  if (away && (mantissa & 0xfffffu) != 0)
    ++code; // carries into the exponent field when the mantissa is full
  return code >= kBoundNaN ? sign | kBoundNaN : uint8_t(sign | code);
}

/// 2^n as a float, for n in [-126, 127].
KVRT_HOST_DEVICE inline float powerOfTwo(int n) {
  const uint32_t bits = uint32_t(n + 127) << 23;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

/// Bytes of the block summaries of one page of a layer: per KV head and
/// block of `block` slots, 2 * headDim codes and one exponent.
KVRT_HOST_DEVICE inline uint64_t summaryBytesPerPage(uint32_t kvHeads,
                                                     uint32_t headDim,
                                                     uint32_t pageSize,
                                                     uint32_t block) {
  return block ? uint64_t(kvHeads) * (pageSize / block) * (2 * headDim + 1) : 0;
}

} // namespace kvrt::sparse

#endif // KVRT_SPARSE_BOUNDCODES_H
