//===- Compile.h - A model compiled into a .kvpkg artifact ------*- C++ -*-===//
//
// What `kvopt compile` does after checking its options, for the commands
// that compile artifacts themselves (kvopt tune: one per candidate).
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_COMPILE_H
#define KVOPT_TOOLS_KVOPT_COMPILE_H

#include "tools/kvopt/Calibrate.h"
#include "tools/kvopt/Progress.h"

#include "kvrt/Status.h"

#include <cstdint>
#include <optional>
#include <string>

namespace kvopt::cli {

struct CompileOptions {
  std::string model, synthetic, output, passes, policy;
  std::optional<uint64_t> seed;
  /// "stored" (the default, when empty) or "generated".
  std::string syntheticWeights;
  std::string target = "cpu";
  CompileCalibration calibration;
};

/// Imports the model (o.model or o.synthetic), calibrates as o.calibration
/// says, runs `pipeline` (kvopt-opt's spelling, without the module anchor)
/// and writes the artifact to o.output.
kvrt::Status compileArtifact(const CompileOptions &o,
                             const std::string &pipeline, Progress &progress);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_COMPILE_H
