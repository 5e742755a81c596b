//===- RemoveOnExit.h - Sequences removed when a walk stops early -*- C++
//-*-===//
#ifndef KVOPT_TOOLS_KVOPT_REMOVEONEXIT_H
#define KVOPT_TOOLS_KVOPT_REMOVEONEXIT_H

#include "kvrt/Runtime.h"

#include <vector>

namespace kvopt::cli {

/// Removes from `engine` the sequences still in `running` (entries with a
/// `sequence` member) when the scope ends, e.g. on an error part-way: their
/// cache pages go back to the pool.
template <typename Running> struct RemoveOnExit {
  kvrt::Engine &engine;
  std::vector<Running> &running;
  ~RemoveOnExit() {
    for (const Running &r : running)
      (void)engine.removeSequence(r.sequence);
  }
};

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_REMOVEONEXIT_H
