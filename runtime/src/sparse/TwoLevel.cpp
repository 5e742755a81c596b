//===- TwoLevel.cpp -------------------------------------------------------===//
#include "runtime/src/sparse/TwoLevel.h"

#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/sparse/BlockSummary.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace kvrt::sparse {
namespace {

using cpu::kDoubleLanes;
using cpu::Vec4d;

/// Items (blocks, then entries) are scored kItems at a time, a lane each:
/// their operands stand channel-major in `columns` (channel c of lane j at
/// c * kItems + j), and each lane adds its terms in channel order. Every
/// product is of two floats, exact in double, so whether the compiler fuses
/// it into the add changes nothing: each sum has the bits of the scalar
/// loop sum += double(q[c]) * k[c] over c = 0, 1, ... Four vectors of lanes
/// keep four sums in flight, so the adds' latency is hidden.
constexpr uint32_t kVectors = 4;
constexpr uint32_t kItems = kVectors * kDoubleLanes;

/// Converts `rows` (kItems rows of d floats, row j lane j's operand) to
/// `columns`, four rows by four channels at a time.
KVRT_MULTIVERSION
void toColumns(const float *rows, uint32_t d, double *columns) {
  typedef float Vec4f __attribute__((vector_size(16)));
  uint32_t c0 = 0;
  for (; c0 + kDoubleLanes <= d; c0 += kDoubleLanes)
    for (uint32_t v = 0; v < kVectors; ++v) {
      Vec4d r[kDoubleLanes];
      for (uint32_t i = 0; i < kDoubleLanes; ++i) {
        Vec4f x;
        std::memcpy(&x, rows + (v * kDoubleLanes + i) * d + c0, sizeof(x));
        r[i] = __builtin_convertvector(x, Vec4d);
      }
      // A 4 x 4 transpose: pairs of rows interleaved, then pairs of pairs.
      const Vec4d t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 2, 6);
      const Vec4d t1 = __builtin_shufflevector(r[0], r[1], 1, 5, 3, 7);
      const Vec4d t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 2, 6);
      const Vec4d t3 = __builtin_shufflevector(r[2], r[3], 1, 5, 3, 7);
      const Vec4d out[kDoubleLanes] = {
          __builtin_shufflevector(t0, t2, 0, 1, 4, 5),
          __builtin_shufflevector(t1, t3, 0, 1, 4, 5),
          __builtin_shufflevector(t0, t2, 2, 3, 6, 7),
          __builtin_shufflevector(t1, t3, 2, 3, 6, 7)};
      for (uint32_t i = 0; i < kDoubleLanes; ++i)
        std::memcpy(columns + (c0 + i) * kItems + v * kDoubleLanes, &out[i],
                    sizeof(Vec4d));
    }
  for (; c0 < d; ++c0)
    for (uint32_t j = 0; j < kItems; ++j)
      columns[c0 * kItems + j] = rows[j * d + c0];
}

/// Stores the first `lanes` lanes of `sums` at `out`.
KVRT_INLINE void storeLanes(const Vec4d (&sums)[kVectors], uint32_t lanes,
                            double *out) {
  for (uint32_t j = 0; j < lanes; ++j)
    out[j] = sums[j / kDoubleLanes][j % kDoubleLanes];
}

/// For `group` heads, each lane's sum over the d channels of term(q_c, at),
/// where `at` is where channel c's lanes start in the columns, into
/// `perHead` (head h's lane j at h * stride + j).
template <typename Term>
KVRT_INLINE void sumLanes(uint32_t d, const float *prepared,
                          int64_t preparedStride, int64_t group, uint32_t lanes,
                          double *perHead, uint64_t stride, const Term &term) {
  for (int64_t h = 0; h < group; ++h) {
    const float *q = prepared + h * preparedStride;
    Vec4d sums[kVectors] = {};
    for (uint32_t c = 0; c < d; ++c) {
      const Vec4d qc = Vec4d{} + double(q[c]);
#pragma GCC unroll 4
      for (uint32_t v = 0; v < kVectors; ++v)
        sums[v] += term(qc, c * kItems + v * kDoubleLanes);
    }
    storeLanes(sums, lanes, perHead + uint64_t(h) * stride);
  }
}

