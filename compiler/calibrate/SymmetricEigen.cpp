//===- SymmetricEigen.cpp - Cyclic Jacobi eigendecomposition --------------===//
#include "compiler/calibrate/SymmetricEigen.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

namespace kvopt::calibrate {

SymmetricEigen symmetricEigen(const std::vector<double> &input, int64_t n) {
  size_t size = size_t(n);
  // The full symmetric matrix, from the upper triangle.
  std::vector<double> a(size * size);
  for (size_t i = 0; i < size; ++i)
    for (size_t j = i; j < size; ++j)
      a[i * size + j] = a[j * size + i] = input[i * size + j];
  std::vector<double> v(size * size, 0.0);
  for (size_t i = 0; i < size; ++i)
    v[i * size + i] = 1.0;

  double norm2 = 0;
  for (double x : a)
    norm2 += x * x;
  // Stop once the off-diagonal part is at rounding level of the matrix.
  double tolerance = norm2 * std::pow(DBL_EPSILON * double(size + 1), 2);
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (size_t p = 0; p < size; ++p)
      for (size_t q = p + 1; q < size; ++q)
        off += a[p * size + q] * a[p * size + q];
    if (off == 0 || 2 * off <= tolerance)
      break;
    for (size_t p = 0; p < size; ++p)
      for (size_t q = p + 1; q < size; ++q) {
        double apq = a[p * size + q];
        if (apq == 0)
          continue;
        double app = a[p * size + p], aqq = a[q * size + q];
        // Rotate by the angle that zeroes a[p][q]: t = tan(phi) is the
        // smaller root of t^2 + 2 theta t - 1 = 0.
        double theta = (aqq - app) / (2 * apq);
        double t = std::fabs(theta) > 1e150
                       ? 0.5 / theta
                       : std::copysign(1.0, theta) /
                             (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t k = 0; k < size; ++k) {
          double akp = a[k * size + p], akq = a[k * size + q];
          a[k * size + p] = c * akp - s * akq;
          a[k * size + q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < size; ++k) {
          double apk = a[p * size + k], aqk = a[q * size + k];
          a[p * size + k] = c * apk - s * aqk;
          a[q * size + k] = s * apk + c * aqk;
        }
        for (size_t k = 0; k < size; ++k) {
          double vkp = v[k * size + p], vkq = v[k * size + q];
          v[k * size + p] = c * vkp - s * vkq;
          v[k * size + q] = s * vkp + c * vkq;
        }
      }
  }

  std::vector<size_t> order(size);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return a[x * size + x] > a[y * size + y];
  });
  SymmetricEigen result;
  result.values.resize(size);
  result.vectors.resize(size * size);
  for (size_t k = 0; k < size; ++k) {
    result.values[k] = a[order[k] * size + order[k]];
    for (size_t i = 0; i < size; ++i)
      result.vectors[i * size + k] = v[i * size + order[k]];
  }
  return result;
}

} // namespace kvopt::calibrate
