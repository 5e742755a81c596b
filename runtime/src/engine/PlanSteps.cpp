//===- PlanSteps.cpp - A plan's calls with their buffers ------------------===//
#include "runtime/src/engine/PlanSteps.h"

#include <algorithm>
#include <unordered_map>

namespace kvrt {

PlanSteps planSteps(const schema::Plan &plan) {
  auto width = [&](uint32_t slot) {
    int64_t n = 1;
    for (int64_t d : plan.slots(int(slot)).shape())
      n *= d;
    return n;
  };
  PlanSteps result;
  std::vector<PlanStep> &steps = result.steps;
  // Slot -> value; value -> its width and the step that computes it.
  std::vector<uint32_t> slotValue(plan.slots_size(), kNoBuffer);
  std::vector<int64_t> valueWidth, valueProducer;
  for (const schema::KernelCall &call : plan.calls()) {
    PlanStep step;
    step.call = &call;
    // The manifest was validated when the artifact was opened.
    step.kernel = *kernelByName(call.kernel());
    for (uint32_t slot : call.inputs()) {
      step.inputs.push_back(slotValue[slot]);
      step.producers.push_back(valueProducer[slotValue[slot]]);
    }
    if (!call.inputs().empty())
      step.inputWidth = width(call.inputs(0));
    if (!call.outputs().empty()) {
      uint32_t slot = call.outputs(0);
      step.outputWidth = width(slot);
      if (step.kernel == Kernel::Reshape) {
        slotValue[slot] = step.inputs[0];
      } else if (step.kernel != Kernel::LMHead) {
        slotValue[slot] = uint32_t(valueWidth.size());
        valueWidth.push_back(step.outputWidth);
        valueProducer.push_back(int64_t(steps.size()));
        step.output = slotValue[slot];
      }
    }
    // A call with no operands (prefetch) has no shape.
    if (!call.inputs().empty() || !call.outputs().empty()) {
      const auto &shape = call.inputs().empty()
                              ? plan.slots(int(call.outputs(0))).shape()
                              : plan.slots(int(call.inputs(0))).shape();
      step.dim = shape[shape.size() - 1];
      step.heads = shape.size() > 1 ? shape[0] : 1;
    }
    steps.push_back(std::move(step));
  }

  // Values -> buffers.
  size_t values = valueWidth.size();
  std::vector<size_t> lastUse(values, 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    for (uint32_t v : steps[i].inputs)
      lastUse[v] = i;
    if (steps[i].output != kNoBuffer)
      lastUse[steps[i].output] = std::max(lastUse[steps[i].output], i);
  }
  std::vector<uint32_t> buffer(values, kNoBuffer);
  std::unordered_map<int64_t, std::vector<uint32_t>> free;
  auto release = [&](uint32_t value) {
    free[valueWidth[value]].push_back(buffer[value]);
    buffer[value] = kNoBuffer;
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    PlanStep &s = steps[i];
    std::vector<uint32_t> inputValues = s.inputs;
    for (uint32_t &v : s.inputs)
      v = buffer[v];
    uint32_t outputValue = s.output;
    if (outputValue != kNoBuffer) {
      std::vector<uint32_t> &candidates = free[valueWidth[outputValue]];
      if (candidates.empty()) {
        buffer[outputValue] = uint32_t(result.bufferWidths.size());
        result.bufferWidths.push_back(valueWidth[outputValue]);
      } else {
        buffer[outputValue] = candidates.back();
        candidates.pop_back();
      }
      s.output = buffer[outputValue];
    }
    // Released after the output took its buffer: no kernel runs in place.
    for (uint32_t v : inputValues)
      if (lastUse[v] == i && buffer[v] != kNoBuffer)
        release(v);
    if (outputValue != kNoBuffer && lastUse[outputValue] == i)
      release(outputValue);
  }
  return result;
}

} // namespace kvrt
