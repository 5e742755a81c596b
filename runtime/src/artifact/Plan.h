//===- Plan.h - The kernels an execution plan may call ----------*- C++ -*-===//
#ifndef KVRT_ARTIFACT_PLAN_H
#define KVRT_ARTIFACT_PLAN_H

#include <optional>
#include <string_view>

namespace kvrt {

/// The kernels of kvpkg format 1 (see KernelCall in kvpkg.proto).
enum class Kernel {
  Embedding,
  RmsNorm,
  Linear,
  Reshape,
  Rope,
  Append,
  Attention,
  SwiGLU,
  Add,
  LMHead,
  Evict,
  Prefetch,
};

/// The kernel called `name` in a manifest, if this runtime knows it.
std::optional<Kernel> kernelByName(std::string_view name);

} // namespace kvrt

#endif // KVRT_ARTIFACT_PLAN_H
