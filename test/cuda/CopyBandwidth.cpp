//===- CopyBandwidth.cpp - The ceiling the benchmarks compare with --------===//
#include "Harness.h"

#include "runtime/src/backends/cuda/DeviceBuffer.h"

#include <algorithm>
#include <vector>

namespace kvrt::cuda::test {

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double copyBandwidth() {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer from = orDie(DeviceBuffer::allocate(bytes));
  DeviceBuffer to = orDie(DeviceBuffer::allocate(bytes));
  CUDA_OK(cudaMemset(from.get(), 1, bytes));
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int rep = 0; rep < 23; ++rep) {
    CUDA_OK(cudaEventRecord(start));
    CUDA_OK(
        cudaMemcpyAsync(to.get(), from.get(), bytes, cudaMemcpyDeviceToDevice));
    CUDA_OK(cudaEventRecord(stop));
    CUDA_OK(cudaEventSynchronize(stop));
    float ms;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    if (rep >= 3)
      times.push_back(ms);
  }
  CUDA_OK(cudaEventDestroy(start));
  CUDA_OK(cudaEventDestroy(stop));
  return 2.0 * bytes / (median(times) * 1e-3) / 1e9;
}

} // namespace kvrt::cuda::test
