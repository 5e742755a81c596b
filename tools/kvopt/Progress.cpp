//===- Progress.cpp - Progress of long steps on a terminal ----------------===//
#include "tools/kvopt/Progress.h"

#include <chrono>
#include <cstdio>
#include <unistd.h>

namespace kvopt::cli {

static double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Progress::Progress(std::string command)
    : command_(std::move(command)), shown_(isatty(STDERR_FILENO) == 1),
      start_(now()) {}

Progress::~Progress() {
  if (shown_)
    std::fprintf(stderr, "\r\033[K");
}

void Progress::step(const std::string &what) {
  if (!shown_)
    return;
  std::fprintf(stderr, "\r\033[Kkvopt %s: [%.1fs] %s...", command_.c_str(),
               now() - start_, what.c_str());
  std::fflush(stderr);
}

} // namespace kvopt::cli
