//===- Select.cpp - Budgeted top-k selection of cached entries ------------===//
#include "runtime/src/evict/Select.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kvrt::evict {
namespace {

/// The kept indices of one row of scores, ascending.
std::vector<uint64_t> selectRow(const float *scores, uint64_t count,
                                const SelectionParams &params) {
  std::vector<uint64_t> kept;
  if (count <= params.budget) {
    kept.resize(count);
    std::iota(kept.begin(), kept.end(), 0);
    return kept;
  }
  uint64_t sinks = std::min(params.sinks, count);
  uint64_t recentStart = count - std::min(params.recent, count - sinks);
  uint64_t protectedCount = sinks + (count - recentStart);
  uint64_t free =
      params.budget > protectedCount
          ? std::min(params.budget - protectedCount, recentStart - sinks)
          : 0;
  std::vector<uint64_t> candidates(recentStart - sinks);
  std::iota(candidates.begin(), candidates.end(), sinks);
  auto value = [&](uint64_t i) {
    float s = scores[i];
    return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
  };
  // A strict total order: the result does not depend on the algorithm.
  auto better = [&](uint64_t a, uint64_t b) {
    float va = value(a), vb = value(b);
    return va != vb ? va > vb : a < b;
  };
  std::nth_element(candidates.begin(), candidates.begin() + free,
                   candidates.end(), better);
  candidates.resize(free);
  std::sort(candidates.begin(), candidates.end());
  kept.reserve(protectedCount + free);
  for (uint64_t i = 0; i < sinks; ++i)
    kept.push_back(i);
  kept.insert(kept.end(), candidates.begin(), candidates.end());
  for (uint64_t i = recentStart; i < count; ++i)
    kept.push_back(i);
  return kept;
}

} // namespace

std::vector<std::vector<uint64_t>> selectKept(const float *scores,
                                              int64_t kvHeads, int64_t stride,
                                              uint64_t count,
                                              const SelectionParams &params) {
  std::vector<std::vector<uint64_t>> kept;
  if (!params.shared) {
    for (int64_t h = 0; h < kvHeads; ++h)
      kept.push_back(selectRow(scores + h * stride, count, params));
    return kept;
  }
  std::vector<float> combined(count);
  for (uint64_t i = 0; i < count; ++i) {
    double sum = 0, best = -std::numeric_limits<double>::infinity();
    for (int64_t h = 0; h < kvHeads; ++h) {
      float s = scores[h * stride + i];
      double v = std::isnan(s) ? -std::numeric_limits<double>::infinity() : s;
      sum += v;
      best = std::max(best, v);
    }
    combined[i] = float(params.aggregation == HeadAggregation::Mean
                            ? sum / double(kvHeads)
                            : best);
  }
  kept.push_back(selectRow(combined.data(), count, params));
  return kept;
}

} // namespace kvrt::evict
