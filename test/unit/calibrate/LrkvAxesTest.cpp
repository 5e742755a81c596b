//===- LrkvAxesTest.cpp - A shared basis per layer plus residuals per head ===//
//
// kv-lowrank{method=lrkv}: the axes lrkvAxes fits to the heads' second
// moments, against float64 definitions computed here from the rows: each
// head's axes orthonormal, the first `shared` the same for every head and
// the principal axes of the summed moments, and the mean squared error of
// each head's rows projected on its first r axes equal to the discarded
// spectrum of its residual moment; never below the head's own principal
// axes' discarded spectrum, and equal to it with no shared axes or where
// the heads share their subspace exactly.
//
//===----------------------------------------------------------------------===//
#include "passes/LrkvAxes.h"
#include "compiler/calibrate/SymmetricEigen.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace {

constexpr int64_t kHeads = 3, kDim = 8, kRows = 500;

/// kRows rows of kHeads heads of kDim ([row][head][dim]): each head mixes
/// `common` sources shared by all heads (through the same directions, with
/// its own gains) and `own` sources of its own, plus `noise`.
std::vector<double> rows(std::mt19937 &rng, int64_t common, int64_t own,
                         double noise) {
  std::normal_distribution<double> normal;
  std::vector<double> shared(size_t(kDim * common)),
      mine(size_t(kHeads * kDim * own)), gain(size_t(kHeads * common));
  for (double &v : shared)
    v = normal(rng);
  for (double &v : mine)
    v = normal(rng);
  for (double &v : gain)
    v = 0.5 + std::abs(normal(rng));
  std::vector<double> out(size_t(kRows * kHeads * kDim));
  for (int64_t n = 0; n < kRows; ++n) {
    std::vector<double> s(size_t(common), 0.0);
    for (double &v : s)
      v = normal(rng) * 2.0;
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t i = 0; i < kDim; ++i) {
        double v = noise * normal(rng);
        for (int64_t c = 0; c < common; ++c)
          v += shared[size_t(i * common + c)] * gain[size_t(h * common + c)] *
               s[size_t(c)];
        for (int64_t o = 0; o < own; ++o)
          v += mine[size_t((h * kDim + i) * own + o)] * normal(rng);
        out[size_t((n * kHeads + h) * kDim + i)] = v;
      }
  }
  return out;
}

/// Each head's E[x x^T] ([head][dim][dim]), directly in float64.
std::vector<double> moments(const std::vector<double> &x) {
  std::vector<double> m(size_t(kHeads * kDim * kDim), 0.0);
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t h = 0; h < kHeads; ++h) {
      const double *v = &x[size_t((n * kHeads + h) * kDim)];
      for (int64_t i = 0; i < kDim; ++i)
        for (int64_t j = 0; j < kDim; ++j)
          m[size_t((h * kDim + i) * kDim + j)] += v[i] * v[j] / double(kRows);
    }
  return m;
}

/// Head h's mean squared error |x - A_r A_r^T x|^2 over the rows, A_r the
/// first r columns of its axes.
double projectionError(const std::vector<double> &x,
                       const std::vector<double> &axes, int64_t h, int64_t r) {
  const double *a = &axes[size_t(h * kDim * kDim)];
  double total = 0;
  for (int64_t n = 0; n < kRows; ++n) {
    const double *v = &x[size_t((n * kHeads + h) * kDim)];
    std::vector<double> rebuilt(size_t(kDim), 0.0);
    for (int64_t k = 0; k < r; ++k) {
      double z = 0;
      for (int64_t i = 0; i < kDim; ++i)
        z += a[i * kDim + k] * v[i];
      for (int64_t i = 0; i < kDim; ++i)
        rebuilt[size_t(i)] += a[i * kDim + k] * z;
    }
    for (int64_t i = 0; i < kDim; ++i)
      total += (v[i] - rebuilt[size_t(i)]) * (v[i] - rebuilt[size_t(i)]);
  }
  return total / double(kRows);
}

