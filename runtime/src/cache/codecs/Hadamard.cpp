//===- Hadamard.cpp -------------------------------------------------------===//
#include "runtime/src/cache/codecs/Hadamard.h"
#include "runtime/src/cache/codecs/SplitMix64.h"

#include <cassert>
#include <cmath>

namespace kvrt::codecs {
namespace {

/// x <- H x / sqrt(n), the fast Walsh-Hadamard transform in place.
template <typename T> void normalizedWalshHadamard(T *x, uint32_t n) {
  for (uint32_t half = 1; half < n; half *= 2)
    for (uint32_t block = 0; block < n; block += 2 * half)
      for (uint32_t i = block; i < block + half; ++i) {
        T a = x[i], b = x[i + half];
        x[i] = a + b;
        x[i + half] = a - b;
      }
  const T norm = T(1) / std::sqrt(T(n));
  for (uint32_t i = 0; i < n; ++i)
    x[i] *= norm;
}

template <typename T> void flipSigns(T *x, const std::vector<float> &signs) {
  for (size_t i = 0; i < signs.size(); ++i)
    x[i] *= T(signs[i]);
}

} // namespace

RandomizedHadamard::RandomizedHadamard(uint32_t dimension, uint64_t seed) {
  assert(dimension && (dimension & (dimension - 1)) == 0);
  SplitMix64 random(seed);
  signs_.resize(dimension);
  for (float &s : signs_)
    s = random.next() >> 63 ? -1.0f : 1.0f;
}

void RandomizedHadamard::rotate(float *x) const {
  flipSigns(x, signs_);
  normalizedWalshHadamard(x, dimension());
}
void RandomizedHadamard::rotate(double *x) const {
  flipSigns(x, signs_);
  normalizedWalshHadamard(x, dimension());
}
void RandomizedHadamard::unrotate(float *x) const {
  normalizedWalshHadamard(x, dimension());
  flipSigns(x, signs_);
}
void RandomizedHadamard::unrotate(double *x) const {
  normalizedWalshHadamard(x, dimension());
  flipSigns(x, signs_);
}

} // namespace kvrt::codecs
