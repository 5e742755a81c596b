//===- DeviceCache.cpp - A cache layer copied to the device ---------------===//
#include "runtime/src/backends/cuda/DeviceCache.h"

#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace kvrt::cuda {

StatusOr<DeviceCacheLayer>
DeviceCacheLayer::upload(const PagedCache &cache, uint32_t layer,
                         const std::vector<uint64_t> &sequences,
                         const DeviceSideLayout &key,
                         const DeviceSideLayout &value) {
  const CacheLayerShape &shape = cache.shape(layer);
  uint32_t pageCount = 0, stride = 1;
  DeviceCacheLayer device;
  std::vector<int32_t> lengths;
  for (uint64_t sequence : sequences) {
    uint64_t length = cache.length(layer, sequence);
    if (cache.encoded(layer, sequence) != length)
      return Status::error("sequence " + std::to_string(sequence) +
                           " holds tokens in its tail; the CUDA backend "
                           "reads encoded pages only");
    const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
    for (uint32_t page : pages)
      pageCount = std::max(pageCount, page + 1);
    stride = std::max<uint32_t>(stride, uint32_t(pages.size()));
    lengths.push_back(int32_t(length));
    device.maxLength_ = std::max(device.maxLength_, uint32_t(length));
  }

  const uint64_t keyPage = key.areaStride * shape.kvHeads;
  const uint64_t valuePage = value.areaStride * shape.kvHeads;
  std::vector<uint8_t> keys(pageCount * keyPage), values(pageCount * valuePage);
  std::vector<int32_t> positions(size_t(pageCount) * shape.pageSize);
  std::vector<int32_t> tables(sequences.size() * stride, 0);
  for (size_t b = 0; b < sequences.size(); ++b) {
    const std::vector<uint32_t> &pages = cache.pages(layer, sequences[b]);
    for (size_t i = 0; i < pages.size(); ++i) {
      const uint32_t index = pages[i];
      const Page &page = cache.page(layer, index);
      tables[b * stride + i] = int32_t(index);
      for (uint32_t h = 0; h < shape.kvHeads; ++h) {
        std::memcpy(&keys[index * keyPage + h * key.areaStride],
                    page.keys.get() + h * shape.keyHeadBytes, key.headBytes);
        std::memcpy(&values[index * valuePage + h * value.areaStride],
                    page.values.get() + h * shape.valueHeadBytes,
                    value.headBytes);
      }
      std::memcpy(&positions[size_t(index) * shape.pageSize],
                  page.positions.get(), shape.pageSize * sizeof(int32_t));
    }
  }

  auto put = [](DeviceBuffer &buffer, const void *data,
                size_t bytes) -> Status {
    StatusOr<DeviceBuffer> allocated = DeviceBuffer::allocate(bytes);
    if (!allocated)
      return allocated.status();
    buffer = std::move(*allocated);
    return buffer.upload(data, bytes);
  };
  KVRT_RETURN_IF_ERROR(put(device.keys_, keys.data(), keys.size()));
  KVRT_RETURN_IF_ERROR(put(device.values_, values.data(), values.size()));
  KVRT_RETURN_IF_ERROR(
      put(device.positions_, positions.data(), positions.size() * 4));
  KVRT_RETURN_IF_ERROR(
      put(device.pageTables_, tables.data(), tables.size() * 4));
  KVRT_RETURN_IF_ERROR(
      put(device.lengths_, lengths.data(), lengths.size() * 4));

  PagedKvView &view = device.view_;
  view.key = key;
  view.value = value;
  view.keys = device.keys_.as<uint8_t>();
  view.values = device.values_.as<uint8_t>();
  view.positions = device.positions_.as<int32_t>();
  view.pageTables = device.pageTables_.as<int32_t>();
  view.lengths = device.lengths_.as<int32_t>();
  view.pageTableStride = stride;
  view.pageSize = shape.pageSize;
  view.kvHeads = shape.kvHeads;
  view.headDim = shape.headDim;
  return device;
}

} // namespace kvrt::cuda