/// The sum of head h's eigenvalues past the r-th: what its own principal
/// axes lose at rank r.
double ownDiscarded(const std::vector<double> &m, int64_t h, int64_t r) {
  std::vector<double> block(m.begin() + h * kDim * kDim,
                            m.begin() + (h + 1) * kDim * kDim);
  std::vector<double> values =
      kvopt::calibrate::symmetricEigen(block, kDim).values;
  double sum = 0;
  for (int64_t k = r; k < kDim; ++k)
    sum += values[size_t(k)];
  return sum;
}

TEST(LrkvAxes, SharedAxesPlusResidualsLoseTheResidualsDiscardedSpectrum) {
  std::mt19937 rng(7);
  const std::vector<double> x = rows(rng, 3, 2, 0.1), m = moments(x);
  double scale = 0;
  for (int64_t i = 0; i < kDim; ++i)
    scale += m[size_t(i * kDim + i)];
  std::vector<double> pooled(size_t(kDim * kDim), 0.0);
  for (int64_t h = 0; h < kHeads; ++h)
    for (int64_t i = 0; i < kDim * kDim; ++i)
      pooled[size_t(i)] += m[size_t(h * kDim * kDim + i)];
  const std::vector<double> pooledValues =
      kvopt::calibrate::symmetricEigen(pooled, kDim).values;
  bool sharingCosts = false;
  for (int64_t shared : {0, 1, 3, 5, 7}) {
    SCOPED_TRACE("shared " + std::to_string(shared));
    mlir::kv::LrkvAxes fit = mlir::kv::lrkvAxes(m, kHeads, kDim, shared);
    ASSERT_EQ(fit.axes.size(), size_t(kHeads * kDim * kDim));
    ASSERT_EQ(fit.residualSpectrum.size(), size_t(kHeads * (kDim - shared)));
    for (int64_t h = 0; h < kHeads; ++h) {
      const double *a = &fit.axes[size_t(h * kDim * kDim)];
      // [U, V_h, ...] orthonormal, U the same for every head.
      for (int64_t p = 0; p < kDim; ++p)
        for (int64_t q = 0; q < kDim; ++q) {
          double dot = 0;
          for (int64_t i = 0; i < kDim; ++i)
            dot += a[i * kDim + p] * a[i * kDim + q];
          EXPECT_NEAR(dot, p == q ? 1.0 : 0.0, 1e-10) << p << " " << q;
        }
      for (int64_t i = 0; i < kDim; ++i)
        for (int64_t k = 0; k < shared; ++k)
          EXPECT_EQ(a[i * kDim + k], fit.axes[size_t(i * kDim + k)]);
      // Residual eigenvalues sorted, and summing to what U leaves of M_h.
      const double *w = &fit.residualSpectrum[size_t(h * (kDim - shared))];
      double residualTotal = 0, uKeeps = 0;
      for (int64_t k = 0; k < kDim - shared; ++k) {
        residualTotal += w[k];
        if (k)
          EXPECT_LE(w[k], w[k - 1] + 1e-12);
      }
      for (int64_t k = 0; k < shared; ++k)
        for (int64_t i = 0; i < kDim; ++i)
          for (int64_t j = 0; j < kDim; ++j)
            uKeeps += a[i * kDim + k] * m[size_t((h * kDim + i) * kDim + j)] *
                      a[j * kDim + k];
      double trace = 0;
      for (int64_t i = 0; i < kDim; ++i)
        trace += m[size_t((h * kDim + i) * kDim + i)];
      EXPECT_NEAR(residualTotal, trace - uKeeps, 1e-10 * scale);
      // Each rank from the shared part on: the rows' error is the
      // residual's discarded spectrum, never below the head's own PCA.
      for (int64_t r = std::max<int64_t>(shared, 1); r < kDim; ++r) {
        double discarded = 0;
        for (int64_t k = r - shared; k < kDim - shared; ++k)
          discarded += w[k];
        double error = projectionError(x, fit.axes, h, r);
        EXPECT_NEAR(error, discarded, 1e-9 * scale)
            << "head " << h << " r " << r;
        double own = ownDiscarded(m, h, r);
        EXPECT_GE(error, own - 1e-9 * scale);
        if (shared == 0)
          EXPECT_NEAR(error, own, 1e-9 * scale);
        else if (error > own + 1e-3 * scale)
          sharingCosts = true;
      }
    }
    // U: principal axes of the summed moments (what it keeps of their sum
    // is their `shared` largest eigenvalues).
    double kept = 0, largest = 0;
    for (int64_t k = 0; k < shared; ++k) {
      largest += pooledValues[size_t(k)];
      for (int64_t i = 0; i < kDim; ++i)
        for (int64_t j = 0; j < kDim; ++j)
          kept += fit.axes[size_t(i * kDim + k)] *
                  pooled[size_t(i * kDim + j)] * fit.axes[size_t(j * kDim + k)];
    }
    EXPECT_NEAR(kept, largest, 1e-10 * scale);
  }
  // The heads' own sources are not shared: a shared basis costs something.
  EXPECT_TRUE(sharingCosts);
}

