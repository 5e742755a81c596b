//===- LloydMax.h - Codebooks for the coordinates of unit vectors -*- C++ -*-=//
//
// One coordinate x of a uniformly random unit vector in d dimensions has the
// density (1 - x^2)^((d - 3) / 2) / B(1/2, (d - 1) / 2) on [-1, 1] (mean 0,
// variance 1/d). After polar's random rotation every coordinate of a stored
// unit vector follows it, so one scalar quantizer per (d, bits) serves all
// coordinates. The quantizer is the Lloyd-Max one for that density: each
// level is the centroid of its cell, each cell boundary the midpoint of its
// two levels. Lloyd's iterations find it; docs/kv-encodings.md says how.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_LLOYDMAX_H
#define KVRT_CACHE_CODECS_LLOYDMAX_H

#include <cstdint>
#include <vector>

namespace kvrt::codecs {

struct Codebook {
  uint32_t dimension = 0;
  uint32_t bits = 0;
  /// 2^bits levels, ascending and symmetric: levels[i] = -levels[n - 1 - i].
  std::vector<double> levels;
  /// boundaries[i] = (levels[i] + levels[i + 1]) / 2.
  std::vector<double> boundaries;
  /// E[(x - level(x))^2] for one coordinate; a unit vector quantized
  /// coordinate by coordinate has dimension * distortion squared error.
  double distortion = 0;

  /// The index of x's level: how many boundaries lie strictly below x (a
  /// value on a boundary takes the lower level).
  uint32_t quantize(double x) const {
    uint32_t code = 0;
    for (double b : boundaries)
      code += x > b;
    return code;
  }
};

/// The codebook of `bits` (1 to 8) bits for `dimension` (at least 2)
/// dimensions, designed on first use and kept for the process; thread safe.
const Codebook &lloydMaxCodebook(uint32_t dimension, uint32_t bits);

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_LLOYDMAX_H
