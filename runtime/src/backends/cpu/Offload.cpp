//===- Offload.cpp --------------------------------------------------------===//
#include "runtime/src/backends/cpu/Offload.h"

#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace kvrt::cpu {

LayerOffload::LayerOffload(uint32_t layer, uint32_t kvHeads,
                           uint64_t devicePages, uint32_t runnersUp,
                           sparse::SelectPolicy select)
    : layer_(layer), kvHeads_(kvHeads), select_(select), pages_(devicePages) {
  record_.runnersUp = runnersUp;
}

Status LayerOffload::admit(uint64_t decodeRows) const {
  uint64_t most = decodeRows * select_.topBlocks * kvHeads_;
  if (most <= pages_.slots())
    return Status::ok();
  return Status::error(
      "layer " + std::to_string(layer_) + " is offloaded with room for " +
      std::to_string(pages_.slots()) + " KV-head pages on the device, but " +
      std::to_string(decodeRows) + " decode " +
      (decodeRows == 1 ? "row" : "rows") + " may read " + std::to_string(most) +
      " at once (top_blocks " + std::to_string(select_.topBlocks) +
      " for each of " + std::to_string(kvHeads_) +
      " KV heads); raise the offload budget or decode fewer sequences at a "
      "time");
}

Status LayerOffload::run(const PagedCache &cache, const uint64_t *sequences,
                         int64_t rows) {
  const CacheLayerShape &shape = cache.shape(layer_);
  const int64_t kvHeads = shape.kvHeads;
  pages_.beginStep();
  auto key = [&](uint32_t index, int64_t head) {
    return offload::pageKey(index, uint32_t(head),
                            cache.page(layer_, index).generation);
  };
  std::unordered_map<uint64_t, int64_t> rowsOf;
  for (int64_t r = 0; r < rows; ++r)
    ++rowsOf[sequences[r]];
  std::vector<uint64_t> read, predicted;
  std::unordered_set<uint64_t> done;
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t sequence = sequences[r];
    if (!done.insert(sequence).second)
      continue;
    const std::vector<uint32_t> &table = cache.pages(layer_, sequence);
    // This call's tokens were written on the device by their appends: no
    // copy, and no fetch decision.
    uint64_t length = cache.length(layer_, sequence);
    uint64_t firstNew = (length - uint64_t(rowsOf[sequence])) / shape.pageSize;
    std::unordered_set<uint64_t> written;
    for (uint64_t p = firstNew; p * shape.pageSize < length; ++p)
      for (int64_t g = 0; g < kvHeads; ++g) {
        written.insert(key(table[p], g));
        pages_.written(key(table[p], g));
      }
    bool selected = false;
    for (int64_t g = 0; g < kvHeads; ++g) {
      const SelectionRecord::Row &row = record_.rows[size_t(r * kvHeads + g)];
      if (!row.selected)
        continue;
      selected = true;
      for (uint64_t entry : row.entries)
        if (uint64_t part = key(table[entry / shape.pageSize], g);
            !written.count(part))
          read.push_back(part);
      for (uint64_t b : row.runnerUpBlocks)
        predicted.push_back(key(table[b * select_.block / shape.pageSize], g));
    }
    if (selected)
      continue;
    // A prefill, or a sequence short enough to attend densely: its earlier
    // pages pass through the device once.
    std::vector<uint64_t> earlier;
    for (uint64_t p = 0; p < firstNew; ++p)
      for (int64_t g = 0; g < kvHeads; ++g)
        earlier.push_back(key(table[p], g));
    pages_.stream(earlier);
  }
  std::sort(read.begin(), read.end());
  read.erase(std::unique(read.begin(), read.end()), read.end());
  Status acquired = pages_.acquire(read);
  if (!acquired.isOk())
    return Status::error("layer " + std::to_string(layer_) + ": " +
                         acquired.message());
  std::sort(predicted.begin(), predicted.end());
  predicted.erase(std::unique(predicted.begin(), predicted.end()),
                  predicted.end());
  pages_.prefetch(predicted);
  return Status::ok();
}

} // namespace kvrt::cpu
