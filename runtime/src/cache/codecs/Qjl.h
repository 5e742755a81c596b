//===- Qjl.h - TurboQuant's 1-bit residual stage for polar keys -*- C++ -*-===//
//
// For a key's residual r (in the rotated domain, after the codebook), QJL
// stores sign(S r) and |r|, S a seeded d x d standard Gaussian matrix, and
// estimates q.r without bias as sqrt(pi/2) / d * |r| * (S q) . sign(S r).
// Stored bytes: d / 8 bytes of signs (bit i set when (S r)_i >= 0, packed
// LSB first), then |r| as fp16.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_QJL_H
#define KVRT_CACHE_CODECS_QJL_H

#include <cstdint>
#include <vector>

namespace kvrt::codecs {

class Qjl {
public:
  /// S drawn from SplitMix64(seed) by Box-Muller, row-major, two normals
  /// per pair of uniforms (docs/kv-encodings.md). `dimension` is a
  /// multiple of 8.
  Qjl(uint32_t dimension, uint64_t seed);

  uint32_t storedBytes() const { return dimension_ / 8 + 2; }

  /// out = S x.
  void project(const float *x, float *out) const;
  void project(const double *x, double *out) const;

  /// Stores sign(S r) and |r| at `out`.
  void encode(const double *residual, uint8_t *out) const;

  /// out[i] = sqrt(pi/2) / d * |r| * sign(S r)_i, so that the estimate of
  /// q.r is (S q) . out.
  void estimateWeights(const uint8_t *stored, float *out) const;

  /// out += the residual the estimate implies, S^T estimateWeights().
  void addResidual(const uint8_t *stored, float *out) const;

private:
  uint32_t dimension_;
  std::vector<float> matrix_;
};

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_QJL_H
