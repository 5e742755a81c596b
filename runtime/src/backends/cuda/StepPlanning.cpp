//===- StepPlanning.cpp - Host decisions of the cuda backend --------------===//
#include "runtime/src/backends/cuda/StepPlanning.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"

#include <algorithm>
#include <tuple>

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

namespace {

/// Whether step `reader` can take input `input` with a row stride.
bool takesStridedInput(const PlanStep &reader, size_t input) {
  switch (reader.kernel) {
  case Kernel::Rope:
    return input == 0;
  case Kernel::Append:
  case Kernel::SwiGLU:
    return input < 2;
  default:
    return false;
  }
}

} // namespace

FusedProjections planFusedProjections(const std::vector<PlanStep> &steps) {
  FusedProjections fused;
  fused.memberOf.assign(steps.size(), -1);
  fused.inputs.resize(steps.size());
  for (size_t j = 0; j < steps.size(); ++j)
    fused.inputs[j].resize(steps[j].inputs.size());
  // Per step: its readers (through reshapes), and whether all of them take
  // a strided input.
  std::vector<std::vector<std::pair<size_t, size_t>>> readers(steps.size());
  for (size_t j = 0; j < steps.size(); ++j) {
    if (steps[j].kernel == Kernel::Reshape)
      continue;
    for (size_t i = 0; i < steps[j].producers.size(); ++i)
      if (steps[j].producers[i] != kNoStep)
        readers[size_t(steps[j].producers[i])].push_back({j, i});
  }
  auto fusable = [&](size_t m) {
    if (steps[m].kernel != Kernel::Linear || readers[m].empty())
      return false;
    for (const auto &[j, i] : readers[m])
      if (!takesStridedInput(steps[j], i))
        return false;
    return true;
  };
  auto hasBias = [&](size_t m) { return steps[m].call->tensors_size() > 1; };
  // The last step that reads the scratch so far.
  int64_t lastRead = -1;
  std::vector<bool> taken(steps.size(), false);
  for (size_t leader = 0; leader < steps.size(); ++leader) {
    if (taken[leader] || !fusable(leader))
      continue;
    FusedProjection group;
    for (size_t m = leader; m < steps.size(); ++m)
      if (!taken[m] && fusable(m) &&
          steps[m].producers[0] == steps[leader].producers[0] &&
          steps[m].inputs[0] == steps[leader].inputs[0] &&
          steps[m].inputWidth == steps[leader].inputWidth &&
          hasBias(m) == hasBias(leader)) {
        group.members.push_back(m);
        group.offsets.push_back(group.width);
        group.width += steps[m].outputWidth;
      }
    if (group.members.size() < 2 || int64_t(leader) <= lastRead)
      continue;
    const int32_t id = int32_t(fused.groups.size());
    for (size_t k = 0; k < group.members.size(); ++k) {
      const size_t m = group.members[k];
      taken[m] = true;
      fused.memberOf[m] = id;
      for (const auto &[j, i] : readers[m]) {
        fused.inputs[j][i] = {id, group.offsets[k], group.width};
        lastRead = std::max(lastRead, int64_t(j));
      }
    }
    fused.widest = std::max(fused.widest, group.width);
    fused.groups.push_back(std::move(group));
  }
  return fused;
}

FoldedAdds planFoldedAdds(const std::vector<PlanStep> &steps) {
  FoldedAdds folded;
  folded.addOf.assign(steps.size(), kNoStep);
  folded.folded.assign(steps.size(), false);
  for (size_t n = 0; n < steps.size(); ++n) {
    const PlanStep &norm = steps[n];
    if (norm.kernel != Kernel::RmsNorm || norm.dim != norm.inputWidth ||
        norm.producers[0] == kNoStep)
      continue;
    const size_t a = size_t(norm.producers[0]);
    bool adjacent = steps[a].kernel == Kernel::Add && a < n;
    for (size_t j = a + 1; adjacent && j < n; ++j)
      adjacent = steps[j].kernel == Kernel::Reshape;
    if (!adjacent)
      continue;
    folded.addOf[n] = int64_t(a);
    folded.folded[a] = true;
  }
  return folded;
}

