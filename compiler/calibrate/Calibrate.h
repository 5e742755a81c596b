//===- Calibrate.h - Run a model on text and record statistics --*- C++ -*-===//
//
// Calibration exports the imported module as it is, with an f32 cache so
// that the runtime computes exactly what the model does, runs it through
// libkvrt on windows of calibration text, and records what every layer's
// cache receives (Statistics.h). The result depends only on the module, the
// text and the options.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_CALIBRATE_H
#define KVOPT_COMPILER_CALIBRATE_CALIBRATE_H

#include "compiler/calibrate/Statistics.h"
#include "compiler/import/Importer.h"

#include <cstdint>
#include <string>

namespace kvopt::calibrate {

struct CalibrationOptions {
  /// Text tokens to run the model on, at most (all of a shorter text).
  int64_t tokens = 4096;
  /// Text tokens per window, at most. Each window is a sequence of its own,
  /// after the BOS token when the tokenizer adds one, and fits the model's
  /// context.
  int64_t window = 1024;
  /// The first tokens of each window and the entries up to each query's
  /// position whose attention the values' attention-weighted moment leaves
  /// out: kv-lowrank's default exact sinks and window, which the latent
  /// does not serve.
  int64_t attentionSinks = 4, attentionWindow = 64;
  /// Threads for the runtime's kernels; 0 uses every hardware thread.
  unsigned threads = 0;
};

/// Runs `model` on the text in the file at `textPath`; the module is not
/// changed (attachStatistics puts the result in it). Errors are one
/// sentence naming the file or the model.
kvrt::StatusOr<Statistics> calibrate(const import::ImportedModel &model,
                                     const std::string &textPath,
                                     const CalibrationOptions &options);

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_CALIBRATE_H
