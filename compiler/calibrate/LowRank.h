//===- LowRank.h - How much of K and V a rank keeps --------------*- C++
//-*-===//
//
// The low-rank report: per layer and side (keys before RoPE, values), the
// share of the centred variance that a rank-r PCA basis discards, from the
// calibration covariances (Moments.h) by their eigenvalues. One basis per
// KV head, and one basis shared by the layer's KV heads (the LRKV-style
// shared basis, each head keeping its own mean). This is the measured
// sensitivity the kv-lowrank pass will allocate ranks by (docs/lowrank.md).
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_LOWRANK_H
#define KVOPT_COMPILER_CALIBRATE_LOWRANK_H

#include "compiler/calibrate/Statistics.h"

#include <array>
#include <cstdint>
#include <vector>

namespace kvopt::calibrate {

/// The fractions of the head dimension the report gives the error at.
inline constexpr std::array<double, 3> kLowRankRatios = {0.75, 0.5, 0.25};

/// What a basis of each rank loses, for one head or a group of heads kept
/// at the same rank.
struct RankErrors {
  /// For each rank r in [0, headDim], the sum of the eigenvalues past the
  /// r largest over the sum of all (the discarded share of the centred
  /// variance, in [0, 1]; 0 when there is no variance).
  std::vector<double> error;
  /// The smallest ranks that keep 95% and 99% of the variance.
  int64_t rank95 = 0, rank99 = 0;
};

/// One side (keys before RoPE, or values) of one layer.
struct SideLowRank {
  /// One basis per KV head: each head on its own, and the layer with every
  /// head at the same rank (dropped variance summed over heads, over the
  /// summed total).
  std::vector<RankErrors> heads;
  RankErrors perHead;
  /// One basis for all the layer's KV heads: the eigenvalues of the sum of
  /// their covariances.
  RankErrors shared;
};

struct LayerLowRank {
  SideLowRank key, value;
};

/// The report of every layer. Fails with one sentence naming `origin` when
/// the statistics have no covariances or a head dimension above 512.
kvrt::StatusOr<std::vector<LayerLowRank>>
lowRankReport(const Statistics &stats, const std::string &origin);

/// The rank a ratio of `headDim` stands for: ratio x headDim rounded to the
/// nearest integer.
int64_t rankForRatio(double ratio, int64_t headDim);

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_LOWRANK_H
