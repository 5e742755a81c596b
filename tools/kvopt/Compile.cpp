//===- Compile.cpp - kvopt compile: a model into a .kvpkg artifact --------===//
#include "tools/kvopt/Compile.h"
#include "compiler/InitAll.h"
#include "compiler/Pipeline.h"
#include "compiler/export/Export.h"
#include "compiler/import/Importer.h"
#include "compiler/import/synthetic/SyntheticImport.h"
#include "compiler/policy/Policy.h"
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/OutputFile.h"
#include "tools/kvopt/Progress.h"

#include "kvrt/ArtifactWriter.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <mutex>
#include <optional>

namespace kvopt::cli {

namespace {
/// The model named on the command line: a file or folder, or a preset.
kvrt::StatusOr<import::ImportedModel> importChosen(mlir::MLIRContext &context,
                                                   const CompileOptions &o,
                                                   Progress &progress) {
  if (!o.synthetic.empty()) {
    progress.step("making the synthetic model " + o.synthetic);
    return import::importSynthetic(context, o.synthetic, o.seed.value_or(0),
                                   o.syntheticWeights == "generated"
                                       ? import::SyntheticWeights::Generated
                                       : import::SyntheticWeights::Stored);
  }
  std::string modelPath = resolveModelPath(o.model);
  progress.step("importing " + modelPath);
  return import::importModel(context, modelPath);
}

} // namespace

kvrt::Status compileArtifact(const CompileOptions &o,
                             const std::string &pipeline, Progress &progress) {
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  // Once per process: kvopt tune compiles several artifacts.
  static std::once_flag passesRegistered;
  std::call_once(passesRegistered, registerAllPasses);
  mlir::MLIRContext context(registry);

  kvrt::StatusOr<import::ImportedModel> imported =
      importChosen(context, o, progress);
  if (!imported)
    return imported.status();
  kvrt::Status calibrated =
      applyCalibration(o.calibration, *imported, progress);
  if (!calibrated)
    return calibrated;

  progress.step("running the passes");
  kvrt::StatusOr<std::vector<PassRecord>> passes =
      runPipeline(*imported->module, pipeline);
  if (!passes)
    return passes.status();

  progress.step("building the plan");
  kvrt::ArtifactWriter writer;
  exporter::ExportOptions options;
  options.target = o.target;
  options.passes = *passes;
  options.deferred = &imported->deferred;
  options.blocks = &imported->blocks;
  kvrt::Status exported =
      exporter::exportModule(*imported->module, imported->config,
                             imported->tokenizer, options, writer);
  if (!exported)
    return exported;

  progress.step("writing " + o.output);
  return writer.write(o.output);
}

namespace {
int runCompile(const CompileOptions &o) {
  Progress progress("compile");
  auto fail = [&](const std::string &message) {
    progress.clear();
    std::cerr << "kvopt compile: " << message << "\n";
    return 1;
  };
  if (!o.policy.empty() && !o.passes.empty())
    return fail("give the passes with --policy or with --passes, not both");
  if (o.model.empty() == o.synthetic.empty())
    return fail(o.model.empty() ? "give a model (a folder, .gguf, .onnx or "
                                  "`default`) or --synthetic NAME"
                                : "give a model or --synthetic NAME, not "
                                  "both");
  if ((o.seed || !o.syntheticWeights.empty()) && o.synthetic.empty())
    return fail("--seed and --synthetic-weights are for a --synthetic model "
                "only");
  // Before importing, calibrating and compiling, which may take minutes.
  if (std::string problem = outputFileProblem(o.output); !problem.empty())
    return fail("-o: " + problem);
  std::string pipeline = o.passes;
  if (!o.policy.empty()) {
    kvrt::StatusOr<policy::Policy> read = policy::readPolicyFile(o.policy);
    if (!read)
      return fail(read.status().message());
    pipeline = policy::pipelineText(*read);
  }
  kvrt::Status compiled = compileArtifact(o, pipeline, progress);
  if (!compiled)
    return fail(compiled.message());
  return 0;
}
} // namespace

void addCompileCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<CompileOptions>();
  CLI::App *sub = app.add_subcommand(
      "compile", "Compile a model into a .kvpkg artifact for a target");
  sub->add_option("model", o->model,
                  "Model folder, .gguf, .onnx or `default` (or --synthetic)");
  std::string presets;
  for (const auto &[name, summary] : import::syntheticPresets())
    presets += "\n  " + name + ": " + summary;
  sub->add_option("--synthetic", o->synthetic,
                  "Instead of a model: a preset of shapes with random bf16 "
                  "weights and a byte-level tokenizer (docs/synthetic.md):" +
                      presets);
  sub->add_option("--seed", o->seed,
                  "Seed of a --synthetic model's weights (default 0)");
  sub->add_option("--synthetic-weights", o->syntheticWeights,
                  "Where a --synthetic model's weights go: stored (in the "
                  "artifact; the default) or generated (by the runtime as it "
                  "loads the artifact, which then holds none)")
      ->check(CLI::IsMember({"stored", "generated"}));
  sub->add_option("-o,--output", o->output, "Artifact to write")->required();
  sub->add_option("--target", o->target, "cpu | h100 | h200")
      ->check(CLI::IsMember({"cpu", "h100", "h200"}));
  sub->add_option("--passes", o->passes,
                  "Pass pipeline, as kvopt-opt spells it, e.g. "
                  "'kv-quantize{encoding=polar bits=3}'");
  sub->add_option("--policy", o->policy,
                  "Compression policy file (YAML, docs/policy.md), instead "
                  "of --passes");
  addCalibrationOptions(*sub, o->calibration);
  sub->callback([o, &exitCode] { exitCode = runCompile(*o); });
}

} // namespace kvopt::cli
