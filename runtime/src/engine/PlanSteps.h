//===- PlanSteps.h - A plan's calls with their buffers ----------*- C++ -*-===//
//
// What every backend does first with a plan: resolve each call's slots to
// activation buffers. A reshape's output is its input's buffer (a view);
// lm_head writes to the caller's logits, so it has no output buffer. A
// value's buffer is free again after its last reader and only a value of
// the same width takes it over, so a prefill needs the live set's memory,
// not the whole plan's.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_ENGINE_PLANSTEPS_H
#define KVRT_ENGINE_PLANSTEPS_H

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/artifact/Plan.h"

#include <cstdint>
#include <vector>

namespace kvrt {

inline constexpr uint32_t kNoBuffer = ~0u;
inline constexpr int64_t kNoStep = -1;

struct PlanStep {
  Kernel kernel = Kernel::Reshape;
  const schema::KernelCall *call = nullptr;
  /// The buffers of the input slots, and the step that computed each value
  /// (through reshapes), or kNoStep.
  std::vector<uint32_t> inputs;
  std::vector<int64_t> producers;
  uint32_t output = kNoBuffer;
  /// Values per row of the first input and of the output.
  int64_t inputWidth = 0;
  int64_t outputWidth = 0;
  /// The last and first dimensions of the first input's shape (of the
  /// output's for a call without inputs): heads and head size for rope
  /// and attention.
  int64_t dim = 0;
  int64_t heads = 0;
};

struct PlanSteps {
  std::vector<PlanStep> steps;
  /// Values per row of each buffer.
  std::vector<int64_t> bufferWidths;
};

/// The steps of a validated plan.
PlanSteps planSteps(const schema::Plan &plan);

} // namespace kvrt

#endif // KVRT_ENGINE_PLANSTEPS_H
