//===- PairRotations.cpp - RoPE's rotations in double, from tables --------===//
#include "runtime/src/cache/codecs/PairRotations.h"

#include <cmath>

namespace kvrt::codecs {

PairRotations::PairRotations(const cpu::RopeFrequencies &f)
    : inverse_(f.inverse), factor_(f.attentionFactor),
      interleaved_(f.interleaved) {
  for (size_t level = 0; level < kLevels; ++level)
    for (size_t step = 0; step < 256; ++step)
      for (double frequency : inverse_) {
        double angle = double(step << (8 * level)) * frequency;
        tables_[level].push_back({std::cos(angle), std::sin(angle)});
      }
}

void PairRotations::rotate(const float *x, int32_t position, bool inverse,
                           float *y) const {
  const size_t half = inverse_.size(), stride = interleaved_ ? 2 : 1,
               partner = interleaved_ ? 1 : half;
  const double scale = inverse ? 1.0 / factor_ : factor_;
  const bool tabled = position >= 0 && position < (1 << (8 * kLevels));
  for (size_t p = 0; p < half; ++p) {
    double c = 1, s = 0;
    if (!tabled) {
      c = std::cos(double(position) * inverse_[p]);
      s = std::sin(double(position) * inverse_[p]);
    }
    for (size_t level = 0; tabled && level < kLevels; ++level) {
      size_t step = (uint32_t(position) >> (8 * level)) & 255;
      const auto &[lc, ls] = tables_[level][step * half + p];
      double rotated = c * lc - s * ls;
      s = c * ls + s * lc;
      c = rotated;
    }
    if (inverse)
      s = -s;
    size_t a = p * stride, b = a + partner;
    double x1 = x[a], x2 = x[b];
    y[a] = float((x1 * c - x2 * s) * scale);
    y[b] = float((x2 * c + x1 * s) * scale);
  }
}

} // namespace kvrt::codecs
