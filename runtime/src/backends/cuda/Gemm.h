//===- Gemm.h - Projections through cuBLASLt --------------------*- C++ -*-===//
//
// y[rows][out] = x[rows][in] W^T (+ bias), W [out][in] in bf16 as the
// artifact stores projections, x in bf16, y and the accumulation in fp32.
// cuBLASLt's heuristic picks an algorithm once per shape.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_GEMM_H
#define KVRT_BACKENDS_CUDA_GEMM_H

#include "kvrt/Status.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

typedef struct CUstream_st *cudaStream_t;

namespace kvrt::cuda {

class Gemm {
public:
  static StatusOr<std::unique_ptr<Gemm>> create();
  ~Gemm();

  Status run(const uint16_t *x, int64_t rows, int64_t in, const uint16_t *w,
             int64_t out, const float *bias, float *y, cudaStream_t stream);

private:
  struct Shape;
  Gemm() = default;
  StatusOr<const Shape *> shape(int64_t rows, int64_t in, int64_t out,
                                bool bias);

  void *handle_ = nullptr;
  DeviceBuffer workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<Shape>>
      shapes_;
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_GEMM_H
