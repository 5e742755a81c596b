//===- BestByRank.h - The k best items of a float64 rank, for tests -*- C++
//-*-===//
//
// Shared by the selection tests (the unit tests of sparse/TwoLevel and the
// GPU's kvrt-cuda-sparse --check): the reference's own top-k, a stable
// sort, so that ties go to the lower index as the selection promises.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TEST_UNIT_BESTBYRANK_H
#define KVOPT_TEST_UNIT_BESTBYRANK_H

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace kvopt::test {

/// The `k` best items by rank (larger first, ties to the lower index), in
/// index order.
inline std::vector<uint64_t> bestByRank(const std::vector<double> &rank,
                                        uint64_t k) {
  std::vector<uint64_t> order(rank.size());
  std::iota(order.begin(), order.end(), uint64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](uint64_t a, uint64_t b) { return rank[a] > rank[b]; });
  order.resize(std::min<uint64_t>(k, order.size()));
  std::sort(order.begin(), order.end());
  return order;
}

} // namespace kvopt::test

#endif // KVOPT_TEST_UNIT_BESTBYRANK_H
