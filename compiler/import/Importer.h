//===- Importer.h - Any supported model file into a kv module ---*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_IMPORTER_H
#define KVOPT_COMPILER_IMPORT_IMPORTER_H

#include "compiler/import/ModelConfig.h"
#include "compiler/import/Weights.h"
#include "kvrt/Status.h"
#include "kvrt/Tokenizer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <memory>
#include <string>

namespace kvopt::import {

/// Where the tokenizer of an imported model comes from: the files of a
/// Hugging Face folder, or the vocabulary in GGUF metadata (or in a
/// SentencePiece tokenizer.model, read into the same fields). The compiler
/// carries it into the artifact unchanged.
struct TokenizerSource {
  /// Contents of tokenizer.json and tokenizer_config.json (HF folders).
  std::string tokenizerJson, tokenizerConfigJson;
  /// GGUF `tokenizer.*` fields, or those of a tokenizer.model.
  std::optional<kvrt::GgufTokenizerFields> gguf;
  /// Where the tokenizer was read from, for error messages.
  std::string sourceName;
};

struct ImportedModel {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  ModelConfig config;
  TokenizerSource tokenizer;
  /// The weights the module names without holding them (a synthetic
  /// model's), for the exporter.
  DeferredWeights deferred;
  /// The weights the source holds in a block format (GGUF's), which the
  /// exporter stores as such.
  BlockWeights blocks;
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