/// Quest's term: max(q_c lo_c, q_c hi_c), lane by lane.
struct BoundTerm {
  const double *lower, *upper;
  KVRT_INLINE Vec4d operator()(Vec4d qc, uint32_t at) const {
    const Vec4d lo = qc * cpu::load4d(lower + at);
    const Vec4d hi = qc * cpu::load4d(upper + at);
    return lo < hi ? hi : lo; // std::max(lo, hi)
  }
};

/// The dot product's term: q_c k_c.
struct DotTerm {
  const double *keys;
  KVRT_INLINE Vec4d operator()(Vec4d qc, uint32_t at) const {
    return qc * cpu::load4d(keys + at);
  }
};

/// Quest's bound of each lane's block, sum_c max(q_c lo_c, q_c hi_c).
KVRT_MULTIVERSION
void boundLanes(const double *lower, const double *upper, uint32_t d,
                const float *prepared, int64_t preparedStride, int64_t group,
                uint32_t lanes, double *perHead, uint64_t stride) {
  sumLanes(d, prepared, preparedStride, group, lanes, perHead, stride,
           BoundTerm{lower, upper});
}

/// q . k of each lane's key.
KVRT_MULTIVERSION
void scoreLanes(const double *keys, uint32_t d, const float *prepared,
                int64_t preparedStride, int64_t group, uint32_t lanes,
                double *perHead, uint64_t stride) {
  sumLanes(d, prepared, preparedStride, group, lanes, perHead, stride,
           DotTerm{keys});
}

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
  // Rows of kItems items' operands (lower bounds, then upper ones), and
  // the same channel-major. Lanes past the last item keep what they held.
  scratch.decoded.assign(2 * kItems * d, 0.0f);
  scratch.columns.resize(2 * kItems * d);
  float *lowerRows = scratch.decoded.data(),
        *upperRows = lowerRows + kItems * d;
  double *lower = scratch.columns.data(), *upper = lower + kItems * d;
  auto pageOf = [&](uint64_t b) -> const Page & {
    return cache.page(layer, pages[b * block / shape.pageSize]);
  };
  auto blockIn = [&](uint64_t b) {
    return uint32_t(b * block % shape.pageSize / block);
  };
  for (uint64_t b0 = 0; b0 < blocks; b0 += kItems) {
    const uint32_t lanes = uint32_t(std::min<uint64_t>(kItems, blocks - b0));
    // Each block's summary sits in a page of its own: the next items' are
    // asked for while these are scored, or each waits on the memory.
    for (uint64_t b = b0 + kItems; b < std::min(blocks, b0 + 2 * kItems); ++b)
      prefetchBounds(cache, layer, pageOf(b), head, blockIn(b));
    for (uint32_t j = 0; j < lanes; ++j)
      decodeBounds(
          blockBounds(cache, layer, pageOf(b0 + j), head, blockIn(b0 + j)),
          lowerRows + j * d, upperRows + j * d);
    toColumns(lowerRows, d, lower);
    toColumns(upperRows, d, upper);
    boundLanes(lower, upper, d, prepared, preparedStride, group, lanes,
               scratch.perHead.data() + b0, blocks);
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
  float *rows = scratch.decoded.data();
  double *columns = scratch.columns.data();
  for (uint64_t i0 = 0; i0 < n; i0 += kItems) {
    const uint32_t lanes = uint32_t(std::min<uint64_t>(kItems, n - i0));
    for (uint32_t j = 0; j < lanes; ++j) {
      const uint64_t index = candidates[i0 + j];
      const Page &page = cache.page(layer, pages[index / shape.pageSize]);
      keys.decode(page.keys.get() + head * shape.keyHeadBytes,
                  uint32_t(index % shape.pageSize), rows + j * d);
    }
    toColumns(rows, d, columns);
    scoreLanes(columns, d, prepared, preparedStride, group, lanes,
               scratch.perHead.data() + i0, n);
  }
  rankAcrossHeads(scratch.perHead, group, n, scratch.rank);
  keepBest(scratch.rank, n, policy.topTokens, scratch.order);
  selected.reserve(scratch.order.size());
  for (uint64_t i : scratch.order)
    selected.push_back(candidates[i]);
  return true;
}

} // namespace kvrt::sparse
