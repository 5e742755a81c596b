//===- SymmetricEigen.h - Eigendecomposition of a symmetric matrix -*- C++
//-*-===//
//
// The eigenvalues and eigenvectors of a small symmetric matrix in double,
// by cyclic Jacobi rotations: what the low-rank report (and the kv-lowrank
// pass's PCA bases) take from calibration covariances. Meant for head
// dimensions (up to a few hundred); the cost grows as n^3 per sweep.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_SYMMETRICEIGEN_H
#define KVOPT_COMPILER_CALIBRATE_SYMMETRICEIGEN_H

#include <cstdint>
#include <vector>

namespace kvopt::calibrate {

/// A = V diag(values) V^T with V orthonormal.
struct SymmetricEigen {
  /// The eigenvalues, largest first.
  std::vector<double> values;
  /// [n][n] row-major; column k is the eigenvector of values[k].
  std::vector<double> vectors;
};

/// Decomposes the symmetric n x n matrix `a` ([n][n] row-major; only its
/// upper triangle is read). Deterministic: the same input gives the same
/// bits.
SymmetricEigen symmetricEigen(const std::vector<double> &a, int64_t n);

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_SYMMETRICEIGEN_H