FoldedRopes planFoldedRopes(const std::vector<PlanStep> &steps) {
  FoldedRopes folded;
  folded.keyRopeOf.assign(steps.size(), kNoStep);
  folded.queryRopeOf.assign(steps.size(), kNoStep);
  folded.folded.assign(steps.size(), false);
  // Per step: the steps that read it (reshapes are views, not readers).
  std::vector<std::vector<size_t>> readers(steps.size());
  for (size_t j = 0; j < steps.size(); ++j)
    if (steps[j].kernel != Kernel::Reshape)
      for (int64_t producer : steps[j].producers)
        if (producer != kNoStep)
          readers[size_t(producer)].push_back(j);
  // Whether rope r may run at step a instead: only ropes and reshapes
  // between them, none writing r's input.
  auto movable = [&](size_t r, size_t a) {
    for (size_t j = r + 1; j < a; ++j) {
      const PlanStep &s = steps[j];
      if (s.kernel == Kernel::Reshape)
        continue;
      if (s.kernel != Kernel::Rope || s.output == steps[r].inputs[0])
        return false;
    }
    return true;
  };
  auto sameRotation = [&](const PlanStep &a, const PlanStep &b) {
    return a.dim == b.dim && a.call->rope().SerializeAsString() ==
                                 b.call->rope().SerializeAsString();
  };
  for (size_t a = 0; a < steps.size(); ++a) {
    if (steps[a].kernel != Kernel::Append || steps[a].producers[0] == kNoStep)
      continue;
    const size_t k = size_t(steps[a].producers[0]);
    if (steps[k].kernel != Kernel::Rope || steps[k].dim != steps[a].dim ||
        folded.folded[k] || readers[k] != std::vector<size_t>{a} ||
        !movable(k, a))
      continue;
    folded.keyRopeOf[a] = int64_t(k);
    folded.folded[k] = true;
    // The nearest rope before the append that may run with it.
    for (size_t q = a; q-- > 0;) {
      if (steps[q].kernel == Kernel::Reshape || q == k)
        continue;
      if (steps[q].kernel != Kernel::Rope)
        break;
      bool readLater = true;
      for (size_t reader : readers[q])
        readLater &= reader > a;
      if (!folded.folded[q] && readLater && movable(q, a) &&
          sameRotation(steps[q], steps[k])) {
        folded.queryRopeOf[a] = int64_t(q);
        folded.folded[q] = true;
      }
      break;
    }
  }
  return folded;
}

uint32_t planLength(uint32_t length) {
  if (length <= 256)
    return 256;
  uint32_t step = 1;
  while (step * 8 <= length)
    step *= 2;
  return (length + step - 1) / step * step;
}

void summaryBuilds(const std::vector<int32_t> &pages, uint64_t before,
                   uint64_t after, uint32_t pageSize,
                   std::vector<int32_t> &buildPages,
                   std::vector<int32_t> &buildSlots) {
  if (after <= before)
    return;
  for (uint64_t p = before / pageSize; p <= (after - 1) / pageSize; ++p) {
    buildPages.push_back(pages[p]);
    buildSlots.push_back(
        int32_t(std::min<uint64_t>(pageSize, after - p * pageSize)));
  }
}

Status checkKernelLimits(const std::vector<PlanStep> &steps,
                         const std::string &artifact) {
  for (const PlanStep &step : steps)
    if (step.kernel == Kernel::RmsNorm && step.dim > kNormMaxDim)
      return Status::error(
          artifact + ": " +
          (step.call->name().empty() ? "" : step.call->name() + ": ") +
          "an rms_norm over rows of " + std::to_string(step.dim) +
          " values; the cuda backend's norm holds a row of at most " +
          std::to_string(kNormMaxDim));
  return Status::ok();
}

StatusOr<SparseWorkspaceSize>
sizeSparseWorkspace(const std::vector<SparseDecodeShape> &shapes,
                    uint32_t maxBatch, size_t budget,
                    uint32_t multiprocessors) {
  // Layers of one shape plan alike: each distinct one once.
  auto key = [](const SparseDecodeShape &s) {
    auto side = [](const DeviceSideLayout &l) {
      return std::make_tuple(l.kind, l.entryBytes, l.codesOffset, l.areaStride);
    };
    return std::make_tuple(s.qHeads, s.kvHeads, s.headDim, s.pageSize,
                           s.maxLength, s.policy.block, s.policy.topBlocks,
                           s.policy.topTokens, side(s.key), side(s.value),
                           s.exactTokens);
  };
  std::vector<SparseDecodeShape> distinct;
  for (const SparseDecodeShape &s : shapes)
    if (std::none_of(
            distinct.begin(), distinct.end(),
            [&](const SparseDecodeShape &d) { return key(d) == key(s); }))
      distinct.push_back(s);
  SparseWorkspaceSize size;
  // A plan's bytes grow with its rows but not strictly (the attention's
  // splits per row shrink as rows grow), so every batch up to the largest
  // is planned; the budget ends the search long before maxBatch on the
  // shapes that need it.
  for (uint32_t n = 1; n <= std::max(1u, maxBatch); ++n) {
    size_t most = 0;
    for (SparseDecodeShape s : distinct) {
      s.batch = n;
      StatusOr<SparseDecodePlan> plan = planSparseDecode(s, multiprocessors);
      if (!plan)
        return plan.status();
      most = std::max(most, plan->workspaceBytes);
    }
    if (n > 1 && most > budget)
      break;
    size.maxBatch = n;
    size.bytes = std::max(size.bytes, most);
  }
  return size;
}

} // namespace kvrt::cuda
