//===- LrkvAxes.h - A shared basis per layer plus residuals per head -*- C++
//-*-===//
//
// kv-lowrank{method=lrkv}: LRKV's structure (a basis shared by a layer's
// KV heads plus a low-rank residual per head) fitted to calibration
// moments. Each head's latent is its coordinates on [U, V_h]: U, the
// shared basis, the principal axes of the sum of the heads' moments; V_h
// the principal axes of the head's moment on U's orthogonal complement.
// [U, V_h] is orthonormal, so it is one more per-head basis for the codec.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_PASSES_LRKVAXES_H
#define KVOPT_PASSES_LRKVAXES_H

#include <cstdint>
#include <vector>

namespace mlir::kv {

/// Each head's axes with a shared part, and what its residual keeps.
struct LrkvAxes {
  /// [heads][d][d] row-major, column k of head h its k-th axis: the first
  /// `shared` columns U, the same for every head (the eigenvectors of the
  /// sum of the heads' moments, largest first), then the eigenvectors of
  /// the head's moment restricted to U's complement, Q^T M_h Q, mapped
  /// back by Q, largest first.
  std::vector<double> axes;
  /// [heads][d - shared]: per head the eigenvalues of Q^T M_h Q, largest
  /// first. A latent of `shared + k` coordinates loses the sum of the
  /// values past the k-th, over trace(M_h).
  std::vector<double> residualSpectrum;
};

/// The LRKV axes of `heads` heads of `d` coordinates from their second
/// moments `moments` ([heads][d][d], symmetric), with `shared` (at most d)
/// axes shared by all heads.
LrkvAxes lrkvAxes(const std::vector<double> &moments, int64_t heads, int64_t d,
                  int64_t shared);

} // namespace mlir::kv

#endif // KVOPT_PASSES_LRKVAXES_H
