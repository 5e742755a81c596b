//===- OffloadBench.cpp - A layer's offload schedule, timed among 30 -----===//
//
// Prints the time LayerOffload::run() takes for a layer of the 8B-shaped
// decode step that docs/offload.md measures on the GPU: 8 rows of 32768
// tokens (pages of 16), 8 KV heads each reading 128 random pages, 35 000
// device pages, every read page resident after the first step (each step
// reads the same pages). As in the engine, a step runs the schedules of 30
// such layers one after another, so each finds its own state out of the
// caches where the others left it. A measurement for docs/offload.md, not a
// test.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/offload/LayerOffload.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

using namespace kvrt;

int main() {
  constexpr uint32_t kRows = 8, kKvHeads = 8, kTopBlocks = 128, kPageSize = 16;
  constexpr uint64_t kLength = 32768, kPages = kLength / kPageSize;
  constexpr uint64_t kDevicePages = 35000;
  constexpr int kWarmSteps = 10, kTimedSteps = 30, kLayers = 30;
  std::vector<offload::LayerOffload> layers;
  for (uint32_t l = 0; l < kLayers; ++l)
    layers.emplace_back(l, kKvHeads, kDevicePages, kTopBlocks);

  // Each row's page table: consecutive pool pages, as a sequence prefilled
  // in one chunk takes them (a shuffled pool costs twice as much here:
  // DevicePages indexes its slots by page).
  std::vector<int32_t> pool(kRows * (kPages + kTimedSteps + kWarmSteps));
  for (size_t i = 0; i < pool.size(); ++i)
    pool[i] = int32_t(i);
  const uint64_t tableLength = pool.size() / kRows;
  std::mt19937 rng(1);
  // Each row and head's read pages: 128 of the pages before the newest.
  std::vector<std::vector<uint64_t>> reads(kRows * kKvHeads);
  std::vector<uint64_t> positions(kPages - 1);
  for (std::vector<uint64_t> &read : reads) {
    for (uint64_t p = 0; p < positions.size(); ++p)
      positions[p] = p;
    std::shuffle(positions.begin(), positions.end(), rng);
    read.assign(positions.begin(), positions.begin() + kTopBlocks);
    std::sort(read.begin(), read.end());
  }

  double seconds = 0;
  for (int step = 0; step < kWarmSteps + kTimedSteps; ++step) {
    offload::LayerCall call;
    call.pageSize = kPageSize;
    for (uint32_t r = 0; r < kRows; ++r)
      call.sequences.push_back({kLength + uint64_t(step), 1, true});
    call.pageKey = [&](size_t s, uint64_t p, uint32_t h) {
      return offload::pageKey(uint32_t(pool[s * tableLength + p]), h, 0);
    };
    call.pagesOf = [&](size_t s, uint32_t h, std::vector<uint64_t> &read,
                       std::vector<uint64_t> &) {
      const std::vector<uint64_t> &pages = reads[s * kKvHeads + h];
      read.insert(read.end(), pages.begin(), pages.end());
    };
    for (offload::LayerOffload &layer : layers) {
      const auto start = std::chrono::steady_clock::now();
      const Status status = layer.run(call);
      const auto end = std::chrono::steady_clock::now();
      if (!status.isOk()) {
        std::fprintf(stderr, "%s\n", status.message().c_str());
        return 1;
      }
      layer.pages().takeChangedSlots();
      if (step >= kWarmSteps)
        seconds += std::chrono::duration<double>(end - start).count();
    }
  }
  const offload::PageCounts &counts = layers.front().counts();
  std::printf("a layer's schedule: %.3f ms a step, the mean of %d layers "
              "(%u rows x %u KV heads x %u pages read; %llu of %llu reads "
              "resident over all steps)\n",
              seconds / kTimedSteps / kLayers * 1e3, kLayers, kRows, kKvHeads,
              kTopBlocks, static_cast<unsigned long long>(counts.hits),
              static_cast<unsigned long long>(counts.read));
  return 0;
}
