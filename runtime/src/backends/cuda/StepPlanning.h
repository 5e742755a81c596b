//===- StepPlanning.h - Host decisions of the cuda backend ------*- C++ -*-===//
//
// What CudaBackend decides on the host before it launches anything, kept
// apart so that CI (no GPU) tests it: which projections must convert their
// input to bf16, and the length a decode step's attention plans for.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_STEPPLANNING_H
#define KVRT_BACKENDS_CUDA_STEPPLANNING_H

#include "runtime/src/engine/PlanSteps.h"

#include <cstdint>
#include <vector>

namespace kvrt::cuda {

/// Per step of a plan: whether it writes its output in bf16 too (a norm or
/// SwiGLU feeding projections), and whether it converts its input to bf16
/// first (a projection whose input no step left there). The backend keeps
/// one bf16 buffer: q, k and v share one conversion, gate and up another.
struct Bf16Inputs {
  std::vector<bool> writes;
  std::vector<bool> converts;
};
Bf16Inputs planBf16Inputs(const std::vector<PlanStep> &steps);

/// Tokens an attention plans for when its longest row holds `length`:
/// rounded up to a quarter of length's power of two (at least 256), so
/// that a growing sequence keeps one plan, and one captured graph, for a
/// while; the kernels stop at each row's own length.
uint32_t planLength(uint32_t length);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_STEPPLANNING_H
