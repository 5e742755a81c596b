//===- Synthetic.h - The values of a synthetic tensor -----------*- C++ -*-===//
//
// A synthetic model's weights (kvopt compile --synthetic) are generated
// where they are used, so that an 8B-shaped artifact is a few megabytes:
// element i of a tensor is a function of its seed and i alone, the same on
// the host and on a GPU (integer hashing, one exact int-to-float
// conversion and one rounded multiplication), so every backend reads the
// same weights.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SYNTHETIC_H
#define KVRT_SYNTHETIC_H

#include <cstdint>

#if defined(__CUDACC__)
#define KVRT_HOST_DEVICE __host__ __device__
#else
#define KVRT_HOST_DEVICE
#endif

namespace kvrt {

/// SplitMix64's finaliser: a bijection of 64-bit words that mixes well.
KVRT_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Element `index` of a tensor seeded `seed` with values in [-bound,
/// bound): `step` is bound * 2^-23 (exact for any float bound).
KVRT_HOST_DEVICE inline float syntheticValue(uint64_t seed, uint64_t index,
                                             float step) {
  const uint64_t h = mix64(seed + mix64(index));
  const int32_t signedCount = int32_t(h >> 40) - (1 << 23);
  return float(signedCount) * step;
}

/// The bf16 bits of `value`, rounded to nearest even (finite values).
KVRT_HOST_DEVICE inline uint16_t syntheticBf16(float value) {
  uint32_t bits;
#if defined(__CUDA_ARCH__)
  bits = __float_as_uint(value);
#else
  __builtin_memcpy(&bits, &value, 4);
#endif
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
}

} // namespace kvrt

#endif // KVRT_SYNTHETIC_H