TEST(LrkvAxes, HeadsSharingTheirSubspaceLoseNothingByIt) {
  // Coordinates 0-2 carry three sources common to the heads (each head its
  // own gains), 3-7 one source of each head's own along its own direction,
  // weaker, no noise: 3 shared axes plus 1 of each head's keep every row,
  // as the head's own 4 principal axes do. The 6 sources' samples are made
  // exactly uncorrelated (Gram-Schmidt over the rows), so that the summed
  // moment's first 3 axes are the common coordinates, not a sample's tilt
  // of them towards the heads' own directions.
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  constexpr int64_t sources = 6;
  std::vector<double> source(size_t(sources * kRows));
  for (int64_t c = 0; c < sources; ++c) {
    double *col = &source[size_t(c * kRows)];
    for (int64_t n = 0; n < kRows; ++n)
      col[n] = normal(rng);
    for (int64_t p = 0; p < c; ++p) {
      const double *prev = &source[size_t(p * kRows)];
      double dot = 0;
      for (int64_t n = 0; n < kRows; ++n)
        dot += col[n] * prev[n];
      for (int64_t n = 0; n < kRows; ++n)
        col[n] -= dot / double(kRows) * prev[n];
    }
    double norm = 0;
    for (int64_t n = 0; n < kRows; ++n)
      norm += col[n] * col[n];
    for (int64_t n = 0; n < kRows; ++n)
      col[n] *= std::sqrt(double(kRows) / norm);
  }
  std::vector<double> gain(size_t(kHeads * 3)), direction(size_t(kHeads * 5));
  for (double &g : gain)
    g = 0.5 + std::abs(normal(rng));
  for (int64_t h = 0; h < kHeads; ++h) {
    double norm = 0;
    for (int64_t i = 0; i < 5; ++i)
      norm += std::pow(direction[size_t(h * 5 + i)] = normal(rng), 2);
    for (int64_t i = 0; i < 5; ++i)
      direction[size_t(h * 5 + i)] /= std::sqrt(norm);
  }
  std::vector<double> x(size_t(kRows * kHeads * kDim));
  for (int64_t n = 0; n < kRows; ++n)
    for (int64_t h = 0; h < kHeads; ++h) {
      double *v = &x[size_t((n * kHeads + h) * kDim)];
      for (int64_t i = 0; i < 3; ++i)
        v[i] = 3.0 * gain[size_t(h * 3 + i)] * source[size_t(i * kRows + n)];
      for (int64_t i = 0; i < 5; ++i)
        v[3 + i] =
            source[size_t((3 + h) * kRows + n)] * direction[size_t(h * 5 + i)];
    }
  const std::vector<double> m = moments(x);
  double scale = 0;
  for (int64_t i = 0; i < kDim; ++i)
    scale += m[size_t(i * kDim + i)];
  mlir::kv::LrkvAxes fit = mlir::kv::lrkvAxes(m, kHeads, kDim, 3);
  for (int64_t h = 0; h < kHeads; ++h) {
    EXPECT_NEAR(projectionError(x, fit.axes, h, 4), 0.0, 1e-9 * scale);
    EXPECT_NEAR(ownDiscarded(m, h, 4), 0.0, 1e-9 * scale);
  }
}

} // namespace
