//===- Progress.h - Progress of long steps on a terminal --------*- C++ -*-===//
#ifndef KVOPT_TOOLS_KVOPT_PROGRESS_H
#define KVOPT_TOOLS_KVOPT_PROGRESS_H

#include <string>

namespace kvopt::cli {

/// One status line on stderr that each step replaces, with the seconds the
/// previous steps took; shown only when stderr is a terminal, so logs and
/// pipes stay quiet. The line is cleared when the Progress goes away.
class Progress {
public:
  explicit Progress(std::string command);
  ~Progress();
  Progress(const Progress &) = delete;
  Progress &operator=(const Progress &) = delete;

  /// Starts a step: "kvopt <command>: [<seconds>] <what>...".
  void step(const std::string &what);
  /// Shows `detail` (a counter) after the current step's text. Drawn the
  /// first time after a step, then at most ten times a second, so that a
  /// counter may be updated for every token or write.
  void update(const std::string &detail);
  /// Removes the line, for other output to reach the terminal; the next
  /// step() or update() draws it again.
  void clear();

private:
  void draw();

  std::string command_;
  /// The current step, and the detail update() last gave.
  std::string what_, detail_;
  bool shown_;
  /// The line is on the terminal now.
  bool drawn_ = false;
  double start_;
  /// When draw() last ran; negative right after a step or a clear().
  double lastDraw_ = -1;
};

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_PROGRESS_H
