//===- SymmetricEigenTest.cpp - The Jacobi eigensolver --------------------===//
#include "compiler/calibrate/SymmetricEigen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using kvopt::calibrate::SymmetricEigen;
using kvopt::calibrate::symmetricEigen;

namespace {

/// A random symmetric n x n matrix, entries uniform in [-1, 1].
std::vector<double> randomSymmetric(int64_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<double> a(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j)
      a[i * n + j] = a[j * n + i] = uniform(rng);
  return a;
}

/// Checks V orthonormal, the values sorted largest first, and
/// A = V diag(w) V^T, each to `tolerance`.
void expectDecomposes(const std::vector<double> &a, int64_t n,
                      const SymmetricEigen &e, double tolerance) {
  ASSERT_EQ(e.values.size(), size_t(n));
  ASSERT_EQ(e.vectors.size(), size_t(n * n));
  for (int64_t k = 1; k < n; ++k)
    EXPECT_GE(e.values[k - 1], e.values[k]) << "at " << k;
  double worstOrtho = 0, worstRebuild = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0, rebuilt = 0;
      for (int64_t k = 0; k < n; ++k) {
        dot += e.vectors[k * n + i] * e.vectors[k * n + j];
        rebuilt += e.vectors[i * n + k] * e.values[k] * e.vectors[j * n + k];
      }
      worstOrtho = std::max(worstOrtho, std::fabs(dot - (i == j ? 1.0 : 0.0)));
      worstRebuild = std::max(worstRebuild, std::fabs(rebuilt - a[i * n + j]));
    }
  EXPECT_LE(worstOrtho, tolerance);
  EXPECT_LE(worstRebuild, tolerance);
}

TEST(SymmetricEigen, RebuildsRandomMatricesOf64And128) {
  for (int64_t n : {64, 128}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::vector<double> a = randomSymmetric(n, unsigned(n));
    SymmetricEigen e = symmetricEigen(a, n);
    expectDecomposes(a, n, e, 1e-10);
    // The trace is the sum of the eigenvalues.
    double trace = 0, sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      trace += a[i * n + i];
      sum += e.values[i];
    }
    EXPECT_NEAR(trace, sum, 1e-10);
  }
}

TEST(SymmetricEigen, SortsADiagonalMatrixAndKeepsItsAxes) {
  const int64_t n = 5;
  std::vector<double> a(n * n, 0.0);
  const double diagonal[n] = {2.0, -1.0, 7.0, 0.0, 3.5};
  for (int64_t i = 0; i < n; ++i)
    a[i * n + i] = diagonal[i];
  SymmetricEigen e = symmetricEigen(a, n);
  EXPECT_EQ(e.values, (std::vector<double>{7.0, 3.5, 2.0, 0.0, -1.0}));
  // Column k is the unit vector of the axis holding values[k].
  const int64_t axis[n] = {2, 4, 0, 3, 1};
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(e.vectors[i * n + k], i == axis[k] ? 1.0 : 0.0);
}

TEST(SymmetricEigen, FindsTheRankOfARankDeficientMatrix) {
  // A = B B^T with B 64 x 5: rank 5, positive semi-definite.
  const int64_t n = 64, rank = 5;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  std::vector<double> b(n * rank), a(n * n, 0.0);
  for (double &x : b)
    x = normal(rng);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < rank; ++k)
        a[i * n + j] += b[i * rank + k] * b[j * rank + k];
  SymmetricEigen e = symmetricEigen(a, n);
  expectDecomposes(a, n, e, 1e-10);
  EXPECT_GT(e.values[rank - 1], 1.0);
  for (int64_t k = rank; k < n; ++k)
    EXPECT_NEAR(e.values[k], 0.0, 1e-10) << "at " << k;
}

TEST(SymmetricEigen, IsDeterministic) {
  std::vector<double> a = randomSymmetric(32, 3);
  SymmetricEigen x = symmetricEigen(a, 32), y = symmetricEigen(a, 32);
  EXPECT_EQ(x.values, y.values);
  EXPECT_EQ(x.vectors, y.vectors);
}

} // namespace
