//===- PagedCache.cpp -----------------------------------------------------===//
#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <cstdint>
#include <string>

namespace kvrt {

PagedCache::PagedCache(std::vector<CacheLayerShape> shapes) {
  for (const CacheLayerShape &s : shapes) {
    Layer layer;
    layer.shape = s;
    layer.pageBytes =
        uint64_t(s.kvHeads) * (s.keyHeadBytes + s.valueHeadBytes) +
        uint64_t(s.positionHeads()) * s.pageSize * sizeof(int32_t) +
        s.summaryBytes();
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
  s.encoded.assign(layers_.size(), 0);
  s.tails.resize(layers_.size());
  s.sinks.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    const CacheLayerShape &shape = layers_[l].shape;
    for (Tail *t : {&s.tails[l], &s.sinks[l]}) {
      t->headDim = shape.headDim;
      t->keys.resize(shape.kvHeads);
      t->values.resize(shape.kvHeads);
    }
  }
  sequences_.emplace(sequence, std::move(s));
  return Status::ok();
}

void PagedCache::removeSequence(uint64_t sequence) {
  auto it = sequences_.find(sequence);
  if (it == sequences_.end())
    return;
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer &layer = layers_[l];
    for (uint32_t p : it->second.pages[l])
      releasePage(layer, p);
    track(-int64_t(tailBytes(layer, it->second.tails[l].tokens())));
    track(-int64_t(exactBytes(layer.shape, it->second.sinks[l].tokens())));
  }
  sequences_.erase(it);
}

uint64_t PagedCache::shareableTokens(uint64_t from, uint64_t tokens) const {
  const Sequence &s = sequences_.at(from);
  // Whole pages of encoded entries in every layer; layers' page sizes may
  // differ, so round down until every layer's divides the count.
  uint64_t shared = tokens;
  for (bool changed = true; changed && shared > 0;) {
    changed = false;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const uint64_t pageSize = layers_[l].shape.pageSize;
      const uint64_t whole =
          std::min(shared, s.encoded[l]) / pageSize * pageSize;
      changed = changed || whole != shared;
      shared = whole;
    }
  }
  return shared;
}

Status PagedCache::share(uint64_t from, uint64_t sequence, uint64_t tokens) {
  if (shareableTokens(from, tokens) != tokens)
    return Status::error("cannot share " + std::to_string(tokens) +
                         " tokens of sequence " + std::to_string(from) +
                         ": they do not fill whole pages of encoded entries");
  KVRT_RETURN_IF_ERROR(addSequence(sequence));
  const Sequence &source = sequences_.at(from);
  Sequence &s = sequences_.at(sequence);
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer &layer = layers_[l];
    const uint64_t pages = tokens / layer.shape.pageSize;
    s.pages[l].assign(source.pages[l].begin(), source.pages[l].begin() + pages);
    for (uint32_t p : s.pages[l])
      ++layer.holders[p];
    s.length[l] = s.encoded[l] = tokens;
    const Tail &sinks = source.sinks[l];
    const size_t exact = std::min<size_t>(sinks.tokens(), tokens);
    for (size_t h = 0; h < sinks.keys.size(); ++h) {
      const size_t width = exact * sinks.headDim;
      s.sinks[l].keys[h].assign(sinks.keys[h].begin(),
                                sinks.keys[h].begin() + width);
      s.sinks[l].values[h].assign(sinks.values[h].begin(),
                                  sinks.values[h].begin() + width);
    }
    track(int64_t(exactBytes(layer.shape, exact)));
  }
  return Status::ok();
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
      return Status::cacheFull(
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
  return Status::ok();
}

uint32_t PagedCache::takePage(Layer &layer) {
  ++layer.inUse;
  track(int64_t(layer.pageBytes));
  if (!layer.free.empty()) {
    uint32_t p = layer.free.back();
    layer.free.pop_back();
    ++layer.pages[p]->generation;
    layer.holders[p] = 1;
    return p;
  }
  const CacheLayerShape &s = layer.shape;
  auto page = std::make_unique<Page>();
  page->keys.reset(new uint8_t[s.kvHeads * s.keyHeadBytes]);
  page->values.reset(new uint8_t[s.kvHeads * s.valueHeadBytes]);
  page->positions.reset(new int32_t[uint64_t(s.positionHeads()) * s.pageSize]);
  if (s.summaryBlock) {
    page->keyBounds.reset(new uint8_t[s.summariesPerPage() * 2 * s.headDim]);
    page->boundExponents.reset(new int8_t[s.summariesPerPage()]);
  }
  layer.pages.push_back(std::move(page));
  layer.holders.push_back(1);
  return uint32_t(layer.pages.size() - 1);
}

void PagedCache::releasePage(Layer &layer, uint32_t p) {
  if (--layer.holders[p] > 0)
    return;
  layer.pages[p]->count = 0;
  layer.free.push_back(p);
  --layer.inUse;
  track(-int64_t(layer.pageBytes));
}

