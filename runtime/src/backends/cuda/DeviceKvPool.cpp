//===- DeviceKvPool.cpp - The paged cache in device memory ----------------===//
#include "runtime/src/backends/cuda/DeviceKvPool.h"
#include "runtime/src/sparse/BoundCodes.h"

#include <algorithm>
#include <string>

namespace kvrt::cuda {
namespace {

/// Sequences the exact-token stores hold at first.
constexpr uint32_t kFirstExactSlots = 4;

} // namespace

StatusOr<std::unique_ptr<DeviceKvPool>>
DeviceKvPool::create(std::vector<DeviceLayerSpec> specs, uint32_t pageSize,
                     uint32_t capacityPages) {
  const bool offloads =
      std::any_of(specs.begin(), specs.end(),
                  [](const DeviceLayerSpec &s) { return s.offloaded; });
  std::unique_ptr<DeviceKvPool> pool(new DeviceKvPool(
      pageSize, capacityPages,
      offloads ? "the KV cache (its offloaded layers in pinned host memory)"
               : "the device KV cache"));
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
    if (spec.offloaded) {
      for (auto [buffer, bytes] :
           {std::make_pair(&layer.hostKeys, keyPage * capacityPages),
            std::make_pair(&layer.hostValues, valuePage * capacityPages)}) {
        StatusOr<HostBuffer> made = HostBuffer::allocate(bytes);
        if (!made)
          return Status::error("the offloaded KV cache in host memory: " +
                               made.status().message());
        *buffer = std::move(*made);
      }
    } else {
      KVRT_RETURN_IF_ERROR(allocate(layer.deviceKeys, keyPage * capacityPages));
      KVRT_RETURN_IF_ERROR(
          allocate(layer.deviceValues, valuePage * capacityPages));
    }
    // The layer's constants, each a vector of 4- or 8-byte values.
    auto upload = [&](DeviceBuffer &buffer, const void *data,
                      size_t bytes) -> Status {
      if (!bytes)
        return Status::ok();
      KVRT_RETURN_IF_ERROR(allocate(buffer, bytes));
      return buffer.upload(data, bytes);
    };
    for (auto [values, buffer] :
         {std::make_pair(&spec.keyScales, &layer.keyScales),
          std::make_pair(&spec.valueScales, &layer.valueScales),
          std::make_pair(&spec.valueBasis, &layer.valueBasis),
          std::make_pair(&spec.keyBasis, &layer.keyBasis)})
      KVRT_RETURN_IF_ERROR(
          upload(*buffer, values->data(), values->size() * sizeof(float)));
    const LatentKeyOperands &operands = spec.keyOperands;
    KVRT_RETURN_IF_ERROR(
        upload(layer.keyAxes, operands.axes.data(), operands.axes.size() * 4));
    KVRT_RETURN_IF_ERROR(upload(layer.keyFrequencies,
                                operands.frequencies.data(),
                                operands.frequencies.size() * 4));
    KVRT_RETURN_IF_ERROR(upload(layer.keyRotations, operands.rotations.data(),
                                operands.rotations.size() * 8));
    KVRT_RETURN_IF_ERROR(upload(layer.keyRopeInverse,
                                operands.ropeInverse.data(),
                                operands.ropeInverse.size() * 8));
    const uint64_t summaryPage = summaryPageBytes(spec, pageSize);
    if (summaryPage) {
      const uint64_t blocks = uint64_t(capacityPages) * spec.kvHeads *
                              (pageSize / spec.summaryBlock);
      KVRT_RETURN_IF_ERROR(
          allocate(layer.summaryCodes, blocks * 2 * spec.headDim));
      KVRT_RETURN_IF_ERROR(allocate(layer.summaryExponents, blocks));
    }
    pool->pageBytes_ += keyPage + valuePage + summaryPage;
    pool->exactSlotBytes_ += 2 * spec.exactSideBytes();
    layer.spec = std::move(spec);
    pool->layers_.push_back(std::move(layer));
  }
  KVRT_RETURN_IF_ERROR(allocate(
      pool->positions_, uint64_t(capacityPages) * pageSize * sizeof(int32_t)));
  if (pool->exactSlotBytes_)
    KVRT_RETURN_IF_ERROR(pool->growExactStores(kFirstExactSlots));
  return pool;
}

