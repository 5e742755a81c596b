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
                       const std::vector<uint64_t> &kept) {
  const CacheLayerShape &shape = cache.shape(layer);
  StatusOr<EntryLayout> key = entryLayout(keys, shape.pageSize, "keys");
  if (!key.isOk())
    return key.status();
  StatusOr<EntryLayout> value = entryLayout(values, shape.pageSize, "values");
  if (!value.isOk())
    return value.status();
  uint64_t encoded = cache.encoded(layer, sequence);
  for (uint64_t i = 0; i < kept.size(); ++i)
    if (kept[i] >= encoded || (i && kept[i] <= kept[i - 1]))
      return Status::error("kept entries must be strictly ascending indices "
                           "below the " +
                           std::to_string(encoded) + " encoded ones");
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
  auto at = [&](uint64_t index) -> std::pair<Page *, uint32_t> {
    return {&cache.page(layer, pages[index / shape.pageSize]),
            uint32_t(index % shape.pageSize)};
  };
  for (const EntryMove &m : compactionPlan(kept)) {
    auto [from, fromSlot] = at(m.from);
    auto [to, toSlot] = at(m.to);
    to->positions[toSlot] = from->positions[fromSlot];
    for (uint32_t h = 0; h < shape.kvHeads; ++h) {
      moveEntry(to->keys.get() + h * shape.keyHeadBytes,
                from->keys.get() + h * shape.keyHeadBytes, *key, toSlot,
                fromSlot);
      moveEntry(to->values.get() + h * shape.valueHeadBytes,
                from->values.get() + h * shape.valueHeadBytes, *value, toSlot,
                fromSlot);
    }
  }
  // The tail's data stays where it is; only its positions move.
  uint64_t tailTokens = cache.tail(layer, sequence).tokens();
  for (uint64_t j = 0; j < tailTokens && kept.size() != encoded; ++j) {
    auto [from, fromSlot] = at(encoded + j);
    auto [to, toSlot] = at(kept.size() + j);
    to->positions[toSlot] = from->positions[fromSlot];
  }
  cache.shrink(layer, sequence, kept.size());
  return Status::ok();
}

} // namespace kvrt::evict
