//===- Allocation.cpp - One eviction budget shared across layers ----------===//
#include "compiler/policy/Allocation.h"

#include <algorithm>
#include <cmath>

namespace kvopt::policy {

std::vector<double>
allocateFractions(const std::vector<std::vector<float>> &losses, double budget,
                  double low, double high) {
  const size_t layers = losses.size();
  std::vector<double> fractions(layers, low);
  if (layers == 0)
    return fractions;
  const int64_t points = int64_t(losses.front().size());
  // Layer l lies on segment[l], from point s / G to (s + 1) / G of its curve
  // (point 0: nothing kept, loss 1).
  auto lossAt = [&](size_t l, int64_t s) {
    return s == 0 ? 1.0 : double(losses[l][size_t(s - 1)]);
  };
  std::vector<int64_t> segment(layers);
  for (size_t l = 0; l < layers; ++l)
    segment[l] =
        std::min<int64_t>(points - 1, int64_t(std::floor(low * points)));
  double left = double(layers) * (budget - low);
  while (left > 0) {
    // The steepest fall per fraction among the layers below `high`.
    double best = -1;
    for (size_t l = 0; l < layers; ++l)
      if (fractions[l] < high)
        best =
            std::max(best, (lossAt(l, segment[l]) - lossAt(l, segment[l] + 1)) *
                               double(points));
    if (best < 0)
      break;
    std::vector<size_t> steepest;
    double step = left;
    for (size_t l = 0; l < layers; ++l) {
      if (fractions[l] >= high ||
          (lossAt(l, segment[l]) - lossAt(l, segment[l] + 1)) *
                  double(points) !=
              best)
        continue;
      steepest.push_back(l);
      double end = std::min(high, double(segment[l] + 1) / double(points));
      step = std::min(step, end - fractions[l]);
    }
    step = std::min(step, left / double(steepest.size()));
    for (size_t l : steepest) {
      double end = std::min(high, double(segment[l] + 1) / double(points));
      fractions[l] += step;
      // Rounding must not leave a layer just short of its next point.
      if (fractions[l] >= end - 1e-12 * double(points)) {
        fractions[l] = end;
        if (segment[l] + 1 < points &&
            end == double(segment[l] + 1) / double(points))
          ++segment[l];
      }
    }
    left -= step * double(steepest.size());
  }
  return fractions;
}

} // namespace kvopt::policy
