//===- Hadamard.h - A seeded randomized Hadamard rotation -------*- C++ -*-===//
//
// R = H D / sqrt(d): D flips the signs of seeded random coordinates and H is
// the d x d Walsh-Hadamard matrix in Sylvester order, H[i][j] =
// (-1)^popcount(i & j). R is orthogonal, costs O(d log d) through the fast
// transform, and spreads any vector's energy evenly over the coordinates.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_HADAMARD_H
#define KVRT_CACHE_CODECS_HADAMARD_H

#include <cstdint>
#include <vector>

namespace kvrt::codecs {

class RandomizedHadamard {
public:
  /// `dimension` is a power of two. Coordinate i's sign is negative when bit
  /// 63 of the i-th output of SplitMix64(seed) is set.
  RandomizedHadamard(uint32_t dimension, uint64_t seed);

  uint32_t dimension() const { return uint32_t(signs_.size()); }

  /// x <- R x.
  void rotate(float *x) const;
  void rotate(double *x) const;
  /// x <- R^T x = D H x / sqrt(d).
  void unrotate(float *x) const;
  void unrotate(double *x) const;

private:
  std::vector<float> signs_;
};

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_HADAMARD_H
