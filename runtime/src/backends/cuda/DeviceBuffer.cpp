//===- DeviceBuffer.cpp - Owned device and pinned host memory -------------===//
#include "runtime/src/backends/cuda/DeviceBuffer.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>

namespace kvrt::cuda {

void DeviceRelease::free(void *data) { cudaFree(data); }
void HostRelease::free(void *data) { cudaFreeHost(data); }

StatusOr<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  DeviceBuffer buffer;
  cudaError_t error = cudaMalloc(&buffer.data_, bytes ? bytes : 1);
  if (error != cudaSuccess)
    return Status::error("cudaMalloc of " + std::to_string(bytes) +
                         " bytes failed: " + cudaGetErrorString(error));
  buffer.size_ = bytes;
  return buffer;
}

Status DeviceBuffer::upload(const void *host, size_t bytes) {
  cudaError_t error = cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice);
  if (error != cudaSuccess)
    return Status::error(
        "copying " + std::to_string(bytes) +
        " bytes to the device failed: " + cudaGetErrorString(error));
  return Status::ok();
}

Status DeviceBuffer::copyFrom(const DeviceBuffer &other) {
  const size_t bytes = std::min(size_, other.size());
  if (!bytes)
    return Status::ok();
  cudaError_t error =
      cudaMemcpy(data_, other.get(), bytes, cudaMemcpyDeviceToDevice);
  if (error != cudaSuccess)
    return Status::error(
        "copying " + std::to_string(bytes) +
        " bytes on the device failed: " + cudaGetErrorString(error));
  return Status::ok();
}

StatusOr<HostBuffer> HostBuffer::allocate(size_t bytes) {
  HostBuffer buffer;
  cudaError_t error =
      cudaHostAlloc(&buffer.data_, bytes ? bytes : 1, cudaHostAllocMapped);
  if (error != cudaSuccess)
    return Status::error(
        "pinning " + std::to_string(bytes) +
        " bytes of host memory failed: " + cudaGetErrorString(error));
  buffer.size_ = bytes;
  return buffer;
}

} // namespace kvrt::cuda
