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

  void step(const std::string &what);

private:
  std::string command_;
  bool shown_;
  double start_;
};

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_PROGRESS_H
