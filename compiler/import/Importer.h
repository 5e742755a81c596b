//===- Importer.h - Any supported model file into a kv module ---*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_IMPORTER_H
#define KVOPT_COMPILER_IMPORT_IMPORTER_H

#include "compiler/import/ModelConfig.h"
#include "kvrt/Status.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <memory>
#include <string>

namespace kvopt::import {

/// Where the tokenizer of an imported model comes from: the files of a
/// Hugging Face folder, or the vocabulary in GGUF metadata. The compiler
/// carries it into the artifact unchanged.
struct TokenizerSource {
  /// Contents of tokenizer.json and tokenizer_config.json (HF folders).
  std::string tokenizerJson, tokenizerConfigJson;
  /// GGUF `tokenizer.ggml.*` fields.
  std::string ggmlModel, ggmlPre, chatTemplate;
  std::vector<std::string> tokens, merges;
  std::vector<float> scores;
  std::vector<int32_t> tokenTypes;
  std::optional<int64_t> bosId, eosId, unkId, padId;
  std::optional<bool> addBos, addEos;
};

struct ImportedModel {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  ModelConfig config;
  TokenizerSource tokenizer;
  /// Keeps the mapped source files alive while the module's weights
  /// point into them.
  std::shared_ptr<const void> keepAlive;
};

/// Imports a Hugging Face folder (config.json + safetensors), a .gguf file
/// or an .onnx file, chosen by what `path` is.
kvrt::StatusOr<ImportedModel> importModel(mlir::MLIRContext &context,
                                          const std::string &path);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_IMPORTER_H
