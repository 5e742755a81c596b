//===- PolicyFuzzer.cpp - Policy files (YAML subset) on arbitrary bytes ---===//
#include "FuzzCheck.h"

#include "compiler/policy/Policy.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  kvrt::StatusOr<kvopt::policy::Policy> policy =
      kvopt::policy::parsePolicy(text, "fuzz.yaml");
  if (!policy) {
    kvopt::fuzz::checkRefusal(policy.status(), "fuzz.yaml");
    return 0;
  }
  // An accepted policy becomes passes with options inside one pair of
  // braces each, written from words, numbers (0.25) and layer ranges only: no
  // file can inject pipeline syntax.
  std::string pipeline = kvopt::policy::pipelineText(*policy);
  int depth = 0;
  for (char c : pipeline) {
    bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '-' || c == '=' || c == '.';
    depth += c == '{' ? 1 : c == '}' ? -1 : 0;
    kvopt::fuzz::require(word || c == '{' || c == '}' || c == ',' || c == ' ',
                         "pipeline holds an unexpected character:", pipeline);
    kvopt::fuzz::require(depth == 0 || depth == 1,
                         "pipeline braces nest or close unopened:", pipeline);
    kvopt::fuzz::require(depth == 1 || c != ' ',
                         "pipeline has a space outside braces:", pipeline);
  }
  kvopt::fuzz::require(depth == 0, "pipeline leaves a brace open:", pipeline);
  return 0;
}
