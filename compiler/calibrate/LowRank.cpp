//===- LowRank.cpp - How much of K and V a rank keeps ---------------------===//
#include "compiler/calibrate/LowRank.h"

#include "compiler/calibrate/SymmetricEigen.h"

#include <algorithm>
#include <cmath>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::calibrate {
namespace {

/// Jacobi's n^3 sweeps stay in seconds up to here.
constexpr int64_t kMaxHeadDim = 512;

/// The eigenvalues of a covariance, largest first, rounding below 0
/// clamped to 0.
std::vector<double> spectrum(const double *covariance, int64_t dim) {
  std::vector<double> matrix(covariance, covariance + dim * dim);
  std::vector<double> values = symmetricEigen(matrix, dim).values;
  for (double &v : values)
    v = std::max(v, 0.0);
  return values;
}

/// The errors of keeping the same rank of every spectrum in `spectra`.
RankErrors rankErrors(const std::vector<std::vector<double>> &spectra,
                      int64_t dim) {
  RankErrors out;
  // perRank[r]: the r-th largest eigenvalue, summed over the spectra.
  std::vector<double> perRank(size_t(dim), 0.0);
  for (const std::vector<double> &values : spectra)
    for (int64_t r = 0; r < dim; ++r)
      perRank[size_t(r)] += values[size_t(r)];
  double total = 0;
  for (double v : perRank)
    total += v;
  // The tails, summed from their small end.
  out.error.assign(size_t(dim) + 1, 0.0);
  double tail = 0;
  for (int64_t r = dim - 1; r >= 0; --r) {
    tail += perRank[size_t(r)];
    out.error[size_t(r)] = total > 0 ? std::min(tail / total, 1.0) : 0.0;
  }
  auto smallest = [&](double kept) {
    int64_t r = 0;
    while (r < dim && out.error[size_t(r)] > 1 - kept + 1e-12)
      ++r;
    return r;
  };
  out.rank95 = smallest(0.95);
  out.rank99 = smallest(0.99);
  return out;
}

SideLowRank side(const std::vector<double> &covariance, int64_t heads,
                 int64_t dim) {
  SideLowRank out;
  std::vector<std::vector<double>> spectra;
  std::vector<double> sum(size_t(dim * dim), 0.0);
  for (int64_t h = 0; h < heads; ++h) {
    const double *c = covariance.data() + h * dim * dim;
    spectra.push_back(spectrum(c, dim));
    out.heads.push_back(rankErrors({spectra.back()}, dim));
    for (int64_t i = 0; i < dim * dim; ++i)
      sum[size_t(i)] += c[i];
  }
  out.perHead = rankErrors(spectra, dim);
  out.shared = rankErrors({spectrum(sum.data(), dim)}, dim);
  return out;
}

} // namespace

int64_t rankForRatio(double ratio, int64_t headDim) {
  return std::clamp<int64_t>(std::llround(ratio * double(headDim)), 0, headDim);
}

StatusOr<std::vector<LayerLowRank>> lowRankReport(const Statistics &stats,
                                                  const std::string &origin) {
  if (!stats.hasMoments())
    return Status::error(origin +
                         " has no key and value covariances (it predates "
                         "them); run kvopt calibrate again to record them");
  if (stats.headDim > kMaxHeadDim)
    return Status::error(origin +
                         ": the low-rank report takes head "
                         "dimensions up to " +
                         std::to_string(kMaxHeadDim) + ", not " +
                         std::to_string(stats.headDim));
  std::vector<LayerLowRank> layers;
  for (const LayerStatistics &l : stats.layers)
    layers.push_back({side(l.keyCovariance, stats.kvHeads, stats.headDim),
                      side(l.valueCovariance, stats.kvHeads, stats.headDim)});
  return layers;
}

} // namespace kvopt::calibrate
