//===- VectorMath.h - The loops codecs run per cached entry -----*- C++ -*-===//
#ifndef KVRT_CACHE_CODECS_VECTORMATH_H
#define KVRT_CACHE_CODECS_VECTORMATH_H

#include <cstdint>
#include <cstring>

namespace kvrt::codecs {

/// Four lanes: one SSE or NEON register on every target, so accumulators
/// stay in registers even where eight-lane vectors would be split in two.
typedef float Vec4 __attribute__((vector_size(16)));
typedef uint32_t Vec4u __attribute__((vector_size(16)));

/// a . b in two four-lane accumulators reduced in a fixed order, then the
/// tail.
inline float dot(const float *a, const float *b, int64_t n) {
  Vec4 even = {}, odd = {};
  const int64_t full = n / 8 * 8;
  for (int64_t i = 0; i < full; i += 8) {
    Vec4 a0, a1, b0, b1;
    std::memcpy(&a0, a + i, sizeof(Vec4));
    std::memcpy(&a1, a + i + 4, sizeof(Vec4));
    std::memcpy(&b0, b + i, sizeof(Vec4));
    std::memcpy(&b1, b + i + 4, sizeof(Vec4));
    even += a0 * b0;
    odd += a1 * b1;
  }
  Vec4 lanes = even + odd;
  float sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
  for (int64_t i = full; i < n; ++i)
    sum += a[i] * b[i];
  return sum;
}

/// acc += weight * x.
inline void addScaled(float *acc, float weight, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    acc[i] += weight * x[i];
}

/// x *= factor.
inline void scaleInPlace(float *x, float factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    x[i] *= factor;
}

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_VECTORMATH_H
