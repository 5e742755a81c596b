//===- StepPlanning.cpp - Host decisions of the cuda backend --------------===//
#include "runtime/src/backends/cuda/StepPlanning.h"

namespace kvrt::cuda {

Bf16Inputs planBf16Inputs(const std::vector<PlanStep> &steps) {
  Bf16Inputs plan;
  plan.writes.assign(steps.size(), false);
  plan.converts.assign(steps.size(), false);
  // The step whose output the bf16 buffer holds after each step.
  int64_t held = kNoStep;
  for (size_t i = 0; i < steps.size(); ++i) {
    const PlanStep &s = steps[i];
    if (s.kernel == Kernel::LMHead) {
      held = kNoStep; // It converts the rows it reads into the buffer.
      continue;
    }
    if (s.kernel != Kernel::Linear)
      continue;
    const int64_t source = s.producers[0];
    if (source == held)
      continue;
    // A norm or SwiGLU may write the copy as it computes if no step since
    // wrote the buffer.
    bool sourceWrites = false;
    if (source != kNoStep && (steps[size_t(source)].kernel == Kernel::RmsNorm ||
                              steps[size_t(source)].kernel == Kernel::SwiGLU)) {
      sourceWrites = true;
      for (size_t j = size_t(source) + 1; j < i; ++j)
        sourceWrites &= steps[j].kernel != Kernel::Linear &&
                        steps[j].kernel != Kernel::LMHead && !plan.writes[j];
    }
    if (sourceWrites)
      plan.writes[size_t(source)] = true;
    else
      plan.converts[i] = true;
    held = source;
  }
  return plan;
}

uint32_t planLength(uint32_t length) {
  if (length <= 256)
    return 256;
  uint32_t step = 1;
  while (step * 8 <= length)
    step *= 2;
  return (length + step - 1) / step * step;
}

} // namespace kvrt::cuda
