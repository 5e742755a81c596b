//===- PagedCache.cpp -----------------------------------------------------===//
#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <string>

namespace kvrt {

PagedCache::PagedCache(std::vector<CacheLayerShape> shapes) {
  for (const CacheLayerShape &s : shapes) {
    Layer layer;
    layer.shape = s;
    layer.pageBytes = uint64_t(s.kvHeads) * s.pageSize *
                          (uint64_t(s.keyBytes) + s.valueBytes) +
                      uint64_t(s.pageSize) * sizeof(int32_t);
    layers_.push_back(std::move(layer));
  }
}

Status PagedCache::addSequence(uint64_t sequence) {
  if (sequences_.count(sequence))
    return Status::error("sequence " + std::to_string(sequence) +
                         " is already in the cache");
  Sequence s;
  s.pages.resize(layers_.size());
  s.length.assign(layers_.size(), 0);
  sequences_.emplace(sequence, std::move(s));
  return Status::ok();
}

void PagedCache::removeSequence(uint64_t sequence) {
  auto it = sequences_.find(sequence);
  if (it == sequences_.end())
    return;
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer &layer = layers_[l];
    for (uint32_t p : it->second.pages[l]) {
      layer.pages[p]->count = 0;
      layer.free.push_back(p);
    }
    layer.inUse -= it->second.pages[l].size();
    bytesInUse_ -= it->second.pages[l].size() * layer.pageBytes;
  }
  sequences_.erase(it);
}

bool PagedCache::contains(uint64_t sequence) const {
  return sequences_.count(sequence) != 0;
}

Status
PagedCache::reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens) {
  std::vector<uint64_t> needed(layers_.size(), 0);
  for (const auto &[id, count] : tokens) {
    const Sequence &s = sequences_.at(id);
    for (size_t l = 0; l < layers_.size(); ++l) {
      uint64_t pageSize = layers_[l].shape.pageSize;
      uint64_t pagesAfter = (s.length[l] + count + pageSize - 1) / pageSize;
      needed[l] +=
          pagesAfter - std::min<uint64_t>(pagesAfter, s.pages[l].size());
    }
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer &layer = layers_[l];
    uint64_t available = layer.shape.capacityPages - layer.inUse;
    if (needed[l] > available)
      return Status::error(
          "KV cache pool exhausted: layer " + std::to_string(l) + " needs " +
          std::to_string(needed[l]) + " more pages of " +
          std::to_string(layer.shape.pageSize) + " tokens but " +
          std::to_string(available) + " of its " +
          std::to_string(layer.shape.capacityPages) +
          " are free; remove finished sequences or raise "
          "EngineOptions::cacheTokens");
  }
  for (const auto &[id, count] : tokens) {
    Sequence &s = sequences_.at(id);
    for (size_t l = 0; l < layers_.size(); ++l) {
      uint64_t pageSize = layers_[l].shape.pageSize;
      uint64_t pagesAfter = (s.length[l] + count + pageSize - 1) / pageSize;
      while (s.pages[l].size() < pagesAfter)
        s.pages[l].push_back(takePage(layers_[l]));
    }
  }
  peakBytes_ = std::max(peakBytes_, bytesInUse_);
  return Status::ok();
}

uint32_t PagedCache::takePage(Layer &layer) {
  ++layer.inUse;
  bytesInUse_ += layer.pageBytes;
  if (!layer.free.empty()) {
    uint32_t p = layer.free.back();
    layer.free.pop_back();
    return p;
  }
  const CacheLayerShape &s = layer.shape;
  auto page = std::make_unique<Page>();
  uint64_t entries = uint64_t(s.kvHeads) * s.pageSize;
  page->keys.reset(new uint8_t[entries * s.keyBytes]);
  page->values.reset(new uint8_t[entries * s.valueBytes]);
  page->positions.reset(new int32_t[s.pageSize]);
  layer.pages.push_back(std::move(page));
  return uint32_t(layer.pages.size() - 1);
}

std::pair<Page *, uint32_t>
PagedCache::append(uint32_t layer, uint64_t sequence, int32_t position) {
  Sequence &s = sequences_.at(sequence);
  uint32_t pageSize = layers_[layer].shape.pageSize;
  uint64_t index = s.length[layer]++;
  Page *page = layers_[layer].pages[s.pages[layer][index / pageSize]].get();
  uint32_t slot = uint32_t(index % pageSize);
  page->positions[slot] = position;
  page->count = slot + 1;
  return {page, slot};
}

const std::vector<uint32_t> &PagedCache::pages(uint32_t layer,
                                               uint64_t sequence) const {
  return sequences_.at(sequence).pages[layer];
}

uint64_t PagedCache::length(uint32_t layer, uint64_t sequence) const {
  return sequences_.at(sequence).length[layer];
}

uint64_t PagedCache::bytesPerToken() const {
  uint64_t bytes = 0;
  for (const Layer &l : layers_)
    bytes +=
        uint64_t(l.shape.kvHeads) * (l.shape.keyBytes + l.shape.valueBytes);
  return bytes;
}

} // namespace kvrt
