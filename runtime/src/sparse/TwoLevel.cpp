//===- TwoLevel.cpp -------------------------------------------------------===//
#include "runtime/src/sparse/TwoLevel.h"

#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/sparse/BlockSummary.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kvrt::sparse {
namespace {

/// rank[i] = max_h (perHead[h * n + i] - max_j perHead[h * n + j]) for
/// `group` heads and `n` items; NaN ranks last.
void rankAcrossHeads(const std::vector<double> &perHead, int64_t group,
                     uint64_t n, std::vector<double> &rank) {
  const double lowest = -std::numeric_limits<double>::infinity();
  rank.assign(n, lowest);
  for (int64_t h = 0; h < group; ++h) {
    const double *row = perHead.data() + h * n;
    double best = lowest;
    for (uint64_t i = 0; i < n; ++i)
      if (row[i] > best)
        best = row[i];
    for (uint64_t i = 0; i < n; ++i) {
      double r = row[i] - best;
      if (r > rank[i])
        rank[i] = r;
    }
  }
}

/// The `k` best of `n` items by rank (ties to the lower index), in index
/// order, into `order`'s first k places; with `next`, the `extra` ranked
/// just below them, in index order.
void keepBest(const std::vector<double> &rank, uint64_t n, uint64_t k,
              std::vector<uint64_t> &order, uint64_t extra = 0,
              std::vector<uint64_t> *next = nullptr) {
  order.resize(n);
  std::iota(order.begin(), order.end(), uint64_t(0));
  k = std::min(k, n);
  uint64_t wanted = next ? std::min(n, k + extra) : k;
  auto better = [&](uint64_t a, uint64_t b) {
    return rank[a] > rank[b] || (rank[a] == rank[b] && a < b);
  };
  std::nth_element(order.begin(), order.begin() + wanted, order.end(), better);
  if (next) {
    std::nth_element(order.begin(), order.begin() + k, order.begin() + wanted,
                     better);
    next->assign(order.begin() + k, order.begin() + wanted);
    std::sort(next->begin(), next->end());
  }
  order.resize(k);
  std::sort(order.begin(), order.end());
}

} // namespace

bool selectEntries(const PagedCache &cache, uint32_t layer, uint64_t sequence,
                   const Codec &keys, uint32_t head, const float *prepared,
                   int64_t preparedStride, int64_t group,
                   const SelectPolicy &policy, SelectScratch &scratch,
                   std::vector<uint64_t> &selected, uint32_t runnersUp,
                   std::vector<uint64_t> *runnerUpBlocks) {
  selected.clear();
  if (runnerUpBlocks)
    runnerUpBlocks->clear();
  const CacheLayerShape &shape = cache.shape(layer);
  const uint64_t encoded = cache.encoded(layer, sequence);
  if (encoded <= policy.topTokens)
    return false;
  const uint32_t d = shape.headDim, block = shape.summaryBlock;
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);

  // Level 1: Quest's bound per block and head.
  const uint64_t blocks = (encoded + block - 1) / block;
  scratch.perHead.resize(size_t(group * blocks));
  for (uint64_t b = 0; b < blocks; ++b) {
    uint64_t first = b * block;
    const Page &page = cache.page(layer, pages[first / shape.pageSize]);
    const BlockBounds bounds = blockBounds(
        cache, layer, page, head, uint32_t(first % shape.pageSize / block));
    for (int64_t h = 0; h < group; ++h) {
      const float *q = prepared + h * preparedStride;
      double bound = 0;
      for (uint32_t c = 0; c < d; ++c) {
        double lo = double(q[c]) * bounds.lower(c);
        double hi = double(q[c]) * bounds.upper(c);
        bound += std::max(lo, hi);
      }
      scratch.perHead[size_t(h * blocks + b)] = bound;
    }
  }
  rankAcrossHeads(scratch.perHead, group, blocks, scratch.rank);
  // The first block (the attention sink) and the newest are always kept.
  scratch.rank[0] = scratch.rank[blocks - 1] =
      std::numeric_limits<double>::infinity();
  keepBest(scratch.rank, blocks, policy.topBlocks, scratch.order, runnersUp,
           runnerUpBlocks);

  std::vector<uint64_t> &candidates = scratch.candidates;
  candidates.clear();
  for (uint64_t b : scratch.order)
    for (uint64_t i = b * block; i < std::min(encoded, (b + 1) * block); ++i)
      candidates.push_back(i);
  if (candidates.size() <= policy.topTokens) {
    selected = candidates;
    return true;
  }

  // Level 2: exact scores of the candidates.
  const uint64_t n = candidates.size();
  scratch.perHead.resize(size_t(group * n));
  scratch.decoded.resize(d);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t index = candidates[i];
    const Page &page = cache.page(layer, pages[index / shape.pageSize]);
    keys.decode(page.keys.get() + head * shape.keyHeadBytes,
                uint32_t(index % shape.pageSize), scratch.decoded.data());
    for (int64_t h = 0; h < group; ++h) {
      const float *q = prepared + h * preparedStride;
      double dot = 0;
      for (uint32_t c = 0; c < d; ++c)
        dot += double(q[c]) * scratch.decoded[c];
      scratch.perHead[size_t(h * n + i)] = dot;
    }
  }
  rankAcrossHeads(scratch.perHead, group, n, scratch.rank);
  keepBest(scratch.rank, n, policy.topTokens, scratch.order);
  selected.reserve(scratch.order.size());
  for (uint64_t i : scratch.order)
    selected.push_back(candidates[i]);
  return true;
}

} // namespace kvrt::sparse
