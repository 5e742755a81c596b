//===- main.cpp - kvopt, the command-line driver --------------------------===//
#include "tools/kvopt/Commands.h"

#include <CLI/CLI.hpp>

int main(int argc, char **argv) {
  CLI::App app{"kvopt: compiles decoder-only LLMs for small KV caches and "
               "runs them"};
  app.require_subcommand(1, 1);
  app.set_version_flag("--version", "kvopt " KVOPT_VERSION);
  int exitCode = 0;
  kvopt::cli::addImportCommand(app, exitCode);
  kvopt::cli::addCompileCommand(app, exitCode);
  kvopt::cli::addCalibrateCommand(app, exitCode);
  kvopt::cli::addRunCommand(app, exitCode);
  kvopt::cli::addEvalCommand(app, exitCode);
  kvopt::cli::addBenchCommand(app, exitCode);
  kvopt::cli::addInspectCommand(app, exitCode);
  kvopt::cli::addTuneCommand(app, exitCode);
  kvopt::cli::addServeCommand(app, exitCode);
  CLI11_PARSE(app, argc, argv);
  return exitCode;
}
