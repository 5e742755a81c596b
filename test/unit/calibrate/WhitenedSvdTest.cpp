//===- WhitenedSvdTest.cpp - Palu's whitened SVD against kvopt's axes -----===//
//
// kv-lowrank{method=svd} takes the eigenvectors of the uncentred second
// moment of a projection's output instead of computing Palu's whitened SVD
// of the projection's weights (docs/lowrank.md proves they are the same).
// Here the SVD is computed directly, in float64, from random layer inputs X
// and weights W (Cholesky of X^T X, then a one-sided Jacobi SVD written
// for this test), and checked against what calibration records from the
// projections X W: the same subspace at every rank, the same latents, and
// a reconstruction error equal to the discarded spectrum.
//
//===----------------------------------------------------------------------===//
#include "compiler/calibrate/Moments.h"
#include "compiler/calibrate/Statistics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace {

/// A dense row-major matrix in double.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), v(size_t(r * c), 0.0) {}
  double &operator()(int64_t i, int64_t j) { return v[size_t(i * cols + j)]; }
  double operator()(int64_t i, int64_t j) const {
    return v[size_t(i * cols + j)];
  }
};

Matrix multiply(const Matrix &a, const Matrix &b) {
  Matrix c(a.rows, b.cols);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t k = 0; k < a.cols; ++k)
      for (int64_t j = 0; j < b.cols; ++j)
        c(i, j) += a(i, k) * b(k, j);
  return c;
}

Matrix transpose(const Matrix &a) {
  Matrix t(a.cols, a.rows);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < a.cols; ++j)
      t(j, i) = a(i, j);
  return t;
}

Matrix columns(const Matrix &a, int64_t first, int64_t count) {
  Matrix c(a.rows, count);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < count; ++j)
      c(i, j) = a(i, first + j);
  return c;
}

/// The lower-triangular L with L L^T = a (a symmetric positive definite).
Matrix cholesky(const Matrix &a) {
  Matrix l(a.rows, a.rows);
  for (int64_t j = 0; j < a.rows; ++j) {
    double diagonal = a(j, j);
    for (int64_t k = 0; k < j; ++k)
      diagonal -= l(j, k) * l(j, k);
    l(j, j) = std::sqrt(diagonal);
    for (int64_t i = j + 1; i < a.rows; ++i) {
      double sum = a(i, j);
      for (int64_t k = 0; k < j; ++k)
        sum -= l(i, k) * l(j, k);
      l(i, j) = sum / l(j, j);
    }
  }
  return l;
}

/// x with s x = b, s upper-triangular; b and x one column each of `b`.
Matrix solveUpper(const Matrix &s, const Matrix &b) {
  Matrix x(b.rows, b.cols);
  for (int64_t c = 0; c < b.cols; ++c)
    for (int64_t i = s.rows - 1; i >= 0; --i) {
      double sum = b(i, c);
      for (int64_t k = i + 1; k < s.rows; ++k)
        sum -= s(i, k) * x(k, c);
      x(i, c) = sum / s(i, i);
    }
  return x;
}

/// m = U diag(sigma) V^T, sigma largest first: one-sided Jacobi rotations
/// of m's columns (Hestenes) until they are orthogonal.
struct Svd {
  Matrix u, v;
  std::vector<double> sigma;
};
Svd jacobiSvd(Matrix m) {
  const int64_t n = m.cols;
  Matrix v(n, n);
  for (int64_t i = 0; i < n; ++i)
    v(i, i) = 1;
  auto rotate = [](Matrix &a, int64_t p, int64_t q, double c, double s) {
    for (int64_t i = 0; i < a.rows; ++i) {
      double x = a(i, p), y = a(i, q);
      a(i, p) = c * x - s * y;
      a(i, q) = s * x + c * y;
    }
  };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double worst = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (int64_t i = 0; i < m.rows; ++i) {
          alpha += m(i, p) * m(i, p);
          beta += m(i, q) * m(i, q);
          gamma += m(i, p) * m(i, q);
        }
        double cosine = std::fabs(gamma) / std::sqrt(alpha * beta);
        worst = std::max(worst, cosine);
        if (cosine < 1e-15)
          continue;
        double zeta = (beta - alpha) / (2 * gamma);
        double t = (zeta >= 0 ? 1.0 : -1.0) /
                   (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
        double c = 1 / std::sqrt(1 + t * t);
        rotate(m, p, q, c, c * t);
        rotate(v, p, q, c, c * t);
      }
    if (worst < 1e-14)
      break;
  }
  std::vector<double> norms(static_cast<size_t>(n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < m.rows; ++i)
      norms[j] += m(i, j) * m(i, j);
    norms[j] = std::sqrt(norms[j]);
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return norms[a] > norms[b]; });
  Svd out{Matrix(m.rows, n), Matrix(n, n), {}};
  for (int64_t k = 0; k < n; ++k) {
    int64_t j = order[k];
    out.sigma.push_back(norms[j]);
    for (int64_t i = 0; i < m.rows; ++i)
      out.u(i, k) = m(i, j) / norms[j];
    for (int64_t i = 0; i < n; ++i)
      out.v(i, k) = v(i, j);
  }
  return out;
}

