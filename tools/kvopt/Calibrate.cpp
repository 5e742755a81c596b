//===- Calibrate.cpp - kvopt calibrate, and calibration in compile --------===//
//
// `kvopt calibrate` runs the model on text and writes the statistics to a
// JSON file (docs/calibration.md); `kvopt compile --calibrate` does
// the same into the module, and `--calibration` reads such a file back.
// `kvopt calibrate --lowrank-report` also writes what a rank-r PCA basis of
// the keys and values would discard (docs/lowrank.md).
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Calibrate.h"

#include "compiler/InitAll.h"
#include "compiler/calibrate/Calibrate.h"
#include "compiler/calibrate/LowRank.h"
#include "compiler/calibrate/StatisticsJson.h"
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/LowRankReport.h"
#include "tools/kvopt/OutputFile.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <limits>

namespace kvopt::cli {

namespace {
struct CalibrateOptions {
  std::string model, data, output, lowRankReport;
  int64_t tokens = calibrate::CalibrationOptions().tokens;
};

int runCalibrate(const CalibrateOptions &o) {
  auto fail = [](const std::string &message) {
    std::cerr << "kvopt calibrate: " << message << "\n";
    return 1;
  };
  if (std::string problem = outputFileProblem(o.output); !problem.empty())
    return fail("-o: " + problem);
  if (std::string problem = outputFileProblem(o.lowRankReport);
      !problem.empty())
    return fail("--lowrank-report: " + problem);
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext context(registry);

  Progress progress("calibrate");
  std::string modelPath = resolveModelPath(o.model);
  progress.step("importing " + modelPath);
  kvrt::StatusOr<import::ImportedModel> imported =
      import::importModel(context, modelPath);
  if (!imported)
    return fail(imported.status().message());

  progress.step("running the model on " + o.data);
  calibrate::CalibrationOptions options;
  options.tokens = o.tokens;
  kvrt::StatusOr<calibrate::Statistics> stats =
      calibrate::calibrate(*imported, o.data, options);
  if (!stats)
    return fail(stats.status().message());

  // The report comes first, so that a failure leaves no file behind.
  std::vector<calibrate::LayerLowRank> report;
  if (!o.lowRankReport.empty()) {
    progress.step("computing the low-rank report");
    kvrt::StatusOr<std::vector<calibrate::LayerLowRank>> computed =
        calibrate::lowRankReport(*stats, o.data);
    if (!computed)
      return fail(computed.status().message());
    report = std::move(*computed);
  }

  progress.step("writing " + o.output);
  std::string json = calibrate::statisticsToJson(*stats);
  int written = writeOutputFile(o.output, [&](std::ostream &os) {
    os << json;
    return bool(os);
  });
  if (written || o.lowRankReport.empty())
    return written;
  // The table goes to stdout, unless the statistics went there.
  printLowRankTable(o.output == "-" ? std::cerr : std::cout, *stats, report);
  progress.step("writing " + o.lowRankReport);
  return writeOutputFile(o.lowRankReport, [&](std::ostream &os) {
    writeLowRankJson(os, *stats, report);
    return bool(os);
  });
}
} // namespace

void addCalibrationOptions(CLI::App &compile, CompileCalibration &options) {
  options.tokens = calibrate::CalibrationOptions().tokens;
  CLI::Option *text = compile.add_option(
      "--calibrate", options.text,
      "Run the model on this text and record the statistics that fp8 and "
      "nvfp4 scales and TriAttention need, before the passes");
  compile
      .add_option("--calibrate-tokens", options.tokens,
                  "Text tokens --calibrate runs the model on, at most")
      ->check(CLI::Range(int64_t(1), std::numeric_limits<int64_t>::max()))
      ->needs(text);
  compile
      .add_option("--calibration", options.statistics,
                  "Read the statistics from a file `kvopt calibrate` wrote")
      ->excludes(text);
}

kvrt::Status applyCalibration(const CompileCalibration &options,
                              import::ImportedModel &model,
                              Progress &progress) {
  if (!options.text.empty()) {
    progress.step("calibrating on " + options.text);
    calibrate::CalibrationOptions calibration;
    calibration.tokens = options.tokens;
    kvrt::StatusOr<calibrate::Statistics> stats =
        calibrate::calibrate(model, options.text, calibration);
    if (!stats)
      return stats.status();
    return calibrate::attachStatistics(*model.module, *stats, options.text);
  }
  if (!options.statistics.empty()) {
    progress.step("reading " + options.statistics);
    kvrt::StatusOr<calibrate::Statistics> stats =
        calibrate::readStatisticsFile(options.statistics);
    if (!stats)
      return stats.status();
    return calibrate::attachStatistics(*model.module, *stats,
                                       options.statistics);
  }
  return kvrt::Status::ok();
}

void addCalibrateCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App *sub = app.add_subcommand(
      "calibrate", "Run a model on text and record the per-layer, per-head "
                   "statistics that quantization scales and TriAttention "
                   "need");
  sub->add_option("model", o->model, "Model folder, .gguf, .onnx or `default`")
      ->required();
  sub->add_option("--data", o->data, "Calibration text file")->required();
  sub->add_option("--tokens", o->tokens,
                  "Text tokens to run the model on, at most")
      ->check(CLI::Range(int64_t(1), std::numeric_limits<int64_t>::max()));
  sub->add_option("-o,--output", o->output,
                  "Statistics file to write (JSON, - for stdout)")
      ->required();
  sub->add_option("--lowrank-report", o->lowRankReport,
                  "Also write, per layer, what a rank-r PCA basis of the keys "
                  "(before RoPE) and values discards (JSON), and print it as "
                  "a table");
  sub->callback([o, &exitCode] { exitCode = runCalibrate(*o); });
}

} // namespace kvopt::cli
