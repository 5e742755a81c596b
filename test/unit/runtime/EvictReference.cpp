//===- EvictReference.cpp - float64 definitions of the eviction scores ----===//
#include "EvictReference.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace kvrt::test {

std::vector<float> gaussians(size_t n, uint32_t seed, double sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, sigma);
  std::vector<float> v(n);
  for (float &x : v)
    x = float(normal(rng));
  return v;
}

cpu::RopeFrequencies frequencies(schema::RopeScalingKind scaling,
                                 bool interleaved, int64_t headDim) {
  schema::Rope rope;
  rope.set_theta(10000);
  rope.set_style(interleaved ? schema::ROPE_STYLE_INTERLEAVED
                             : schema::ROPE_STYLE_HALF);
  schema::RopeScaling *s = rope.mutable_scaling();
  s->set_kind(scaling);
  s->set_factor(4);
  s->set_low_freq_factor(1);
  s->set_high_freq_factor(4);
  s->set_original_max_position(2048);
  s->set_beta_fast(32);
  s->set_beta_slow(1);
  return cpu::ropeFrequencies(rope, headDim);
}

std::vector<evict::QueryCentre> randomCentres(int64_t heads, int64_t half,
                                              uint32_t seed) {
  std::vector<float> r = gaussians(size_t(heads * half * 3), seed);
  std::vector<evict::QueryCentre> centres(static_cast<size_t>(heads));
  for (int64_t h = 0; h < heads; ++h) {
    evict::QueryCentre &c = centres[h];
    for (int64_t f = 0; f < half; ++f) {
      size_t i = size_t((h * half + f) * 3);
      c.re.push_back(2 * r[i]);
      c.im.push_back(2 * r[i + 1]);
      c.magnitude.push_back(std::hypot(c.re.back(), c.im.back()) +
                            std::fabs(r[i + 2]));
    }
  }
  return centres;
}

double referenceTriAttention(const cpu::RopeFrequencies &freqs, int64_t d,
                             const std::vector<evict::QueryCentre> &centres,
                             int64_t t, const std::vector<double> &grid,
                             const float *cached, int32_t p,
                             evict::HeadAggregation aggregation) {
  int64_t half = d / 2;
  double mean = 0, best = -INFINITY;
  for (const evict::QueryCentre &c : centres) {
    double total = 0;
    for (double distance : grid) {
      double sum = 0;
      for (int64_t f = 0; f < half; ++f) {
        int64_t a = freqs.interleaved ? 2 * f : f;
        int64_t b = freqs.interleaved ? a + 1 : f + half;
        double w = freqs.inverse[f], angle = p * w;
        double kr =
            (cached[a] * std::cos(angle) + cached[b] * std::sin(angle)) /
            freqs.attentionFactor;
        double ki =
            (cached[b] * std::cos(angle) - cached[a] * std::sin(angle)) /
            freqs.attentionFactor;
        double kAbs = std::hypot(kr, ki), qAbs = std::hypot(c.re[f], c.im[f]);
        double phi = std::atan2(c.im[f], c.re[f]) - std::atan2(ki, kr);
        sum += qAbs * kAbs * std::cos((double(t) + distance - p) * w + phi);
        sum += (c.magnitude[f] - qAbs) * kAbs;
      }
      total += sum;
    }
    double score = total / double(grid.size());
    mean += score / double(centres.size());
    best = std::max(best, score);
  }
  return aggregation == evict::HeadAggregation::Mean ? mean : best;
}

} // namespace kvrt::test
