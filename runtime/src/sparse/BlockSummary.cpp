//===- BlockSummary.cpp ---------------------------------------------------===//
#include "runtime/src/sparse/BlockSummary.h"

#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/cache/codecs/Minifloat.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace kvrt::sparse {
namespace {

/// Where KV head `head`'s block `block` is among a page's summaries.
uint64_t summaryIndex(const CacheLayerShape &shape, uint32_t head,
                      uint32_t block) {
  return uint64_t(head) * (shape.pageSize / shape.summaryBlock) + block;
}

/// The E4M3 value of each code.
const std::array<float, 256> &codeValues() {
  static const auto values = [] {
    std::array<float, 256> v;
    for (uint32_t c = 0; c < 256; ++c)
      v[c] = float(codecs::decodeMinifloat(c, codecs::kE4M3));
    return v;
  }();
  return values;
}

} // namespace

float boundValue(uint8_t code, int exponent) {
  // Exact: at most 3 significant bits, at least 2^-129 (a float subnormal).
  return codeValues()[code] * powerOfTwo(exponent);
}

void decodeBounds(const BlockBounds &bounds, float *lower, float *upper) {
  const std::array<float, 256> &values = codeValues();
  const float scale = powerOfTwo(bounds.exponent);
  for (uint32_t c = 0; c < bounds.headDim; ++c) {
    lower[c] = values[bounds.codes[c]] * scale;
    upper[c] = values[bounds.codes[bounds.headDim + c]] * scale;
  }
}

BlockBounds blockBounds(const PagedCache &cache, uint32_t layer,
                        const Page &page, uint32_t head, uint32_t block) {
  const CacheLayerShape &shape = cache.shape(layer);
  const uint64_t index = summaryIndex(shape, head, block);
  return {page.keyBounds.get() + index * 2 * shape.headDim, shape.headDim,
          page.boundExponents[index]};
}

void prefetchBounds(const PagedCache &cache, uint32_t layer, const Page &page,
                    uint32_t head, uint32_t block) {
  const CacheLayerShape &shape = cache.shape(layer);
  const uint64_t index = summaryIndex(shape, head, block);
  const uint8_t *codes = page.keyBounds.get() + index * 2 * shape.headDim;
  // Every cache line of the 2 * headDim codes, wherever they start.
  for (uint32_t at = 0; at < 2 * shape.headDim; at += 64)
    __builtin_prefetch(codes + at);
  __builtin_prefetch(codes + 2 * shape.headDim - 1);
  __builtin_prefetch(page.boundExponents.get() + index);
}

void storeBounds(const float *lower, const float *upper, uint32_t headDim,
                 uint8_t *codes, int8_t *exponent) {
  float largest = 0;
  for (uint32_t c = 0; c < headDim; ++c)
    largest = std::max({largest, std::fabs(lower[c]), std::fabs(upper[c])});
  const int e = boundExponent(largest);
  for (uint32_t c = 0; c < headDim; ++c) {
    codes[c] = boundCode(lower[c], e, false);
    codes[headDim + c] = boundCode(upper[c], e, true);
  }
  *exponent = int8_t(e);
}

void summarise(PagedCache &cache, uint32_t layer, uint64_t sequence,
               const Codec &keys, uint32_t head, uint64_t first, uint64_t count,
               float *scratch) {
  const CacheLayerShape &shape = cache.shape(layer);
  const uint32_t d = shape.headDim, block = shape.summaryBlock;
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
  float *decoded = scratch, *lower = scratch + d, *upper = scratch + 2 * d;
  const uint64_t end = first + count;
  for (uint64_t start = first / block * block; start < end; start += block) {
    Page &page = cache.page(layer, pages[start / shape.pageSize]);
    const uint32_t firstSlot = uint32_t(start % shape.pageSize);
    const uint64_t stop = std::min(end, start + block);
    std::fill(lower, lower + d, INFINITY);
    std::fill(upper, upper + d, -INFINITY);
    for (uint32_t slot = firstSlot; slot < firstSlot + (stop - start); ++slot) {
      keys.decode(page.keys.get() + head * shape.keyHeadBytes, slot, decoded);
      for (uint32_t c = 0; c < d; ++c) {
        lower[c] = std::min(lower[c], decoded[c]);
        upper[c] = std::max(upper[c], decoded[c]);
      }
    }
    const uint64_t index = summaryIndex(shape, head, firstSlot / block);
    storeBounds(lower, upper, d, page.keyBounds.get() + index * 2 * d,
                page.boundExponents.get() + index);
  }
}

} // namespace kvrt::sparse
