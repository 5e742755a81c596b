//===- JsonFuzzer.cpp - kvrt::json::parse on arbitrary bytes --------------===//
#include "FuzzCheck.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  kvrt::StatusOr<kvrt::json::Value> value =
      kvrt::json::parse(text, "fuzz.json");
  if (!value) {
    kvopt::fuzz::checkRefusal(value.status(), "fuzz.json");
    return 0;
  }
  // An accepted document is valid UTF-8 throughout.
  kvopt::fuzz::require(kvrt::json::isValidUtf8(text),
                       "accepted a document that is not UTF-8");
  return 0;
}
