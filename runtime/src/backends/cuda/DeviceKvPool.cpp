//===- DeviceKvPool.cpp - The paged cache in device memory ----------------===//
#include "runtime/src/backends/cuda/DeviceKvPool.h"

#include <algorithm>
#include <string>

namespace kvrt::cuda {

StatusOr<std::unique_ptr<DeviceKvPool>>
DeviceKvPool::create(std::vector<DeviceLayerSpec> specs, uint32_t pageSize,
                     uint32_t capacityPages) {
  std::unique_ptr<DeviceKvPool> pool(new DeviceKvPool());
  pool->pageSize_ = pageSize;
  auto allocate = [](DeviceBuffer &buffer, size_t bytes) -> Status {
    StatusOr<DeviceBuffer> made = DeviceBuffer::allocate(bytes);
    if (!made)
      return Status::error("the device KV cache: " + made.status().message());
    buffer = std::move(*made);
    return Status::ok();
  };
  for (DeviceLayerSpec &spec : specs) {
    Layer layer;
    const uint64_t keyPage = spec.key.areaStride * spec.kvHeads;
    const uint64_t valuePage = spec.value.areaStride * spec.kvHeads;
    KVRT_RETURN_IF_ERROR(allocate(layer.keys, keyPage * capacityPages));
    KVRT_RETURN_IF_ERROR(allocate(layer.values, valuePage * capacityPages));
    for (auto [scales, buffer] :
         {std::make_pair(&spec.keyScales, &layer.keyScales),
          std::make_pair(&spec.valueScales, &layer.valueScales)}) {
      if (scales->empty())
        continue;
      KVRT_RETURN_IF_ERROR(allocate(*buffer, scales->size() * sizeof(float)));
      KVRT_RETURN_IF_ERROR(
          buffer->upload(scales->data(), scales->size() * sizeof(float)));
    }
    pool->pageBytes_ += keyPage + valuePage;
    layer.spec = std::move(spec);
    pool->layers_.push_back(std::move(layer));
  }
  KVRT_RETURN_IF_ERROR(allocate(
      pool->positions_, uint64_t(capacityPages) * pageSize * sizeof(int32_t)));
  pool->free_.resize(capacityPages);
  // Lowest pages first.
  for (uint32_t i = 0; i < capacityPages; ++i)
    pool->free_[i] = int32_t(capacityPages - 1 - i);
  return pool;
}

Status DeviceKvPool::addSequence(uint64_t sequence) {
  if (!sequences_.emplace(sequence, Sequence()).second)
    return Status::error("sequence " + std::to_string(sequence) +
                         " is already in the device cache");
  return Status::ok();
}

void DeviceKvPool::removeSequence(uint64_t sequence) {
  auto found = sequences_.find(sequence);
  if (found == sequences_.end())
    return;
  Sequence &s = found->second;
  s.length = 0;
  trim(s);
  sequences_.erase(found);
}

Status DeviceKvPool::reserve(
    const std::vector<std::pair<uint64_t, uint64_t>> &tokens) {
  uint64_t needed = 0;
  for (const auto &[sequence, more] : tokens) {
    const Sequence &s = sequences_.at(sequence);
    uint64_t pages = (s.length + more + pageSize_ - 1) / pageSize_;
    needed += pages > s.pages.size() ? pages - s.pages.size() : 0;
  }
  if (needed > free_.size())
    return Status::error("the device KV cache is full: the batch needs " +
                         std::to_string(needed) + " more pages of " +
                         std::to_string(pageSize_) + " tokens and " +
                         std::to_string(free_.size()) +
                         " are free; raise EngineOptions::cacheTokens or "
                         "finish sequences");
  for (const auto &[sequence, more] : tokens) {
    Sequence &s = sequences_.at(sequence);
    uint64_t pages = (s.length + more + pageSize_ - 1) / pageSize_;
    while (s.pages.size() < pages) {
      s.pages.push_back(free_.back());
      free_.pop_back();
      ++pagesInUse_;
    }
  }
  peakPages_ = std::max(peakPages_, pagesInUse_);
  return Status::ok();
}

void DeviceKvPool::setLength(uint64_t sequence, uint64_t length) {
  sequences_.at(sequence).length = length;
}

void DeviceKvPool::trim(Sequence &s) {
  size_t keep = size_t((s.length + pageSize_ - 1) / pageSize_);
  while (s.pages.size() > keep) {
    free_.push_back(s.pages.back());
    s.pages.pop_back();
    --pagesInUse_;
  }
}

double DeviceKvPool::bytesPerToken() const {
  double bytes = 0;
  for (const Layer &l : layers_)
    bytes +=
        double(l.spec.key.headBytes + l.spec.value.headBytes) * l.spec.kvHeads;
  return bytes / pageSize_;
}

} // namespace kvrt::cuda
