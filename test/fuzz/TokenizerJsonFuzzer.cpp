//===- TokenizerJsonFuzzer.cpp - tokenizer.json readers on any bytes ------===//
//
// The input is a tokenizer.json, or one and a tokenizer_config.json after
// its first NUL byte (the config's chat template and special tokens). A
// refusal must name the file; whatever the reader accepts, the runtime
// must build a tokenizer from and run.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include "FuzzCheck.h"

#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view input(reinterpret_cast<const char *>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view config = nul == std::string_view::npos
                                      ? std::string_view()
                                      : input.substr(nul + 1);
  kvrt::StatusOr<kvrt::TokenizerSpec> spec =
      kvrt::tokenizerSpecFromJson(json, config, "fuzz/tokenizer.json");
  if (!spec) {
    // The config's errors name the config beside the tokenizer.json.
    const std::string &message = spec.status().message();
    kvopt::fuzz::checkRefusal(
        spec.status(), message.rfind("fuzz/tokenizer_config.json", 0) == 0
                           ? "fuzz/tokenizer_config.json"
                           : "fuzz/tokenizer.json");
    return 0;
  }
  kvrt::StatusOr<kvrt::Tokenizer> tokenizer =
      kvrt::Tokenizer::create(std::move(*spec));
  kvopt::fuzz::require(tokenizer.isOk(),
                       "an accepted tokenizer.json makes no tokenizer:",
                       tokenizer ? "" : tokenizer.status().message());
  for (bool addSpecial : {false, true}) {
    const std::vector<int32_t> ids = tokenizer->encode(
        "Hello wörld <|im_start|> 12\n\t \xF0\x9F\x99\x82 ab", addSpecial);
    const std::string text = tokenizer->decode(ids, !addSpecial);
    kvopt::fuzz::require(kvrt::json::isValidUtf8(text), "decode is not UTF-8");
  }
  return 0;
}
