//===- SentencePieceFuzzer.cpp - The tokenizer.model reader on any bytes --===//
#include "compiler/import/sentencepiece/SentencePieceModel.h"

#include "FuzzCheck.h"

using namespace kvopt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  kvrt::StatusOr<kvrt::GgufTokenizerFields> fields =
      formats::readSentencePieceModel(
          formats::FileBytes::fromBuffer("fuzz.model", bytes));
  if (!fields) {
    fuzz::checkRefusal(fields.status(), "fuzz.model");
    return 0;
  }
  // The importer refuses a model without BOS or EOS before the runtime
  // sees it; whatever else the reader accepts, the runtime must take and
  // tokenize.
  if (!fields->bosId || !fields->eosId)
    return 0;
  kvrt::StatusOr<kvrt::TokenizerSpec> spec =
      kvrt::tokenizerSpecFromGgufMetadata(*fields, "fuzz.model");
  fuzz::require(spec.isOk(), "an accepted model has no tokenizer spec:",
                spec ? "" : spec.status().message());
  kvrt::StatusOr<kvrt::Tokenizer> tokenizer =
      kvrt::Tokenizer::create(std::move(*spec));
  fuzz::require(tokenizer.isOk(), "an accepted model makes no tokenizer:",
                tokenizer ? "" : tokenizer.status().message());
  std::vector<int32_t> ids =
      tokenizer->encode("Hello wörld <s> 12 \xF0\x9F\x99\x82", true);
  std::string text = tokenizer->decode(ids, false);
  fuzz::require(kvrt::json::isValidUtf8(text), "decode is not UTF-8");
  return 0;
}
