//===- LayerOffload.cpp ---------------------------------------------------===//
#include "runtime/src/offload/LayerOffload.h"

#include <algorithm>
#include <string>

namespace kvrt::offload {

Status LayerOffload::admit(uint64_t decodeRows) const {
  uint64_t most = decodeRows * topBlocks_ * kvHeads_;
  if (most <= pages_.slots())
    return Status::ok();
  return Status::cacheFull(
      "layer " + std::to_string(layer_) + " is offloaded with room for " +
      std::to_string(pages_.slots()) + " KV-head pages on the device, but " +
      std::to_string(decodeRows) + " decode " +
      (decodeRows == 1 ? "row" : "rows") + " may read " + std::to_string(most) +
      " at once (top_blocks " + std::to_string(topBlocks_) + " for each of " +
      std::to_string(kvHeads_) +
      " KV heads); raise the offload budget or decode fewer sequences at a "
      "time");
}

Status LayerOffload::run(const LayerCall &call) {
  pages_.beginStep();
  std::vector<uint64_t> read, predicted, readPositions, predictedPositions;
  for (size_t s = 0; s < call.sequences.size(); ++s) {
    const LayerCall::Sequence &sequence = call.sequences[s];
    // This call's tokens were written by their appends: resident, and no
    // fetch decision.
    const uint64_t firstToken = sequence.length - sequence.rows;
    const uint64_t firstNew = firstToken / call.pageSize;
    for (uint64_t p = firstNew; p * call.pageSize < sequence.length; ++p)
      for (uint32_t h = 0; h < kvHeads_; ++h)
        pages_.written(call.pageKey(s, p, h),
                       p == firstNew && firstToken % call.pageSize != 0);
    if (sequence.selected) {
      for (uint32_t h = 0; h < kvHeads_; ++h) {
        readPositions.clear();
        predictedPositions.clear();
        call.pagesOf(s, h, readPositions, predictedPositions);
        for (uint64_t p : readPositions)
          if (p < firstNew)
            read.push_back(call.pageKey(s, p, h));
        for (uint64_t p : predictedPositions)
          predicted.push_back(call.pageKey(s, p, h));
      }
      continue;
    }
    // A prefill, or a sequence short enough to attend densely: its earlier
    // pages pass through the device once.
    std::vector<uint64_t> earlier;
    for (uint64_t p = 0; p < firstNew; ++p)
      for (uint32_t h = 0; h < kvHeads_; ++h)
        earlier.push_back(call.pageKey(s, p, h));
    pages_.stream(earlier);
  }
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

void addCounts(const PageCounts &counts, uint64_t pageBytes,
               EngineStats::Offload &stats) {
  stats.pagesRead += counts.read;
  stats.hits += counts.hits;
  stats.misses += counts.misses;
  stats.prefetchHits += counts.prefetchHits;
  stats.prefetched += counts.prefetched;
  stats.streamed += counts.streamed;
  stats.bytesIn +=
      (counts.misses + counts.prefetched + counts.streamed + counts.refilled) *
      pageBytes;
}

} // namespace kvrt::offload
