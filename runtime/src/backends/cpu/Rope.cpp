//===- Rope.cpp - Rotary position embeddings and their scalings ----------===//
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <algorithm>
#include <cmath>

namespace kvrt::cpu {
namespace {

/// YaRN's default attention factor (Hugging Face's get_mscale).
double yarnMscale(double factor) {
  return factor <= 1 ? 1.0 : 0.1 * std::log(factor) + 1.0;
}

/// As _compute_llama3_parameters: long wavelengths are divided by the
/// factor, short ones kept, and those between interpolated smoothly.
void applyLlama3(const schema::RopeScaling &s, std::vector<double> &inv) {
  double oldContext = double(s.original_max_position());
  double lowWavelen = oldContext / s.low_freq_factor();
  double highWavelen = oldContext / s.high_freq_factor();
  for (double &f : inv) {
    double wavelen = 2 * M_PI / f;
    if (wavelen > lowWavelen) {
      f /= s.factor();
    } else if (!(wavelen < highWavelen)) {
      double smooth = (oldContext / wavelen - s.low_freq_factor()) /
                      (s.high_freq_factor() - s.low_freq_factor());
      f = (1 - smooth) * f / s.factor() + smooth * f;
    }
  }
}

/// As _compute_yarn_parameters (truncate = true): frequencies blend from
/// extrapolated (high) to interpolated (low) over a ramp between the
/// dimensions that rotate beta_fast and beta_slow times in the original
/// context.
void applyYarn(const schema::RopeScaling &s, double base, int64_t dim,
               std::vector<double> &inv) {
  double original = double(s.original_max_position());
  auto correctionDim = [&](double rotations) {
    return dim * std::log(original / (rotations * 2 * M_PI)) /
           (2 * std::log(base));
  };
  double low = std::max(std::floor(correctionDim(s.beta_fast())), 0.0);
  double high =
      std::min(std::ceil(correctionDim(s.beta_slow())), double(dim - 1));
  if (low == high)
    high += 0.001; // As Hugging Face: avoids a division by zero.
  for (size_t i = 0; i < inv.size(); ++i) {
    double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    double extrapolationFactor = 1 - ramp;
    double extrapolated = inv[i];
    double interpolated = inv[i] / s.factor();
    inv[i] = interpolated * (1 - extrapolationFactor) +
             extrapolated * extrapolationFactor;
  }
}

} // namespace

RopeFrequencies ropeFrequencies(const schema::Rope &rope, int64_t headDim) {
  RopeFrequencies f;
  f.interleaved = rope.style() == schema::ROPE_STYLE_INTERLEAVED;
  for (int64_t i = 0; i < headDim / 2; ++i)
    f.inverse.push_back(1.0 / std::pow(rope.theta(), double(2 * i) / headDim));
  const schema::RopeScaling &s = rope.scaling();
  switch (s.kind()) {
  case schema::ROPE_SCALING_LINEAR:
    for (double &v : f.inverse)
      v /= s.factor();
    break;
  case schema::ROPE_SCALING_LLAMA3:
    applyLlama3(s, f.inverse);
    break;
  case schema::ROPE_SCALING_YARN:
    applyYarn(s, rope.theta(), headDim, f.inverse);
    f.attentionFactor = s.attention_factor() > 0 ? s.attention_factor()
                                                 : yarnMscale(s.factor());
    break;
  default:
    break;
  }
  return f;
}

void rope(ThreadPool &pool, const RopeFrequencies &freqs, const float *x,
          int64_t rows, int64_t heads, int64_t headDim,
          const int32_t *positions, float *y) {
  int64_t half = headDim / 2;
  // Angles in double: positions times small frequencies lose digits in
  // float long before the context ends. One table per call, shared by the
  // heads of each row.
  std::vector<float> cosines(size_t(rows * half)), sines(size_t(rows * half));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < half; ++p) {
      double angle = double(positions[r]) * freqs.inverse[p];
      cosines[r * half + p] = float(std::cos(angle) * freqs.attentionFactor);
      sines[r * half + p] = float(std::sin(angle) * freqs.attentionFactor);
    }
  // Pair p is (p, p + half) in the half layout, (2p, 2p + 1) interleaved.
  int64_t stride = freqs.interleaved ? 2 : 1;
  int64_t partner = freqs.interleaved ? 1 : half;
  pool.parallelFor(rows * heads, std::max<int64_t>(1, 8192 / headDim),
                   [&](int64_t begin, int64_t end, unsigned) {
                     for (int64_t rh = begin; rh < end; ++rh) {
                       const float *c = cosines.data() + rh / heads * half;
                       const float *s = sines.data() + rh / heads * half;
                       const float *xh = x + rh * headDim;
                       float *yh = y + rh * headDim;
                       for (int64_t p = 0; p < half; ++p) {
                         int64_t a = p * stride, b = a + partner;
                         float x1 = xh[a], x2 = xh[b];
                         yh[a] = x1 * c[p] - x2 * s[p];
                         yh[b] = x2 * c[p] + x1 * s[p];
                       }
                     }
                   });
}

} // namespace kvrt::cpu
