//===- Progress.cpp - Progress of long steps on a terminal ----------------===//
#include "tools/kvopt/Progress.h"

#include <chrono>
#include <cstdio>
#include <unistd.h>

namespace kvopt::cli {

/// Fastest redraw of a counter: more often would only flicker.
constexpr double kRedrawSeconds = 0.1;

static double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Progress::Progress(std::string command)
    : command_(std::move(command)), shown_(isatty(STDERR_FILENO) == 1),
      start_(now()) {}

Progress::~Progress() { clear(); }

void Progress::step(const std::string &what) {
  what_ = what;
  detail_.clear();
  draw();
  // The step's first detail is drawn at once, however soon it comes.
  lastDraw_ = -1;
}

void Progress::update(const std::string &detail) {
  detail_ = detail;
  if (lastDraw_ < 0 || now() - lastDraw_ >= kRedrawSeconds)
    draw();
}

void Progress::clear() {
  if (!drawn_)
    return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
  lastDraw_ = -1;
}

void Progress::draw() {
  if (!shown_)
    return;
  lastDraw_ = now();
  std::fprintf(stderr, "\r\033[Kkvopt %s: [%.1fs] %s...%s%s", command_.c_str(),
               lastDraw_ - start_, what_.c_str(), detail_.empty() ? "" : " ",
               detail_.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

} // namespace kvopt::cli
