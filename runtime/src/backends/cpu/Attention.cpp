//===- Attention.cpp - Appending to and attending over the paged cache ----===//
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace kvrt::cpu {
namespace {

void store(CacheElement element, const float *src, int64_t n, uint8_t *dst) {
  if (element == CacheElement::F32) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
    return;
  }
  uint16_t *d = reinterpret_cast<uint16_t *>(dst);
  for (int64_t i = 0; i < n; ++i)
    d[i] = floatToBf16(src[i]);
}

/// The entry at `src` as floats: itself when stored as f32, else decoded
/// into `buffer`.
const float *load(CacheElement element, const uint8_t *src, int64_t n,
                  float *buffer) {
  if (element == CacheElement::F32)
    return reinterpret_cast<const float *>(src);
  const uint16_t *s = reinterpret_cast<const uint16_t *>(src);
  for (int64_t i = 0; i < n; ++i)
    buffer[i] = bf16ToFloat(s[i]);
  return buffer;
}

/// A dot product in eight lanes reduced in a fixed order.
inline float dot(const float *a, const float *b, int64_t n) {
  Vec8 acc = {};
  int64_t full = n / kLanes * kLanes;
  for (int64_t i = 0; i < full; i += kLanes)
    acc += load8(a + i) * load8(b + i);
  for (int64_t j = 0; full + j < n; ++j)
    acc[j] += a[full + j] * b[full + j];
  return reduce8(acc);
}

/// Buffers one thread needs for attendGroup().
struct Scratch {
  /// One weight per query head of the group and cached entry.
  float *weights;
  float *key;
  float *value;
  /// One softmax normaliser per query head of the group.
  float *inverse;
};

/// The `group` query heads at `q` (one row, at `position`) that share KV
/// head `g`, over its visible entries in `pages`: each key and value is
/// decoded once for the whole group. Scores are kept in sequence order
/// whatever the page size; the softmax subtracts their maximum.
KVRT_MULTIVERSION
void attendGroup(const PagedCache &cache, const AttentionParams &params,
                 const std::vector<uint32_t> &pages, uint32_t g,
                 int64_t position, const float *q, int64_t group,
                 int64_t headDim, int64_t stride, Scratch scratch, float *out) {
  const CacheLayerShape &shape = cache.shape(params.layer);
  auto visible = [&](int32_t stored) {
    return stored <= position &&
           (!params.slidingWindow || position - stored < params.slidingWindow);
  };
  // weights[h * stride + i]: head h, i-th visible entry.
  int64_t n = 0;
  for (uint32_t p : pages) {
    const Page &page = cache.page(params.layer, p);
    for (uint32_t slot = 0; slot < page.count; ++slot) {
      if (!visible(page.positions[slot]))
        continue;
      uint64_t entry = uint64_t(g) * shape.pageSize + slot;
      const float *k =
          load(params.keyElement, page.keys.get() + entry * shape.keyBytes,
               headDim, scratch.key);
      for (int64_t h = 0; h < group; ++h)
        scratch.weights[h * stride + n] =
            dot(q + h * headDim, k, headDim) * params.scale;
      ++n;
    }
  }
  for (int64_t h = 0; h < group; ++h) {
    float *w = scratch.weights + h * stride;
    float maxScore = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i)
      maxScore = std::max(maxScore, w[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      w[i] = std::exp(w[i] - maxScore);
      sum += w[i];
    }
    scratch.inverse[h] = float(1.0 / sum);
  }
  std::fill(out, out + group * headDim, 0.0f);
  int64_t i = 0;
  for (uint32_t p : pages) {
    const Page &page = cache.page(params.layer, p);
    for (uint32_t slot = 0; slot < page.count; ++slot) {
      if (!visible(page.positions[slot]))
        continue;
      uint64_t entry = uint64_t(g) * shape.pageSize + slot;
      const float *v = load(params.valueElement,
                            page.values.get() + entry * shape.valueBytes,
                            headDim, scratch.value);
      for (int64_t h = 0; h < group; ++h) {
        float w = scratch.weights[h * stride + i];
        float *oh = out + h * headDim;
        for (int64_t d = 0; d < headDim; ++d)
          oh[d] += w * v[d];
      }
      ++i;
    }
  }
  for (int64_t h = 0; n && h < group; ++h)
    for (int64_t d = 0; d < headDim; ++d)
      out[h * headDim + d] *= scratch.inverse[h];
}

} // namespace

void append(PagedCache &cache, uint32_t layer, CacheElement keyElement,
            CacheElement valueElement, const float *keys, const float *values,
            int64_t rows, int64_t headDim, const uint64_t *sequences,
            const int32_t *positions) {
  const CacheLayerShape &shape = cache.shape(layer);
  for (int64_t r = 0; r < rows; ++r) {
    auto [page, slot] = cache.append(layer, sequences[r], positions[r]);
    for (uint32_t h = 0; h < shape.kvHeads; ++h) {
      uint64_t entry = uint64_t(h) * shape.pageSize + slot;
      int64_t offset = (r * shape.kvHeads + h) * headDim;
      store(keyElement, keys + offset, headDim,
            page->keys.get() + entry * shape.keyBytes);
      store(valueElement, values + offset, headDim,
            page->values.get() + entry * shape.valueBytes);
    }
  }
}

void attention(ThreadPool &pool, const PagedCache &cache,
               const AttentionParams &params, const float *q, int64_t rows,
               int64_t qHeads, int64_t headDim, const uint64_t *sequences,
               const int32_t *positions, float *out,
               std::vector<std::vector<float>> &scratch) {
  const CacheLayerShape &shape = cache.shape(params.layer);
  int64_t kvHeads = shape.kvHeads, group = qHeads / kvHeads;
  uint64_t longest = 0;
  for (int64_t r = 0; r < rows; ++r)
    longest = std::max(longest, cache.length(params.layer, sequences[r]));
  // Per thread: one weight per query head of a group and cached entry, a
  // decoded key and value, and the group's normalisers.
  int64_t stride = int64_t(longest);
  scratch.resize(pool.size());
  for (std::vector<float> &s : scratch)
    s.resize(size_t(group * stride + 2 * headDim + group));
  int64_t work = group * stride * headDim;
  int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, work));

  pool.parallelFor(
      rows * kvHeads, grain, [&](int64_t begin, int64_t end, unsigned thread) {
        Scratch buffers;
        buffers.weights = scratch[thread].data();
        buffers.key = buffers.weights + group * stride;
        buffers.value = buffers.key + headDim;
        buffers.inverse = buffers.value + headDim;
        for (int64_t task = begin; task < end; ++task) {
          int64_t r = task / kvHeads, g = task % kvHeads;
          int64_t offset = (r * qHeads + g * group) * headDim;
          attendGroup(cache, params, cache.pages(params.layer, sequences[r]),
                      uint32_t(g), positions[r], q + offset, group, headDim,
                      stride, buffers, out + offset);
        }
      });
}

} // namespace kvrt::cpu
