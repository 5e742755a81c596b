//===- BlockSummary.cpp ---------------------------------------------------===//
#include "runtime/src/sparse/BlockSummary.h"

#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"

#include <algorithm>

namespace kvrt::sparse {
namespace {

/// The bf16 value next to finite `b` towards -infinity.
uint16_t stepDown(uint16_t b) {
  if (b == 0x0000)
    return 0x8001; // +0 -> the smallest negative subnormal
  return (b & 0x8000) ? uint16_t(b + 1) : uint16_t(b - 1);
}

/// The bf16 value next to finite `b` towards +infinity.
uint16_t stepUp(uint16_t b) {
  if (b == 0x8000)
    return 0x0001; // -0 -> the smallest positive subnormal
  return (b & 0x8000) ? uint16_t(b - 1) : uint16_t(b + 1);
}

/// Where KV head `head`'s block `block` starts in a page's summaries.
uint64_t boundsOffset(const CacheLayerShape &shape, uint32_t head,
                      uint32_t block) {
  uint64_t perPage = shape.pageSize / shape.summaryBlock;
  return (uint64_t(head) * perPage + block) * 2 * shape.headDim;
}

} // namespace

uint16_t bf16Below(float x) {
  uint16_t b = cpu::floatToBf16(x);
  return cpu::bf16ToFloat(b) > x ? stepDown(b) : b;
}

uint16_t bf16Above(float x) {
  uint16_t b = cpu::floatToBf16(x);
  return cpu::bf16ToFloat(b) < x ? stepUp(b) : b;
}

const uint16_t *blockBounds(const PagedCache &cache, uint32_t layer,
                            const Page &page, uint32_t head, uint32_t block) {
  return page.keyBounds.get() + boundsOffset(cache.shape(layer), head, block);
}

void summarise(PagedCache &cache, uint32_t layer, uint64_t sequence,
               const Codec &keys, uint32_t head, uint64_t first, uint64_t count,
               float *scratch) {
  const CacheLayerShape &shape = cache.shape(layer);
  const uint32_t d = shape.headDim;
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
  for (uint64_t index = first; index < first + count; ++index) {
    Page &page = cache.page(layer, pages[index / shape.pageSize]);
    uint32_t slot = uint32_t(index % shape.pageSize);
    keys.decode(page.keys.get() + head * shape.keyHeadBytes, slot, scratch);
    uint16_t *bounds = page.keyBounds.get() +
                       boundsOffset(shape, head, slot / shape.summaryBlock);
    bool fresh = slot % shape.summaryBlock == 0;
    for (uint32_t c = 0; c < d; ++c) {
      uint16_t lo = bf16Below(scratch[c]), hi = bf16Above(scratch[c]);
      if (fresh || cpu::bf16ToFloat(lo) < cpu::bf16ToFloat(bounds[c]))
        bounds[c] = lo;
      if (fresh || cpu::bf16ToFloat(hi) > cpu::bf16ToFloat(bounds[d + c]))
        bounds[d + c] = hi;
    }
  }
}

} // namespace kvrt::sparse
