//===- EvictLoss.h - Attention an eviction loses, per layer -----*- C++ -*-===//
//
// How much a layer loses from eviction, measured on calibration text: for
// each query row, the attention mass (averaged over the layer's query heads)
// on the entries outside the row's best ceil(j/G x n) of its n entries, for
// j = 1..G. It is what the best possible selection of one kept list per
// layer would lose at each fraction of the tokens seen, whatever scores a
// method uses; kv-evict{allocate=attention} gives budget to the layers
// where it buys the most of that mass back (docs/eviction.md).
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_EVICTLOSS_H
#define KVOPT_COMPILER_CALIBRATE_EVICTLOSS_H

#include <cstdint>
#include <vector>

namespace kvopt::calibrate {

/// Points of the loss curve: fractions 1/G, 2/G, ..., 1 of the entries.
constexpr int64_t kEvictLossPoints = 20;

class EvictLossSums {
public:
  /// A layer of `kvHeads` KV heads read by `heads` query heads in all.
  EvictLossSums(int64_t heads, int64_t kvHeads);

  /// Adds the weights one KV head's group of `group` query heads gave the
  /// row at `position` (AppendObserver::onAttention: weights[g * count + i]
  /// for entry first + i). A row's KV heads come one after another; once
  /// all have come, the row's losses are added. False when a row's KV heads
  /// do not come in order or disagree on its entries.
  bool addWeights(int64_t position, int64_t kvHead, const float *weights,
                  int64_t group, uint64_t first, int64_t count);

  /// Rows whose losses were added.
  uint64_t rows() const { return count; }

  /// The mean loss over the rows at each of the kEvictLossPoints fractions,
  /// non-increasing, in [0, 1]; empty when no row was added.
  std::vector<float> finish() const;

private:
  void addRow();

  int64_t heads, kvHeads;
  /// The row being gathered: its position, the KV heads seen, the sum of
  /// every query head's weight per entry.
  int64_t position = -1, seen = 0;
  uint64_t first = 0;
  std::vector<double> row;
  /// Per point, the sum over rows of the loss; rows added.
  std::vector<double> sums;
  uint64_t count = 0;
};

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_EVICTLOSS_H
