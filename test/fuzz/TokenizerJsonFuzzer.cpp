//===- TokenizerJsonFuzzer.cpp - tokenizer.json readers on any bytes ------===//
//
// The input is a tokenizer.json, or one and a tokenizer_config.json after
// its first NUL byte (the config's chat template and special tokens), and
// after a second NUL any bytes to encode (malformed UTF-8 included). A
// refusal must name the file; whatever the reader accepts, the runtime
// must build a tokenizer from and run on a fixed text and on those bytes.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include "FuzzCheck.h"

#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view input(reinterpret_cast<const char *>(data), size);
  // Up to three parts, split at the first two NULs.
  std::string_view parts[3];
  for (int i = 0; i < 3; ++i) {
    const size_t nul = i < 2 ? input.find('\0') : std::string_view::npos;
    parts[i] = input.substr(0, nul);
    if (nul == std::string_view::npos)
      break;
    input.remove_prefix(nul + 1);
  }
  const std::string_view json = parts[0], config = parts[1], text = parts[2];
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
    for (std::string_view sample :
         {std::string_view(
              "Hello wörld <|im_start|> 12\n\t \xF0\x9F\x99\x82 ab"),
          text}) {
      const std::vector<int32_t> ids = tokenizer->encode(sample, addSpecial);
      kvopt::fuzz::require(
          kvrt::json::isValidUtf8(tokenizer->decode(ids, !addSpecial)),
          "decode is not UTF-8");
    }
  }
  return 0;
}
