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
  const KeptLayout layout = keptLayout(count, params);
  std::vector<uint64_t> candidates(layout.recentStart - layout.sinks);
  std::iota(candidates.begin(), candidates.end(), layout.sinks);
  // A strict total order (rankKey(): the score, NaN as -inf, then the
  // earlier entry), so the result does not depend on the algorithm, and
  // the GPU's selection ranks by the same keys.
  auto better = [&](uint64_t a, uint64_t b) {
    return rankKey(scores[a], uint32_t(a)) > rankKey(scores[b], uint32_t(b));
  };
  std::nth_element(candidates.begin(), candidates.begin() + layout.free,
                   candidates.end(), better);
  candidates.resize(layout.free);
  std::sort(candidates.begin(), candidates.end());
  std::vector<uint64_t> kept;
  kept.reserve(layout.kept(count));
  for (uint64_t i = 0; i < layout.sinks; ++i)
    kept.push_back(i);
  kept.insert(kept.end(), candidates.begin(), candidates.end());
  for (uint64_t i = layout.recentStart; i < count; ++i)
    kept.push_back(i);
  return kept;
}

} // namespace

KeptLayout keptLayout(uint64_t count, const SelectionParams &params) {
  if (count <= params.budget)
    return {count, count, 0};
  KeptLayout layout;
  layout.sinks = std::min(params.sinks, count);
  layout.recentStart = count - std::min(params.recent, count - layout.sinks);
  const uint64_t protectedCount = layout.sinks + (count - layout.recentStart);
  layout.free = params.budget > protectedCount
                    ? std::min(params.budget - protectedCount,
                               layout.recentStart - layout.sinks)
                    : 0;
  return layout;
}

void standardise(float *scores, uint64_t count) {
  double sum = 0, squares = 0;
  uint64_t finite = 0;
  for (uint64_t i = 0; i < count; ++i)
    if (std::isfinite(scores[i])) {
      sum += scores[i];
      squares += double(scores[i]) * scores[i];
      ++finite;
    }
  if (finite < 2)
    return;
  double mean = sum / double(finite);
  double deviation =
      std::sqrt(std::max(0.0, squares / double(finite) - mean * mean));
  if (!(deviation > 0))
    return;
  for (uint64_t i = 0; i < count; ++i)
    scores[i] = float((scores[i] - mean) / deviation);
}

std::vector<float> combineHeads(const float *scores, int64_t kvHeads,
                                int64_t stride, uint64_t count,
                                HeadAggregation aggregation) {
  std::vector<float> standardised;
  if (aggregation == HeadAggregation::StandardisedMax) {
    standardised.resize(size_t(kvHeads) * count);
    for (int64_t h = 0; h < kvHeads; ++h) {
      std::copy_n(scores + h * stride, count,
                  standardised.data() + uint64_t(h) * count);
      standardise(standardised.data() + uint64_t(h) * count, count);
    }
    scores = standardised.data();
    stride = int64_t(count);
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
    combined[i] = float(
        aggregation == HeadAggregation::Mean ? sum / double(kvHeads) : best);
  }
  return combined;
}

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
  const std::vector<float> combined =
      combineHeads(scores, kvHeads, stride, count, params.aggregation);
  kept.push_back(selectRow(combined.data(), count, params));
  return kept;
}

} // namespace kvrt::evict
