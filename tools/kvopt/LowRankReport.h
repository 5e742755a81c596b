//===- LowRankReport.h - kvopt calibrate --lowrank-report -------*- C++ -*-===//
#ifndef KVOPT_TOOLS_KVOPT_LOWRANKREPORT_H
#define KVOPT_TOOLS_KVOPT_LOWRANKREPORT_H

#include "compiler/calibrate/LowRank.h"

#include <ostream>

namespace kvopt::cli {

/// The report as JSON (docs/lowrank.md).
void writeLowRankJson(std::ostream &os, const calibrate::Statistics &stats,
                      const std::vector<calibrate::LayerLowRank> &layers);

/// The report as a table: a row per layer, side and basis, then the mean
/// and worst over layers.
void printLowRankTable(std::ostream &os, const calibrate::Statistics &stats,
                       const std::vector<calibrate::LayerLowRank> &layers);

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_LOWRANKREPORT_H
