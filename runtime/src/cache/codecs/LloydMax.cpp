//===- LloydMax.cpp -------------------------------------------------------===//
#include "runtime/src/cache/codecs/LloydMax.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

namespace kvrt::codecs {
namespace {

/// The 16-point Gauss-Legendre rule on [-1, 1], from Newton's method on the
/// Legendre polynomial's roots.
struct GaussLegendre {
  static constexpr int kPoints = 16;
  double nodes[kPoints];
  double weights[kPoints];

  GaussLegendre() {
    const int n = kPoints;
    for (int i = 0; i < n; ++i) {
      double x = std::cos(M_PI * (i + 0.75) / (n + 0.5)), derivative = 0;
      for (int iteration = 0; iteration < 100; ++iteration) {
        double previous = 1, current = x; // P_0 and P_1
        for (int k = 2; k <= n; ++k) {
          double next = ((2 * k - 1) * x * current - (k - 1) * previous) / k;
          previous = current;
          current = next;
        }
        derivative = n * (x * current - previous) / (x * x - 1);
        double step = current / derivative;
        x -= step;
        if (std::fabs(step) < 1e-16)
          break;
      }
      nodes[i] = x;
      weights[i] = 2 / ((1 - x * x) * derivative * derivative);
    }
  }
};

/// Moments of the (unnormalised) coordinate density over cells. With x =
/// cos(theta), (1 - x^2)^((d - 3) / 2) dx becomes sin(theta)^(d - 2) dtheta,
/// smooth on [0, pi] for every d >= 2, so composite Gauss-Legendre in theta
/// on pieces of at most 0.05 rad integrates it to double precision (the
/// density's bulk is about 1 / sqrt(d) rad wide).
class CoordinateDensity {
public:
  explicit CoordinateDensity(uint32_t dimension) : sinPower_(dimension - 2.0) {}

  /// The integral of x^power times the density over [a, b], 0 <= a < b <= 1.
  double moment(double a, double b, int power) const {
    static const GaussLegendre rule;
    const double from = std::acos(b), to = std::acos(a);
    const int pieces = std::max(1, int(std::ceil((to - from) / 0.05)));
    const double width = (to - from) / pieces;
    double sum = 0;
    for (int p = 0; p < pieces; ++p) {
      const double centre = from + (p + 0.5) * width;
      for (int i = 0; i < GaussLegendre::kPoints; ++i) {
        double theta = centre + 0.5 * width * rule.nodes[i];
        sum += rule.weights[i] * std::pow(std::cos(theta), power) *
               std::pow(std::sin(theta), sinPower_);
      }
    }
    return sum * 0.5 * width;
  }

private:
  double sinPower_;
};

Codebook design(uint32_t dimension, uint32_t bits) {
  const CoordinateDensity density(dimension);
  // The density is even: iterate on the 2^(bits-1) positive levels, whose
  // cells tile [0, 1] (the middle boundary is 0).
  const uint32_t half = 1u << (bits - 1);
  std::vector<double> positive(half), edges(half + 1);
  const double spread = std::min(1.0, 3.0 / std::sqrt(double(dimension)));
  for (uint32_t i = 0; i < half; ++i)
    positive[i] = spread * (i + 0.5) / half;
  auto setEdges = [&] {
    edges[0] = 0;
    edges[half] = 1;
    for (uint32_t i = 1; i < half; ++i)
      edges[i] = (positive[i - 1] + positive[i]) / 2;
  };
  // Lloyd's iterations converge linearly to the unique optimum (the
  // density is log-concave for d >= 3); stop when no level moves by more
  // than a few ulps.
  for (int iteration = 0; iteration < 100000; ++iteration) {
    setEdges();
    double change = 0;
    for (uint32_t i = 0; i < half; ++i) {
      double centroid = density.moment(edges[i], edges[i + 1], 1) /
                        density.moment(edges[i], edges[i + 1], 0);
      change = std::max(change, std::fabs(centroid - positive[i]));
      positive[i] = centroid;
    }
    if (change < 1e-15)
      break;
  }
  setEdges();

  Codebook codebook;
  codebook.dimension = dimension;
  codebook.bits = bits;
  for (uint32_t i = half; i-- > 0;)
    codebook.levels.push_back(-positive[i]);
  codebook.levels.insert(codebook.levels.end(), positive.begin(),
                         positive.end());
  for (size_t i = 0; i + 1 < codebook.levels.size(); ++i)
    codebook.boundaries.push_back(
        (codebook.levels[i] + codebook.levels[i + 1]) / 2);
  double squaredError = 0;
  for (uint32_t i = 0; i < half; ++i) {
    double a = edges[i], b = edges[i + 1], level = positive[i];
    squaredError += density.moment(a, b, 2) -
                    2 * level * density.moment(a, b, 1) +
                    level * level * density.moment(a, b, 0);
  }
  codebook.distortion = squaredError / density.moment(0, 1, 0);
  return codebook;
}

} // namespace

const Codebook &lloydMaxCodebook(uint32_t dimension, uint32_t bits) {
  assert(dimension >= 2 && bits >= 1 && bits <= 8);
  static std::mutex mutex;
  static std::map<std::pair<uint32_t, uint32_t>, std::unique_ptr<Codebook>>
      cache;
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Codebook> &entry = cache[{dimension, bits}];
  if (!entry)
    entry = std::make_unique<Codebook>(design(dimension, bits));
  return *entry;
}

} // namespace kvrt::codecs
