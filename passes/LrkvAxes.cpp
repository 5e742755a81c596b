//===- LrkvAxes.cpp - A shared basis per layer plus residuals per head ----===//
#include "passes/LrkvAxes.h"
#include "compiler/calibrate/SymmetricEigen.h"

#include <cstddef>

namespace mlir::kv {

LrkvAxes lrkvAxes(const std::vector<double> &moments, int64_t heads, int64_t d,
                  int64_t shared) {
  const size_t n = size_t(d), square = n * n, rest = size_t(d - shared);
  std::vector<double> pooled(square, 0.0);
  for (int64_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < square; ++i)
      pooled[i] += moments[size_t(h) * square + i];
  // The pooled eigenvectors: the first `shared` are U, the others Q, an
  // orthonormal basis of U's complement (exactly orthogonal to U even where
  // a head's moment is singular, unlike the eigenvectors of P M_h P).
  const std::vector<double> e =
      kvopt::calibrate::symmetricEigen(pooled, d).vectors;
  LrkvAxes out;
  out.axes.resize(size_t(heads) * square);
  for (int64_t h = 0; h < heads; ++h) {
    const double *m = &moments[size_t(h) * square];
    double *axes = &out.axes[size_t(h) * square];
    // R = Q^T M_h Q.
    std::vector<double> mq(n * rest, 0.0), r(rest * rest, 0.0);
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < n; ++k)
        for (size_t b = 0; b < rest; ++b)
          mq[i * rest + b] += m[i * n + k] * e[k * n + size_t(shared) + b];
    for (size_t a = 0; a < rest; ++a)
      for (size_t i = 0; i < n; ++i)
        for (size_t b = 0; b < rest; ++b)
          r[a * rest + b] += e[i * n + size_t(shared) + a] * mq[i * rest + b];
    kvopt::calibrate::SymmetricEigen residual =
        kvopt::calibrate::symmetricEigen(r, int64_t(rest));
    for (size_t i = 0; i < n; ++i) {
      for (size_t k = 0; k < size_t(shared); ++k)
        axes[i * n + k] = e[i * n + k];
      for (size_t b = 0; b < rest; ++b) {
        double v = 0;
        for (size_t a = 0; a < rest; ++a)
          v += e[i * n + size_t(shared) + a] * residual.vectors[a * rest + b];
        axes[i * n + size_t(shared) + b] = v;
      }
    }
    out.residualSpectrum.insert(out.residualSpectrum.end(),
                                residual.values.begin(), residual.values.end());
  }
  return out;
}

} // namespace mlir::kv
