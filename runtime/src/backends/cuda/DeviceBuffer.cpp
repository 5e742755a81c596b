//===- DeviceBuffer.cpp - Owned device memory -----------------------------===//
#include "runtime/src/backends/cuda/DeviceBuffer.h"

#include <cuda_runtime_api.h>

#include <string>
#include <utility>

namespace kvrt::cuda {

DeviceBuffer::DeviceBuffer(DeviceBuffer &&other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    if (data_)
      cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_)
    cudaFree(data_);
}

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

} // namespace kvrt::cuda
