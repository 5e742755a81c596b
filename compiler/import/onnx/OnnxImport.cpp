//===- OnnxImport.cpp - ONNX models into kv modules -----------------------===//
#include "compiler/import/onnx/OnnxImport.h"
#include "compiler/import/DecoderBuilder.h"
#include "compiler/import/onnx/OnnxDecoder.h"

#include "kvrt/MappedFile.h"

namespace kvopt::import {

namespace {

/// The contents of `name` beside the model, or nothing when absent.
std::optional<std::string> readBeside(const std::string &path,
                                      const std::string &name) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  auto file = kvrt::MappedFile::open(dir + name);
  if (!file)
    return std::nullopt;
  return std::string(reinterpret_cast<const char *>((*file)->data()),
                     (*file)->size());
}

} // namespace

kvrt::StatusOr<ImportedModel> importOnnx(mlir::MLIRContext &context,
                                         const std::string &path) {
  auto model = formats::OnnxModel::open(path);
  if (!model)
    return model.status();
  kvrt::StatusOr<OnnxDecoder> decoder = recogniseDecoder(**model);
  if (!decoder)
    return decoder.status();
  OnnxWeights weights(*model, decoder->weights);
  auto module = buildDecoderModule(context, decoder->config, weights, path);
  if (!module)
    return module.status();
  ImportedModel imported;
  imported.module = std::move(*module);
  imported.config = decoder->config;
  imported.keepAlive = *model;
  // Exporters such as optimum write the tokenizer beside the model.
  if (auto tokenizer = readBeside(path, "tokenizer.json"))
    imported.tokenizer.tokenizerJson = std::move(*tokenizer);
  if (auto config = readBeside(path, "tokenizer_config.json"))
    imported.tokenizer.tokenizerConfigJson = std::move(*config);
  return imported;
}

} // namespace kvopt::import