ExactTokensView DeviceKvPool::Layer::exact() const {
  ExactTokensView view;
  view.sinks = spec.exactSinks;
  view.window = spec.ringEntries();
  view.recent = spec.exactWindow;
  view.flushGroup = spec.flushGroup;
  view.keys = exactKeys.as<uint16_t>();
  view.values = exactValues.as<uint16_t>();
  return view;
}

Status DeviceKvPool::addSequence(uint64_t sequence) {
  KVRT_RETURN_IF_ERROR(ledger_.addSequence(sequence));
  return holdSlot(sequence);
}

Status DeviceKvPool::share(uint64_t from, uint64_t sequence, uint64_t tokens) {
  KVRT_RETURN_IF_ERROR(ledger_.share(from, sequence, tokens));
  return holdSlot(sequence);
}

Status DeviceKvPool::holdSlot(uint64_t sequence) {
  if (exactSlotBytes_ && ledger_.slots() > exactSlots_) {
    Status grown = growExactStores(2 * exactSlots_);
    if (!grown) {
      ledger_.removeSequence(sequence);
      return grown;
    }
  }
  peakBytes_ = std::max(peakBytes_, bytesInUse());
  return Status::ok();
}

Status DeviceKvPool::reserve(
    const std::vector<std::pair<uint64_t, uint64_t>> &tokens) {
  KVRT_RETURN_IF_ERROR(ledger_.reserve(tokens));
  peakBytes_ = std::max(peakBytes_, bytesInUse());
  return Status::ok();
}

Status DeviceKvPool::growExactStores(uint32_t slots) {
  // All new stores first: a failure leaves the old ones in place.
  std::vector<std::pair<DeviceBuffer, DeviceBuffer>> grown;
  for (const Layer &layer : layers_) {
    grown.emplace_back();
    if (!layer.spec.keepsExact())
      continue;
    for (DeviceBuffer *buffer : {&grown.back().first, &grown.back().second}) {
      StatusOr<DeviceBuffer> made =
          DeviceBuffer::allocate(layer.spec.exactSideBytes() * slots);
      if (!made)
        return Status::error(
            "the GPU has no room for the exact tokens (sinks and window) of " +
            std::to_string(slots) + " sequences, " +
            std::to_string(exactSlotBytes_ * slots) +
            " bytes: " + made.status().message());
      *buffer = std::move(*made);
    }
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer &layer = layers_[i];
    if (!layer.spec.keepsExact())
      continue;
    KVRT_RETURN_IF_ERROR(grown[i].first.copyFrom(layer.exactKeys));
    KVRT_RETURN_IF_ERROR(grown[i].second.copyFrom(layer.exactValues));
    layer.exactKeys = std::move(grown[i].first);
    layer.exactValues = std::move(grown[i].second);
  }
  exactSlots_ = slots;
  ++exactMoves_;
  return Status::ok();
}

uint64_t DeviceKvPool::summaryPageBytes(const DeviceLayerSpec &spec,
                                        uint32_t pageSize) {
  return sparse::summaryBytesPerPage(spec.kvHeads, spec.headDim, pageSize,
                                     spec.summaryBlock);
}

double DeviceKvPool::bytesPerToken() const {
  double bytes = 0;
  for (const Layer &l : layers_)
    bytes +=
        double(l.spec.key.headBytes + l.spec.value.headBytes) * l.spec.kvHeads +
        double(summaryPageBytes(l.spec, pageSize()));
  return bytes / pageSize();
}

} // namespace kvrt::cuda
