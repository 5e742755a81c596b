//===- Calibrate.h - Calibration options of kvopt compile -------*- C++ -*-===//
#ifndef KVOPT_TOOLS_KVOPT_CALIBRATE_H
#define KVOPT_TOOLS_KVOPT_CALIBRATE_H

#include "compiler/import/Importer.h"
#include "kvrt/Status.h"
#include "tools/kvopt/Progress.h"

#include <cstdint>
#include <string>

namespace CLI {
class App;
} // namespace CLI

namespace kvopt::cli {

/// Where `kvopt compile` takes calibration statistics from: a text to run
/// the model on, or a file `kvopt calibrate` wrote; neither when both are
/// empty.
struct CompileCalibration {
  std::string text;
  int64_t tokens = 0;
  std::string statistics;
};

/// Registers --calibrate, --calibrate-tokens and --calibration.
void addCalibrationOptions(CLI::App &compile, CompileCalibration &options);

/// Puts the statistics in the imported module, before the passes run.
kvrt::Status applyCalibration(const CompileCalibration &options,
                              import::ImportedModel &model, Progress &progress);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_CALIBRATE_H
