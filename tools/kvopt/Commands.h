//===- Commands.h - The subcommands of kvopt --------------------*- C++ -*-===//
//
// Each subcommand registers its options on the CLI11 app and, when chosen,
// stores its exit code: 0 on success, 1 on bad input or failure, 2 when the
// capability is not part of this build.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_COMMANDS_H
#define KVOPT_TOOLS_KVOPT_COMMANDS_H

#include <cstdint>
#include <string>

namespace CLI {
class App;
} // namespace CLI

namespace kvrt {
struct EngineOptions;
} // namespace kvrt

namespace kvopt::cli {

void addImportCommand(CLI::App &app, int &exitCode);
void addCompileCommand(CLI::App &app, int &exitCode);
void addRunCommand(CLI::App &app, int &exitCode);
void addEvalCommand(CLI::App &app, int &exitCode);
void addBenchCommand(CLI::App &app, int &exitCode);
void addInspectCommand(CLI::App &app, int &exitCode);
void addTuneCommand(CLI::App &app, int &exitCode);
void addServeCommand(CLI::App &app, int &exitCode);
void addCalibrateCommand(CLI::App &app, int &exitCode);

/// --threads, --backend and --page-size of a subcommand that runs an
/// artifact, stored into `options`.
void addEngineOptions(CLI::App &sub, kvrt::EngineOptions &options);

/// Says in one sentence that `command` is not part of this build and why,
/// and returns the exit code for it (2).
int reportUnavailable(const std::string &command, const std::string &reason);

/// "539.17 MB": decimal megabytes, as file sizes are usually shown.
std::string megabytes(uint64_t bytes);

/// `value` printed by the printf `pattern` ("%.2f%%"), one number.
std::string format(const char *pattern, double value);

/// "512" or "139.50": bytes per token, with two decimals when fractional.
std::string bytesPerToken(double bytes);

/// Where scripts/setup.sh installs the default model and the evaluation
/// text: $KVOPT_DATA_DIR, else $XDG_DATA_HOME/kvopt, else
/// ~/.local/share/kvopt.
std::string dataDirectory();

/// Resolves the word `default` to the installed default model (see
/// scripts/fetch-default-model.sh); any other path is returned unchanged.
std::string resolveModelPath(const std::string &model);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_COMMANDS_H
