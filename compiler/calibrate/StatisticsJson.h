//===- StatisticsJson.h - Calibration statistics as a JSON file -*- C++ -*-===//
//
// `kvopt calibrate` writes the statistics to a JSON file and `kvopt compile
// --calibration` reads them back; docs/calibration.md specifies the
// file. The reader takes the file as hostile input.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_STATISTICSJSON_H
#define KVOPT_COMPILER_CALIBRATE_STATISTICSJSON_H

#include "compiler/calibrate/Statistics.h"

#include <string>
#include <string_view>

namespace kvopt::calibrate {

/// The statistics as a JSON document; every f32 is written so that it reads
/// back to the same value.
std::string statisticsToJson(const Statistics &stats);

/// Parses and checks a statistics document; errors are one sentence naming
/// `fileName` and the field at fault.
kvrt::StatusOr<Statistics> statisticsFromJson(std::string_view text,
                                              const std::string &fileName);

/// Reads the statistics file at `path`.
kvrt::StatusOr<Statistics> readStatisticsFile(const std::string &path);

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_STATISTICSJSON_H