void PagedCache::append(uint32_t layer, uint64_t sequence, int32_t position,
                        const float *keys, const float *values) {
  Sequence &s = sequences_.at(sequence);
  const Layer &l = layers_[layer];
  uint32_t pageSize = l.shape.pageSize;
  uint64_t index = s.length[layer]++;
  Page &page = *l.pages[s.pages[layer][index / pageSize]];
  uint32_t slot = uint32_t(index % pageSize);
  for (uint32_t h = 0; h < l.shape.positionHeads(); ++h)
    page.positions[l.shape.positionOffset(h) + slot] = position;
  page.count = slot + 1;
  Tail &tail = s.tails[layer];
  tail.push(keys, values);
  track(int64_t(tailBytes(l, tail.tokens())) -
        int64_t(tailBytes(l, tail.tokens() - 1)));
  if (index < l.shape.sinkTokens) {
    s.sinks[layer].push(keys, values);
    track(int64_t(exactBytes(l.shape, 1)));
  }
}

void Tail::push(const float *keys, const float *values) {
  for (size_t h = 0; h < this->keys.size(); ++h) {
    size_t offset = h * headDim;
    this->keys[h].insert(this->keys[h].end(), keys + offset,
                         keys + offset + headDim);
    this->values[h].insert(this->values[h].end(), values + offset,
                           values + offset + headDim);
  }
}

uint64_t PagedCache::flushable(uint32_t layer, uint64_t sequence) const {
  const CacheLayerShape &shape = layers_[layer].shape;
  uint64_t inTail = sequences_.at(sequence).tails[layer].tokens();
  if (inTail <= shape.tailWindow)
    return 0;
  uint64_t beyond = inTail - shape.tailWindow;
  return beyond / shape.flushGroup * shape.flushGroup;
}

const std::vector<uint32_t> &PagedCache::pages(uint32_t layer,
                                               uint64_t sequence) const {
  return sequences_.at(sequence).pages[layer];
}

uint64_t PagedCache::length(uint32_t layer, uint64_t sequence) const {
  return sequences_.at(sequence).length[layer];
}

uint64_t PagedCache::encoded(uint32_t layer, uint64_t sequence) const {
  return sequences_.at(sequence).encoded[layer];
}

const Tail &PagedCache::tail(uint32_t layer, uint64_t sequence) const {
  return sequences_.at(sequence).tails[layer];
}

const Tail &PagedCache::sinks(uint32_t layer, uint64_t sequence) const {
  return sequences_.at(sequence).sinks[layer];
}

int32_t PagedCache::position(uint32_t layer, uint64_t sequence, uint64_t index,
                             uint32_t head) const {
  const Layer &l = layers_[layer];
  uint32_t page =
      sequences_.at(sequence).pages[layer][index / l.shape.pageSize];
  return l.pages[page]
      ->positions[l.shape.positionOffset(head) + index % l.shape.pageSize];
}

void PagedCache::shrink(uint32_t layer, uint64_t sequence, uint64_t encoded) {
  Sequence &s = sequences_.at(sequence);
  Layer &l = layers_[layer];
  uint64_t pageSize = l.shape.pageSize;
  std::vector<uint32_t> &pages = s.pages[layer];
  uint64_t room = pages.size() * pageSize - s.length[layer];
  uint64_t length = encoded + s.tails[layer].tokens();
  s.encoded[layer] = encoded;
  s.length[layer] = length;
  size_t keep = size_t((length + room + pageSize - 1) / pageSize);
  while (pages.size() > keep) {
    releasePage(l, pages.back());
    pages.pop_back();
  }
  for (size_t p = 0; p < pages.size(); ++p)
    l.pages[pages[p]]->count = uint32_t(
        std::min<uint64_t>(pageSize, length - std::min(length, p * pageSize)));
}

double PagedCache::bytesPerToken() const {
  double bytes = 0;
  for (const Layer &l : layers_)
    bytes += double(l.shape.kvHeads) *
                 double(l.shape.keyHeadBytes + l.shape.valueHeadBytes) /
                 l.shape.pageSize +
             double(l.shape.summaryBytes()) / l.shape.pageSize;
  return bytes;
}

uint64_t PagedCache::capacityTokens() const {
  uint64_t tokens = UINT64_MAX;
  for (const Layer &l : layers_)
    tokens = std::min(tokens, l.shape.capacityPages * l.shape.pageSize);
  return layers_.empty() ? 0 : tokens;
}

uint64_t PagedCache::tailBytes(const Layer &layer, uint64_t tokens) const {
  return layer.shape.tailWindow ? exactBytes(layer.shape, tokens) : 0;
}

uint64_t PagedCache::exactBytes(const CacheLayerShape &shape, uint64_t tokens) {
  return tokens * shape.kvHeads * shape.headDim * 2 * 2;
}

void PagedCache::track(int64_t delta) {
  bytesInUse_ = uint64_t(int64_t(bytesInUse_) + delta);
  peakBytes_ = std::max(peakBytes_, bytesInUse_);
}

} // namespace kvrt
