//===- Float16.h - bf16 and f16 conversions ---------------------*- C++ -*-===//
#ifndef KVRT_BACKENDS_CPU_FLOAT16_H
#define KVRT_BACKENDS_CPU_FLOAT16_H

#include <cstdint>
#include <cstring>

namespace kvrt::cpu {

inline float bf16ToFloat(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

/// Rounds to nearest, ties to even, as PyTorch does; NaN stays NaN.
inline uint16_t floatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

/// IEEE binary16, subnormals included.
inline float f16ToFloat(uint16_t v) {
  uint32_t sign = uint32_t(v & 0x8000u) << 16;
  uint32_t exponent = (v >> 10) & 0x1fu;
  uint32_t mantissa = v & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // A subnormal: shift the mantissa up until its leading one is implicit.
    int shift = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      ++shift;
    }
    bits = sign | (uint32_t(113 - shift) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_FLOAT16_H
