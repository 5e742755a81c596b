//===- HalfBytes.h - fp16 fields of a page ----------------------*- C++ -*-===//
//
// Scales, zeros and norms are stored as IEEE binary16, little-endian, at
// any byte offset.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_HALFBYTES_H
#define KVRT_CACHE_CODECS_HALFBYTES_H

#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/cache/codecs/Minifloat.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <cstdint>
#include <cstring>

namespace kvrt::codecs {

// Inlined (KVRT_INLINE) so that the AVX2 clones of the codecs' loops
// (EntryLoops.h) convert in their own instructions, not by calls.

/// Four binary16 values as floats, without branches: each magnitude's bits
/// moved into a float's place are exact once scaled by 2^112, normal or
/// subnormal, and the top exponent becomes an infinity or NaN.
KVRT_INLINE Vec4 halvesToFloats(Vec4u halves) {
  const Vec4u magnitude = (halves & 0x7fffu) << 13;
  const Vec4 scaled = reinterpret_cast<const Vec4 &>(magnitude) * 0x1p112f;
  const Vec4u special = (Vec4u)(magnitude >= (0x7c00u << 13)) & 0x7f800000u;
  const Vec4u bits = reinterpret_cast<const Vec4u &>(scaled) | special |
                     (halves & 0x8000u) << 16;
  return reinterpret_cast<const Vec4 &>(bits);
}

/// The four binary16 values at `p`.
KVRT_INLINE Vec4 loadF16x4(const uint8_t *p) {
  uint16_t h[4];
  std::memcpy(h, p, sizeof(h));
  return halvesToFloats(Vec4u{h[0], h[1], h[2], h[3]});
}

/// The binary16 at `p`.
KVRT_INLINE float loadF16(const uint8_t *p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return halvesToFloats(Vec4u{h, 0, 0, 0})[0];
}

/// Stores `value` rounded to nearest even, saturated to +-65504, and
/// returns what was stored.
inline float storeF16(uint8_t *p, double value) {
  uint16_t half = uint16_t(encodeMinifloat(value, kF16));
  std::memcpy(p, &half, sizeof(half));
  return loadF16(p);
}

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_HALFBYTES_H
