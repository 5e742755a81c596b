//===- Policy.h - A policy file and the passes it means ---------*- C++ -*-===//
//
// A policy file (docs/policy.md) names, per compression axis, the settings
// of that axis's pass: a `quantize:` section becomes kv-quantize
// invocations, an `evict:` section kv-evict invocations. Each section is one
// setting for the whole model plus `overrides`, settings for some layers or one
// side (key or value) that run after it, so the last setting that covers a
// layer wins. The keys of a setting are the options of its pass, spelled as on
// the command line. The reader checks syntax and types with `FILE:LINE:COLUMN`
// errors; the pass checks what the values mean (which encodings take which
// bits, which layers exist). It links no MLIR, so a fuzzer can drive it alone.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_POLICY_POLICY_H
#define KVOPT_COMPILER_POLICY_POLICY_H

#include "kvrt/Status.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvopt::policy {

/// One pass invocation: its name and its options in pipeline syntax, in
/// the order the pass declares them.
struct PassStep {
  std::string pass;
  std::vector<std::pair<std::string, std::string>> options;
};

/// The passes a policy asks for, in the order the compiler runs them.
struct Policy {
  std::vector<PassStep> steps;
};

/// Reads the policy in `text`; `name` stands for the file in messages.
kvrt::StatusOr<Policy> parsePolicy(std::string_view text,
                                   const std::string &name);

/// Reads the policy file at `path`.
kvrt::StatusOr<Policy> readPolicyFile(const std::string &path);

/// The pipeline `kvopt compile --passes` and kvopt-opt take, e.g.
/// "kv-quantize{encoding=polar bits=3},kv-quantize{encoding=bf16
/// layers=0,-1}".
std::string pipelineText(const Policy &policy);

} // namespace kvopt::policy

#endif // KVOPT_COMPILER_POLICY_POLICY_H
