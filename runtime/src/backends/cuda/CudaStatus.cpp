//===- CudaStatus.cpp - A failed CUDA call as a Status --------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"

#include <cuda_runtime_api.h>

namespace kvrt::cuda {

Status cudaFailed(const std::string &what, int error) {
  return Status::error("CUDA: " + what +
                       " failed: " + cudaGetErrorString(cudaError_t(error)));
}

} // namespace kvrt::cuda
