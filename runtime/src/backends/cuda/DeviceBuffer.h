//===- DeviceBuffer.h - Owned device and pinned host memory -----*- C++ -*-===//
#ifndef KVRT_BACKENDS_CUDA_DEVICEBUFFER_H
#define KVRT_BACKENDS_CUDA_DEVICEBUFFER_H

#include "kvrt/Status.h"

#include <cstddef>
#include <utility>

namespace kvrt::cuda {

/// A block freed with its owner by Release::free(); move-only.
template <typename Release> class OwnedMemory {
public:
  OwnedMemory() = default;
  OwnedMemory(OwnedMemory &&other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  OwnedMemory &operator=(OwnedMemory &&other) noexcept {
    if (this != &other) {
      if (data_)
        Release::free(data_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  OwnedMemory(const OwnedMemory &) = delete;
  OwnedMemory &operator=(const OwnedMemory &) = delete;
  ~OwnedMemory() {
    if (data_)
      Release::free(data_);
  }

  void *get() const { return data_; }
  template <typename T> T *as() const { return static_cast<T *>(data_); }
  size_t size() const { return size_; }

protected:
  void *data_ = nullptr;
  size_t size_ = 0;
};

/// cudaFree and cudaFreeHost, without the runtime's header here.
struct DeviceRelease {
  static void free(void *data);
};
struct HostRelease {
  static void free(void *data);
};

/// A cudaMalloc'd block.
class DeviceBuffer : public OwnedMemory<DeviceRelease> {
public:
  static StatusOr<DeviceBuffer> allocate(size_t bytes);
  /// Copies `bytes` from the host to offset 0 (synchronously).
  Status upload(const void *host, size_t bytes);
  /// Copies the first min(size(), other.size()) bytes of `other` here
  /// (synchronously, device to device).
  Status copyFrom(const DeviceBuffer &other);
};

/// Pinned host memory mapped into the device's address space (the same
/// pointer on both sides): a kernel reads and writes it over the bus, and
/// asynchronous copies to and from it need no staging.
class HostBuffer : public OwnedMemory<HostRelease> {
public:
  static StatusOr<HostBuffer> allocate(size_t bytes);
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DEVICEBUFFER_H
