//===- Compact.cpp - In-place forward compaction of one sequence ----------===//
#include "runtime/src/evict/Compact.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"

#include <cstring>
#include <string>

namespace kvrt::evict {
namespace {

/// Where slot entries start in an area of `codec` and how many bytes each
/// takes, or one sentence on why entries cannot be moved one by one.
struct EntryLayout {
  uint64_t offset = 0, bytes = 0;
};
StatusOr<EntryLayout> entryLayout(const Codec &codec, uint32_t pageSize,
                                  const char *side) {
  if (codec.groupTokens() != 1)
    return Status::error(
        std::string("cannot compact the cache per token: its ") + side +
        " are encoded " + std::to_string(codec.groupTokens()) +
        " tokens at a time (KIVI), so one token cannot leave its group; "
        "evict before they are quantized or use a per-token encoding");
  uint64_t shared = codec.sharedBytes();
  uint64_t bytes = codec.headBytes(pageSize) - shared;
  if (bytes % pageSize != 0)
    return Status::error(std::string("cannot compact the cache per token: "
                                     "the area of its ") +
                         side + " (" + std::to_string(bytes) + " bytes for " +
                         std::to_string(pageSize) +
                         " tokens) is not one fixed-size entry per token");
  return EntryLayout{shared, bytes / pageSize};
}

void moveEntry(uint8_t *toArea, const uint8_t *fromArea, const EntryLayout &e,
               uint32_t toSlot, uint32_t fromSlot) {
  std::memcpy(toArea + e.offset + toSlot * e.bytes,
              fromArea + e.offset + fromSlot * e.bytes, e.bytes);
}

} // namespace

std::vector<EntryMove> compactionPlan(const std::vector<uint64_t> &kept) {
  std::vector<EntryMove> moves;
  for (uint64_t i = 0; i < kept.size(); ++i)
    if (kept[i] != i)
      moves.push_back({kept[i], i});
  return moves;
}

Status compactSequence(PagedCache &cache, uint32_t layer, uint64_t sequence,
                       const Codec &keys, const Codec &values,
                       const std::vector<std::vector<uint64_t>> &kept) {
  const CacheLayerShape &shape = cache.shape(layer);
  StatusOr<EntryLayout> key = entryLayout(keys, shape.pageSize, "keys");
  if (!key.isOk())
    return key.status();
  StatusOr<EntryLayout> value = entryLayout(values, shape.pageSize, "values");
  if (!value.isOk())
    return value.status();
  if (kept.size() != 1 && kept.size() != shape.kvHeads)
    return Status::error("compaction needs one list of kept entries or one "
                         "per KV head (" +
                         std::to_string(shape.kvHeads) + "), not " +
                         std::to_string(kept.size()));
  if (kept.size() > 1 && !shape.headPositions)
    return Status::error("the layer's pages record one position per token "
                         "for all KV heads, so its heads cannot keep "
                         "different entries");
  const uint64_t encoded = cache.encoded(layer, sequence);
  const uint64_t count = kept[0].size();
  for (const std::vector<uint64_t> &list : kept) {
    if (list.size() != count)
      return Status::error("every KV head must keep as many entries (" +
                           std::to_string(count) + " and " +
                           std::to_string(list.size()) + ")");
    for (uint64_t i = 0; i < list.size(); ++i)
      if (list[i] >= encoded || (i && list[i] <= list[i - 1]))
        return Status::error("kept entries must be strictly ascending "
                             "indices below the " +
                             std::to_string(encoded) + " encoded ones");
  }
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
  auto at = [&](uint64_t index) -> std::pair<Page *, uint32_t> {
    return {&cache.page(layer, pages[index / shape.pageSize]),
            uint32_t(index % shape.pageSize)};
  };
  // Head h's entries move by its own plan; its positions too when it has
  // its own, else the one list's plan moves the shared positions.
  for (uint32_t h = 0; h < shape.kvHeads; ++h) {
    const std::vector<uint64_t> &list = kept[kept.size() == 1 ? 0 : h];
    const bool positions = h < shape.positionHeads();
    const uint64_t offset = shape.positionOffset(h);
    for (const EntryMove &m : compactionPlan(list)) {
      auto [from, fromSlot] = at(m.from);
      auto [to, toSlot] = at(m.to);
      if (positions)
        to->positions[offset + toSlot] = from->positions[offset + fromSlot];
      moveEntry(to->keys.get() + h * shape.keyHeadBytes,
                from->keys.get() + h * shape.keyHeadBytes, *key, toSlot,
                fromSlot);
      moveEntry(to->values.get() + h * shape.valueHeadBytes,
                from->values.get() + h * shape.valueHeadBytes, *value, toSlot,
                fromSlot);
    }
  }
  // The tail's data stays where it is; only its positions move, alike in
  // every head.
  uint64_t tailTokens = cache.tail(layer, sequence).tokens();
  for (uint32_t h = 0; h < shape.positionHeads() && count != encoded; ++h)
    for (uint64_t j = 0; j < tailTokens; ++j) {
      auto [from, fromSlot] = at(encoded + j);
      auto [to, toSlot] = at(count + j);
      to->positions[shape.positionOffset(h) + toSlot] =
          from->positions[shape.positionOffset(h) + fromSlot];
    }
  cache.shrink(layer, sequence, count);
  return Status::ok();
}

Status compactSequence(PagedCache &cache, uint32_t layer, uint64_t sequence,
                       const Codec &keys, const Codec &values,
                       const std::vector<uint64_t> &kept) {
  return compactSequence(cache, layer, sequence, keys, values,
                         std::vector<std::vector<uint64_t>>{kept});
}

} // namespace kvrt::evict
