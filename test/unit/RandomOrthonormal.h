//===- RandomOrthonormal.h - Random orthonormal vectors for tests -*- C++
//-*-===//
//
// Shared by unit tests that need calibrated-looking axes: `count`
// orthonormal vectors of `dim` coordinates, Gram-Schmidt in double over
// normal draws.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TEST_UNIT_RANDOMORTHONORMAL_H
#define KVOPT_TEST_UNIT_RANDOMORTHONORMAL_H

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace kvopt::test {

inline std::vector<std::vector<double>>
randomOrthonormal(std::mt19937 &rng, size_t count, size_t dim) {
  std::normal_distribution<double> normal;
  std::vector<std::vector<double>> vectors;
  for (size_t k = 0; k < count; ++k) {
    std::vector<double> v(dim);
    for (double &x : v)
      x = normal(rng);
    for (const std::vector<double> &prior : vectors) {
      double dot = 0;
      for (size_t i = 0; i < dim; ++i)
        dot += v[i] * prior[i];
      for (size_t i = 0; i < dim; ++i)
        v[i] -= dot * prior[i];
    }
    double norm = 0;
    for (double x : v)
      norm += x * x;
    for (double &x : v)
      x /= std::sqrt(norm);
    vectors.push_back(std::move(v));
  }
  return vectors;
}

} // namespace kvopt::test

#endif // KVOPT_TEST_UNIT_RANDOMORTHONORMAL_H
