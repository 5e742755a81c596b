//===- DeviceKvPool.h - The paged cache in device memory --------*- C++ -*-===//
//
// Every layer's pages live in one device allocation per side, sized when
// the backend is created (as vLLM sizes its block pool): page i of the
// layer is at i * kvHeads * areaStride. The host keeps the bookkeeping:
// each sequence's page list and length. The CUDA backend evicts nothing,
// so every layer holds the same tokens of a sequence: one page list per
// sequence and one positions array serve all layers.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DEVICEKVPOOL_H
#define KVRT_BACKENDS_CUDA_DEVICEKVPOOL_H

#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"

#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvrt::cuda {

struct DeviceLayerSpec {
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  DeviceSideLayout key, value;
  /// fp8 per_head: the scales of each side's KV heads; empty otherwise.
  std::vector<float> keyScales, valueScales;
};

class DeviceKvPool {
public:
  struct Layer {
    DeviceLayerSpec spec;
    DeviceBuffer keys, values, keyScales, valueScales;
  };

  /// Allocates `capacityPages` pages of `pageSize` tokens for each layer.
  static StatusOr<std::unique_ptr<DeviceKvPool>>
  create(std::vector<DeviceLayerSpec> layers, uint32_t pageSize,
         uint32_t capacityPages);

  Status addSequence(uint64_t sequence);
  void removeSequence(uint64_t sequence);
  bool contains(uint64_t sequence) const {
    return sequences_.count(sequence) != 0;
  }
  /// Attaches pages for tokens[i].second more tokens of each sequence;
  /// when the pool is short, attaches none and says so.
  Status reserve(const std::vector<std::pair<uint64_t, uint64_t>> &tokens);
  /// Tokens stored for `sequence`.
  uint64_t length(uint64_t sequence) const {
    return sequences_.at(sequence).length;
  }
  /// Commits tokens written into the reserved pages.
  void setLength(uint64_t sequence, uint64_t length);
  const std::vector<int32_t> &pages(uint64_t sequence) const {
    return sequences_.at(sequence).pages;
  }

  uint32_t pageSize() const { return pageSize_; }
  size_t layerCount() const { return layers_.size(); }
  Layer &layer(size_t i) { return layers_[i]; }
  /// [capacityPages][pageSize]: each slot's position, all layers.
  int32_t *positions() const { return positions_.as<int32_t>(); }

  /// Bytes of keys and values one token takes across all layers (page
  /// areas over the page size: metadata included), and bytes of pages
  /// attached to sequences now and at most so far.
  double bytesPerToken() const;
  uint64_t bytesInUse() const { return pagesInUse_ * pageBytes_; }
  uint64_t peakBytes() const { return peakPages_ * pageBytes_; }

private:
  struct Sequence {
    std::vector<int32_t> pages;
    uint64_t length = 0;
  };
  DeviceKvPool() = default;
  /// Frees the pages beyond those the sequence's length needs.
  void trim(Sequence &sequence);

  std::vector<Layer> layers_;
  DeviceBuffer positions_;
  uint32_t pageSize_ = 0;
  /// One page of every layer.
  uint64_t pageBytes_ = 0;
  std::vector<int32_t> free_;
  uint64_t pagesInUse_ = 0;
  uint64_t peakPages_ = 0;
  std::unordered_map<uint64_t, Sequence> sequences_;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEVICEKVPOOL_H
