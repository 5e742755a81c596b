//===- CalibrationFuzzer.cpp - Calibration statistics on any bytes --------===//
//
// `kvopt compile --calibration FILE` reads statistics a user may have
// edited or got from anywhere. A refusal must name the file; an accepted
// file must write back (statisticsToJson) as a document that reads to the
// same statistics, byte for byte when written again.
//
//===----------------------------------------------------------------------===//
#include "compiler/calibrate/StatisticsJson.h"

#include "FuzzCheck.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  kvrt::StatusOr<kvopt::calibrate::Statistics> stats =
      kvopt::calibrate::statisticsFromJson(text, "fuzz/stats.json");
  if (!stats) {
    kvopt::fuzz::checkRefusal(stats.status(), "fuzz/stats.json");
    return 0;
  }
  const std::string written = kvopt::calibrate::statisticsToJson(*stats);
  kvrt::StatusOr<kvopt::calibrate::Statistics> again =
      kvopt::calibrate::statisticsFromJson(written, "fuzz/stats.json");
  kvopt::fuzz::require(again.isOk(), "written statistics do not read back:",
                       again ? "" : again.status().message());
  kvopt::fuzz::require(kvopt::calibrate::statisticsToJson(*again) == written,
                       "statistics change when written and read back");
  return 0;
}
