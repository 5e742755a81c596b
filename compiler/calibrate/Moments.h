//===- Moments.h - Mean and covariance of per-head vectors ------*- C++ -*-===//
//
// Calibration's first and second moments of the keys before RoPE and of the
// values, per KV head: sums of x and x x^T in double, in the order rows
// arrive, divided by the token count at the end. What the low-rank report
// (LowRank.h) and the kv-lowrank pass's PCA bases are computed from; and
// the values' second moment weighted by the attention they get.
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

/// The attention-weighted second moment of the values, per KV head:
/// sum_t a_t v_t v_t^T / sum_t a_t, a_t the attention weight token t gets
/// from every query row and query head of the group that reads it, counting
/// only the queries for which t is neither one of its sequence's first
/// `sinks` tokens nor among the `window` entries up to the query's own
/// position (what kv-lowrank keeps exact by default: the latent serves the
/// rest). One sequence at a time: its values and weights are added, then
/// endSequence() folds a_t v_t v_t^T into sums in double, token by token
/// in order, so the same input gives the same bits.
class AttentionMomentSums {
public:
  AttentionMomentSums(int64_t heads, int64_t dim, int64_t sinks,
                      int64_t window);

  /// Appends the sequence's next `rows` values ([rows][heads][dim]).
  void addValues(const float *values, int64_t rows);

  /// Adds the weights of one query row at `position` for KV head `head`:
  /// weights[g * count + i] of the group's query head g for the sequence's
  /// entry first + i (entry t at position t). False when an entry has no
  /// value yet or `head` is out of range.
  bool addWeights(int64_t position, int64_t head, const float *weights,
                  int64_t group, uint64_t first, int64_t count);

  /// Folds the sequence into the sums and forgets it.
  void endSequence();

  /// The moment, [heads][dim][dim] row-major and symmetric, appended to
  /// `moment`; false (nothing appended) when no weight was counted, as when
  /// no sequence is longer than sinks + window tokens.
  bool finish(std::vector<double> &moment) const;

private:
  int64_t heads, dim, sinks, window;
  /// The sequence's values [tokens][heads][dim] and weights [heads][tokens].
  std::vector<float> values;
  std::vector<std::vector<double>> weights;
  /// [heads][dim][dim], the upper triangle only, and [heads].
  std::vector<double> products, mass;
};

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_MOMENTS_H
