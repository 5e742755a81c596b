//===- SplitMix64.h - The seeded generator of rotations and QJL -*- C++ -*-===//
//
// Steele, Lea and Flood's SplitMix64, as in Vigna's reference code: the
// state advances by the golden-ratio constant and each output is the
// state passed through mix(). Seeded with 0, the first output is
// 0xE220A8397B1DCDAF.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_SPLITMIX64_H
#define KVRT_CACHE_CODECS_SPLITMIX64_H

#include <cstdint>

namespace kvrt::codecs {

/// SplitMix64's output function (a bijection of 64-bit words; mix(0) = 0).
constexpr uint64_t splitMix64Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return splitMix64Mix(state_);
  }
  /// A double in [0, 1) from the top 53 bits of next().
  double uniform() { return double(next() >> 11) * 0x1p-53; }

private:
  uint64_t state_;
};

/// The seed of stream `stream` drawn from an encoding's seed:
/// mix(seed ^ mix(stream)). Polar uses stream 2 * layer + side (keys 0,
/// values 1) for its rotations and 2^63 + layer for the QJL matrix.
constexpr uint64_t deriveSeed(uint64_t seed, uint64_t stream) {
  return splitMix64Mix(seed ^ splitMix64Mix(stream));
}

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_SPLITMIX64_H
