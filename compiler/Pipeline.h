//===- Pipeline.h - The pass pipeline of `kvopt compile` --------*- C++ -*-===//
#ifndef KVOPT_COMPILER_PIPELINE_H
#define KVOPT_COMPILER_PIPELINE_H

#include "kvrt/Status.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <utility>
#include <vector>

namespace kvopt {

/// A pass that ran, as the artifact records it: its name and its options
/// in pipeline syntax ("{bits=3 encoding=polar ...}", every option spelled
/// out, defaults included).
using PassRecord = std::pair<std::string, std::string>;

/// Runs `pipeline`, in the textual syntax kvopt-opt's --pass-pipeline
/// accepts without the anchor (e.g. "kv-quantize{encoding=polar bits=3}"),
/// on `module`, verifying it after each pass. An empty pipeline runs
/// nothing. Errors carry the parser's or the pass's diagnostics.
kvrt::StatusOr<std::vector<PassRecord>>
runPipeline(mlir::ModuleOp module, const std::string &pipeline);

} // namespace kvopt

#endif // KVOPT_COMPILER_PIPELINE_H
