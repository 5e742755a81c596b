//===- DeviceCache.h - A cache layer copied to the device -------*- C++ -*-===//
//
// The pages of one layer that a batch of sequences holds, with their page
// tables, positions and lengths, in device memory as decodeAttention()
// reads them. Page i of the layer's pool is device page i; each head's area
// keeps the codec's bytes, its start padded to 16 bytes. Only encoded
// entries are read: sequences must have empty tails (cpu::encodeTails).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DEVICECACHE_H
#define KVRT_BACKENDS_CUDA_DEVICECACHE_H

#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"

#include <vector>

namespace kvrt {
class PagedCache;
}

namespace kvrt::cuda {

class DeviceCacheLayer {
public:
  /// Copies `layer` of `cache` for `sequences` (row b of the batch is
  /// sequences[b]) stored with `key` and `value`.
  static StatusOr<DeviceCacheLayer>
  upload(const PagedCache &cache, uint32_t layer,
         const std::vector<uint64_t> &sequences, const DeviceSideLayout &key,
         const DeviceSideLayout &value);

  const PagedKvView &view() const { return view_; }
  uint32_t maxLength() const { return maxLength_; }

private:
  DeviceBuffer keys_, values_, positions_, pageTables_, lengths_;
  PagedKvView view_;
  uint32_t maxLength_ = 0;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEVICECACHE_H
