//===- Unbuilt.cpp - Subcommands whose capability is not built yet --------===//
//
// These subcommands take their final options so that --help documents them,
// but refuse to run with one sentence and exit code 2 until the capability
// behind them exists: never fake output.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Commands.h"

#include <CLI/CLI.hpp>

#include <memory>

namespace kvopt::cli {

namespace {
struct Options {
  std::string model, output;
  std::string target = "cpu";
  int context = 0;
  double maxQualityLoss = 0.01;
};

/// Registers `name` with `setup` adding its options, refusing to run.
void addUnbuilt(CLI::App &app, int &exitCode, const char *name,
                const char *description, const char *reason,
                void (*setup)(CLI::App &, Options &)) {
  auto options = std::make_shared<Options>();
  CLI::App *sub = app.add_subcommand(name, description);
  setup(*sub, *options);
  sub->callback([&exitCode, name, reason, options] {
    exitCode = reportUnavailable(name, reason);
  });
}
} // namespace

void addTuneCommand(CLI::App &app, int &exitCode) {
  addUnbuilt(app, exitCode, "tune",
             "Search compression settings for a target within a quality budget",
             "tuning is not built yet in this version of kvopt.",
             [](CLI::App &sub, Options &o) {
               sub.add_option("model", o.model,
                              "Model folder, .gguf, .onnx or "
                              "`default`")
                   ->required();
               sub.add_option("--target", o.target, "cpu | h100 | h200 | b200");
               sub.add_option("--max-quality-loss", o.maxQualityLoss,
                              "Largest relative perplexity increase allowed");
               sub.add_option("--context", o.context,
                              "Context length in tokens");
               sub.add_option("-o,--output", o.output, "Policy file to write")
                   ->required();
             });
}

} // namespace kvopt::cli
