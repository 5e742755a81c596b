//===- Gemm.cpp - Projections through cuBLASLt ----------------------------===//
//
// Row-major y = x W^T is, in cuBLAS's column-major terms, y^T = W x^T with
// W read transposed: A = W (k x m, transposed), B = x^T (k x n), m = out,
// n = rows, k = in.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/Gemm.h"

#include <cublasLt.h>

#include <string>

namespace kvrt::cuda {
namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

Status failed(const char *what, cublasStatus_t status) {
  return Status::error(std::string("cuBLASLt: ") + what +
                       " failed: " + cublasLtGetStatusString(status));
}

} // namespace

struct Gemm::Shape {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Shape() {
    if (c)
      cublasLtMatrixLayoutDestroy(c);
    if (b)
      cublasLtMatrixLayoutDestroy(b);
    if (a)
      cublasLtMatrixLayoutDestroy(a);
    if (op)
      cublasLtMatmulDescDestroy(op);
  }
};

StatusOr<std::unique_ptr<Gemm>> Gemm::create() {
  std::unique_ptr<Gemm> gemm(new Gemm());
  cublasLtHandle_t handle;
  if (cublasStatus_t s = cublasLtCreate(&handle); s != CUBLAS_STATUS_SUCCESS)
    return failed("creating a handle", s);
  gemm->handle_ = handle;
  StatusOr<DeviceBuffer> workspace = DeviceBuffer::allocate(kWorkspaceBytes);
  if (!workspace)
    return workspace.status();
  gemm->workspace_ = std::move(*workspace);
  return gemm;
}

Gemm::~Gemm() {
  shapes_.clear();
  if (handle_)
    cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

StatusOr<const Gemm::Shape *> Gemm::shape(int64_t rows, int64_t in, int64_t out,
                                          bool bias) {
  auto key = std::make_tuple(rows, in, out, bias);
  auto found = shapes_.find(key);
  if (found != shapes_.end())
    return found->second.get();
  auto s = std::make_unique<Shape>();
  cublasStatus_t status =
      cublasLtMatmulDescCreate(&s->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (status != CUBLAS_STATUS_SUCCESS)
    return failed("creating a matmul description", status);
  cublasOperation_t transposed = CUBLAS_OP_T, plain = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_TRANSA,
                                 &transposed, sizeof(transposed));
  cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_TRANSB, &plain,
                                 sizeof(plain));
  if (bias) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                   &epilogue, sizeof(epilogue));
  }
  if ((status = cublasLtMatrixLayoutCreate(&s->a, CUDA_R_16BF, uint64_t(in),
                                           uint64_t(out), in)) !=
          CUBLAS_STATUS_SUCCESS ||
      (status = cublasLtMatrixLayoutCreate(&s->b, CUDA_R_16BF, uint64_t(in),
                                           uint64_t(rows), in)) !=
          CUBLAS_STATUS_SUCCESS ||
      (status = cublasLtMatrixLayoutCreate(&s->c, CUDA_R_32F, uint64_t(out),
                                           uint64_t(rows), out)) !=
          CUBLAS_STATUS_SUCCESS)
    return failed("creating a matrix layout", status);

  cublasLtMatmulPreference_t preference;
  cublasLtMatmulPreferenceCreate(&preference);
  size_t workspaceBytes = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(preference,
                                       CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                       &workspaceBytes, sizeof(workspaceBytes));
  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  status = cublasLtMatmulAlgoGetHeuristic(
      static_cast<cublasLtHandle_t>(handle_), s->op, s->a, s->b, s->c, s->c,
      preference, 1, &result, &found_count);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found_count == 0)
    return Status::error("cuBLASLt has no algorithm for a bf16 projection of " +
                         std::to_string(rows) + " rows from " +
                         std::to_string(in) + " to " + std::to_string(out) +
                         " values");
  s->algo = result.algo;
  const Shape *made = s.get();
  shapes_.emplace(key, std::move(s));
  return made;
}

Status Gemm::run(const uint16_t *x, int64_t rows, int64_t in, const uint16_t *w,
                 int64_t out, const float *bias, float *y,
                 cudaStream_t stream) {
  if (rows == 0)
    return Status::ok();
  StatusOr<const Shape *> s = shape(rows, in, out, bias != nullptr);
  if (!s)
    return s.status();
  if (bias)
    cublasLtMatmulDescSetAttribute((*s)->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                   &bias, sizeof(bias));
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t status =
      cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), (*s)->op, &one, w,
                     (*s)->a, x, (*s)->b, &zero, y, (*s)->c, y, (*s)->c,
                     &(*s)->algo, workspace_.get(), workspace_.size(), stream);
  if (status != CUBLAS_STATUS_SUCCESS)
    return failed("a bf16 projection", status);
  return Status::ok();
}

} // namespace kvrt::cuda
