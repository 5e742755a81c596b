//===- Common.cpp - Shared pieces of the kvopt subcommands ----------------===//
#include "tools/kvopt/Commands.h"

#include "kvrt/Runtime.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace kvopt::cli {

int reportUnavailable(const std::string &command, const std::string &reason) {
  std::cerr << "kvopt " << command << ": " << reason << "\n";
  return 2;
}

std::string megabytes(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MB", double(bytes) / 1e6);
  return text;
}

std::string format(const char *pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string bytesPerToken(double bytes) {
  char text[32];
  // Whole numbers stay whole; shared scales make fractions of a byte.
  std::snprintf(text, sizeof text,
                bytes == double(uint64_t(bytes)) ? "%.0f" : "%.2f", bytes);
  return text;
}

void addEngineOptions(CLI::App &sub, kvrt::EngineOptions &options) {
  sub.add_option("--threads", options.threads, "Threads (0: every core)");
  sub.add_option("--backend", options.backend,
                 "cpu (the reference) | cuda (the first GPU, where built)")
      ->capture_default_str();
  sub.add_option("--page-size", options.pageSize,
                 "Tokens per cache page (0: the artifact's)");
}

std::string dataDirectory() {
  if (const char *dir = std::getenv("KVOPT_DATA_DIR"))
    return dir;
  if (const char *xdg = std::getenv("XDG_DATA_HOME"))
    return std::string(xdg) + "/kvopt";
  if (const char *home = std::getenv("HOME"))
    return std::string(home) + "/.local/share/kvopt";
  return "";
}

std::string resolveModelPath(const std::string &model) {
  if (model != "default")
    return model;
  return dataDirectory() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

} // namespace kvopt::cli
