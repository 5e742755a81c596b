//===- GgufFuzzer.cpp - The GGUF reader on arbitrary bytes ----------------===//
#include "compiler/import/gguf/GgufFile.h"
#include "compiler/import/gguf/GgufTokenizer.h"

#include "FuzzCheck.h"

using namespace kvopt::formats;

namespace {

/// Walks a value the way the importers and the dump tool do.
void visit(const GgufValue &value) {
  (void)value.typeName();
  for (uint64_t i = 0; i < value.size(); ++i)
    visit(value.element(i));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  kvrt::StatusOr<GgufFile> file = GgufFile::openBuffer("fuzz.gguf", bytes);
  if (!file) {
    kvopt::fuzz::checkRefusal(file.status(), "fuzz.gguf");
    return 0;
  }
  for (const auto &[key, value] : file->metadata()) {
    visit(value);
    // Every typed getter either answers or explains itself.
    auto refusal = [&](const auto &result) {
      if (!result)
        kvopt::fuzz::checkRefusal(result.status(), "fuzz.gguf");
    };
    refusal(file->getString(key));
    refusal(file->getBool(key));
    refusal(file->getUInt(key));
    refusal(file->getInt(key));
    refusal(file->getPositiveInt(key));
    refusal(file->getFloat(key));
    refusal(file->getStringArray(key));
    refusal(file->getFloatArray(key));
    refusal(file->getInt32Array(key));
  }
  // A tokenizer in the metadata: read as the importer reads it; whatever
  // the runtime accepts, it must build and run.
  if (file->has("tokenizer.ggml.model")) {
    kvrt::StatusOr<kvrt::GgufTokenizerFields> fields =
        readGgufTokenizerFields(*file);
    if (!fields) {
      kvopt::fuzz::checkRefusal(fields.status(), "fuzz.gguf");
    } else {
      kvrt::StatusOr<kvrt::TokenizerSpec> spec =
          kvrt::tokenizerSpecFromGgufMetadata(*fields, "fuzz.gguf");
      if (!spec) {
        kvopt::fuzz::checkRefusal(spec.status(), "fuzz.gguf");
      } else {
        kvrt::StatusOr<kvrt::Tokenizer> tokenizer =
            kvrt::Tokenizer::create(std::move(*spec));
        kvopt::fuzz::require(tokenizer.isOk(),
                             "an accepted GGUF tokenizer makes no tokenizer:",
                             tokenizer ? "" : tokenizer.status().message());
        const std::vector<int32_t> ids =
            tokenizer->encode("Hello wörld <s> 12 \xF0\x9F\x99\x82", true);
        kvopt::fuzz::require(
            kvrt::json::isValidUtf8(tokenizer->decode(ids, false)),
            "decode is not UTF-8");
      }
    }
  }
  for (const TensorInfo &t : file->tensors()) {
    kvopt::fuzz::require(t.offset <= size && t.byteSize <= size - t.offset,
                         "tensor outside the file:", t.name);
    kvopt::fuzz::require(t.offset % file->alignment() == 0,
                         "misaligned tensor:", t.name);
    std::vector<float> values(t.numElements());
    kvopt::fuzz::require(
        dequantizeToF32(t.dtype, file->data(t), values.size(), values.data())
            .isOk(),
        "an accepted tensor does not convert:", t.name);
  }
  return 0;
}
