//===- DeviceBuffer.h - Owned device memory ---------------------*- C++ -*-===//
#ifndef KVRT_BACKENDS_CUDA_DEVICEBUFFER_H
#define KVRT_BACKENDS_CUDA_DEVICEBUFFER_H

#include "kvrt/Status.h"

#include <cstddef>

namespace kvrt::cuda {

/// A cudaMalloc'd block, freed with its owner; move-only.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer();

  static StatusOr<DeviceBuffer> allocate(size_t bytes);
  /// Copies `bytes` from the host to offset 0 (synchronously).
  Status upload(const void *host, size_t bytes);

  void *get() const { return data_; }
  template <typename T> T *as() const { return static_cast<T *>(data_); }
  size_t size() const { return size_; }

private:
  void *data_ = nullptr;
  size_t size_ = 0;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEVICEBUFFER_H
