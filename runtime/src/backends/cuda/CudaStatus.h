//===- CudaStatus.h - A failed CUDA call as a Status ------------*- C++ -*-===//
#ifndef KVRT_BACKENDS_CUDA_CUDASTATUS_H
#define KVRT_BACKENDS_CUDA_CUDASTATUS_H

#include "kvrt/Status.h"

#include <string>

namespace kvrt::cuda {

/// What a CUDA call that failed with `error` (a cudaError_t, taken as an
/// int so that includers need not include the runtime's header) did, in
/// one sentence.
Status cudaFailed(const std::string &what, int error);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_CUDASTATUS_H
