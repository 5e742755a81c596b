//===- EvictLoss.cpp - Attention an eviction loses, per layer -------------===//
#include "compiler/calibrate/EvictLoss.h"

#include <algorithm>
#include <functional>

namespace kvopt::calibrate {

EvictLossSums::EvictLossSums(int64_t heads, int64_t kvHeads)
    : heads(heads), kvHeads(kvHeads), sums(size_t(kEvictLossPoints), 0.0) {}

bool EvictLossSums::addWeights(int64_t rowPosition, int64_t kvHead,
                               const float *weights, int64_t group,
                               uint64_t rowFirst, int64_t entries) {
  if (kvHead != seen || group * kvHeads != heads || entries < 0)
    return false;
  if (seen == 0) {
    position = rowPosition;
    first = rowFirst;
    row.assign(size_t(entries), 0.0);
  } else if (rowPosition != position || rowFirst != first ||
             size_t(entries) != row.size()) {
    return false;
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t i = 0; i < entries; ++i)
      row[size_t(i)] += weights[g * entries + i];
  if (++seen == kvHeads) {
    addRow();
    seen = 0;
  }
  return true;
}

void EvictLossSums::addRow() {
  const size_t n = row.size();
  if (n == 0)
    return;
  std::sort(row.begin(), row.end(), std::greater<double>());
  // tail[k]: the mass of all but the best k entries, summed from the
  // smallest up, so it cannot grow with k.
  std::vector<double> tail(n + 1, 0.0);
  for (size_t k = n; k-- > 0;)
    tail[k] = tail[k + 1] + row[k] / double(heads);
  for (int64_t j = 1; j <= kEvictLossPoints; ++j) {
    size_t kept = (size_t(j) * n + size_t(kEvictLossPoints) - 1) /
                  size_t(kEvictLossPoints);
    sums[size_t(j - 1)] += tail[kept];
  }
  ++count;
}

std::vector<float> EvictLossSums::finish() const {
  std::vector<float> loss;
  if (!count)
    return loss;
  for (double s : sums)
    loss.push_back(std::clamp(float(s / double(count)), 0.0f, 1.0f));
  return loss;
}

} // namespace kvopt::calibrate
