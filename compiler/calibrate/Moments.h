//===- Moments.h - Mean and covariance of per-head vectors ------*- C++ -*-===//
//
// Calibration's first and second moments of the keys before RoPE and of the
// values, per KV head: sums of x and x x^T in double, in the order rows
// arrive, divided by the token count at the end. What the low-rank report
// (LowRank.h) and the kv-lowrank pass's PCA bases are computed from.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_MOMENTS_H
#define KVOPT_COMPILER_CALIBRATE_MOMENTS_H

#include <cstdint>
#include <vector>

namespace kvopt::calibrate {

class MomentSums {
public:
  MomentSums(int64_t heads, int64_t dim);

  /// Adds `rows` rows of `heads` vectors of `dim` coordinates
  /// ([rows][heads][dim], row-major).
  void add(const float *x, int64_t rows);

  /// Rows added so far.
  uint64_t tokens() const { return count; }

  /// The mean, [heads][dim], and the covariance E[x x^T] - E[x] E[x]^T,
  /// [heads][dim][dim] row-major and symmetric (negative rounding on its
  /// diagonal clamped to 0), over the rows added; both appended to the
  /// outputs. Needs at least one row.
  void finish(std::vector<double> &mean, std::vector<double> &covariance) const;

private:
  int64_t heads, dim;
  /// [heads][dim] and [heads][dim][dim], the upper triangle only.
  std::vector<double> sums, products;
  std::vector<double> row;
  uint64_t count = 0;
};

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_MOMENTS_H