/// The largest entry of |P_a - P_b|, P the projector on the columns of
/// each (orthonormal) basis.
double projectorDistance(const Matrix &a, const Matrix &b) {
  Matrix pa = multiply(a, transpose(a)), pb = multiply(b, transpose(b));
  double worst = 0;
  for (size_t i = 0; i < pa.v.size(); ++i)
    worst = std::max(worst, std::fabs(pa.v[i] - pb.v[i]));
  return worst;
}

TEST(WhitenedSvd, EqualsTheProjectionsSecondMomentAxes) {
  // Layer inputs X (n x D) with correlated coordinates and a mean, and
  // the projection W (D x heads * d) of two KV heads.
  const int64_t n = 600, inputs = 40, heads = 2, d = 16;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  Matrix mix(inputs, inputs), x(n, inputs), w(inputs, heads * d);
  for (double &e : mix.v)
    e = normal(rng);
  for (double &e : x.v)
    e = normal(rng);
  x = multiply(x, mix);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < inputs; ++j)
      x(i, j) += 0.5 * double(j % 5);
  for (double &e : w.v)
    e = normal(rng);
  Matrix k = multiply(x, w);

  // What calibration records from the projections (as float, as the
  // runtime hands them over), and the axes kvopt derives from it.
  std::vector<float> rows(k.v.begin(), k.v.end());
  kvopt::calibrate::MomentSums sums(heads, d);
  sums.add(rows.data(), n);
  std::vector<double> mean, covariance;
  sums.finish(mean, covariance);
  std::vector<float> axes, spectrum;
  kvopt::calibrate::secondMomentAxes(mean, covariance, heads, d, axes,
                                     spectrum);
  ASSERT_EQ(axes.size(), size_t(heads * d * d));
  ASSERT_EQ(spectrum.size(), size_t(heads * d));

  // Palu: S^T S = X^T X (S = L^T, upper), the SVD of S W_h.
  Matrix s = transpose(cholesky(multiply(transpose(x), x)));
  for (int64_t h = 0; h < heads; ++h) {
    SCOPED_TRACE("head " + std::to_string(h));
    Matrix wh = columns(w, h * d, d), kh = columns(k, h * d, d);
    Svd palu = jacobiSvd(multiply(s, wh));
    Matrix b(d, d);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        b(i, j) = axes[size_t((h * d + i) * d + j)];
    const double top = palu.sigma[0] * palu.sigma[0] / double(n);
    // kvopt's axes are orthonormal, and its eigenvalues are Palu's squared
    // singular values over the token count.
    Matrix gram = multiply(transpose(b), b);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        EXPECT_NEAR(gram(i, j), i == j ? 1.0 : 0.0, 1e-5);
    for (int64_t j = 0; j < d; ++j)
      EXPECT_NEAR(spectrum[size_t(h * d + j)],
                  palu.sigma[j] * palu.sigma[j] / double(n), 1e-5 * top)
          << "axis " << j;

    for (int64_t r : {2, 5, 8, 12}) {
      SCOPED_TRACE("rank " + std::to_string(r));
      // A gap below the rank, so the rank-r subspace is defined.
      ASSERT_GT(palu.sigma[r - 1] - palu.sigma[r], 1e-3 * palu.sigma[0]);
      Matrix vr = columns(palu.v, 0, r), br = columns(b, 0, r);
      // The same subspace.
      EXPECT_LT(projectorDistance(vr, br), 1e-4);
      // The same latents: Palu caches X A_r, A_r = S^-1 U_r Sigma_r, the
      // runtime z = B_r^T k; column by column up to the axis' sign.
      Matrix scaled = columns(palu.u, 0, r);
      for (int64_t i = 0; i < scaled.rows; ++i)
        for (int64_t j = 0; j < r; ++j)
          scaled(i, j) *= palu.sigma[j];
      Matrix paluLatent = multiply(x, solveUpper(s, scaled));
      Matrix latent = multiply(kh, br);
      double scale = std::sqrt(top), worst = 0, discarded = 0, error = 0;
      for (int64_t j = 0; j < r; ++j) {
        double dot = 0;
        for (int64_t i = 0; i < n; ++i)
          dot += paluLatent(i, j) * latent(i, j);
        double sign = dot < 0 ? -1.0 : 1.0;
        for (int64_t i = 0; i < n; ++i)
          worst = std::max(worst,
                           std::fabs(paluLatent(i, j) - sign * latent(i, j)));
      }
      EXPECT_LT(worst, 1e-4 * scale);
      // Rebuilt as latent B_r^T: the mean squared error is the discarded
      // spectrum, kvopt's and Palu's.
      Matrix rebuilt = multiply(latent, transpose(br));
      for (size_t i = 0; i < rebuilt.v.size(); ++i)
        error += std::pow(rebuilt.v[i] - kh.v[i], 2);
      error /= double(n);
      double paluDiscarded = 0;
      for (int64_t j = r; j < d; ++j) {
        discarded += spectrum[size_t(h * d + j)];
        paluDiscarded += palu.sigma[j] * palu.sigma[j] / double(n);
      }
      EXPECT_NEAR(error, discarded, 1e-5 * top);
      EXPECT_NEAR(error, paluDiscarded, 1e-5 * top);

      // Whitening matters: the SVD of W_h alone (Palu without the
      // activations) keeps another subspace, which this test would catch.
      Svd plain = jacobiSvd(wh);
      EXPECT_GT(projectorDistance(columns(plain.v, 0, r), br), 1e-2);
    }
  }
}

} // namespace
