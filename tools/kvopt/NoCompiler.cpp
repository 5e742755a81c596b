//===- NoCompiler.cpp - kvopt built without the compiler ------------------===//
//
// With KVOPT_ENABLE_COMPILER=OFF, kvopt is the runtime's tool only: the
// subcommands that need MLIR say so instead of existing half-way.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Commands.h"

#include <CLI/CLI.hpp>

namespace kvopt::cli {

static void addRuntimeOnly(CLI::App &app, int &exitCode, const char *name,
                           const char *description) {
  CLI::App *sub = app.add_subcommand(name, description);
  sub->allow_extras();
  sub->callback([&exitCode, name] {
    exitCode = reportUnavailable(
        name, "this kvopt was built without the compiler "
              "(KVOPT_ENABLE_COMPILER=OFF); use a full build.");
  });
}

void addImportCommand(CLI::App &app, int &exitCode) {
  addRuntimeOnly(app, exitCode, "import",
                 "Read a model into a kv module (needs the compiler)");
}

void addCompileCommand(CLI::App &app, int &exitCode) {
  addRuntimeOnly(app, exitCode, "compile",
                 "Compile a model into a .kvpkg artifact (needs the compiler)");
}

void addTuneCommand(CLI::App &app, int &exitCode) {
  addRuntimeOnly(app, exitCode, "tune",
                 "Find the smallest KV cache within a perplexity budget "
                 "(needs the compiler)");
}

void addCalibrateCommand(CLI::App &app, int &exitCode) {
  addRuntimeOnly(app, exitCode, "calibrate",
                 "Record statistics of a model on text (needs the compiler)");
}

} // namespace kvopt::cli
