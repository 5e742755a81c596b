//===- HfImport.h - Hugging Face folders into kv modules --------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_HF_HFIMPORT_H
#define KVOPT_COMPILER_IMPORT_HF_HFIMPORT_H

#include "compiler/import/Importer.h"

namespace kvopt::import {

/// Imports config.json, the safetensors weights (single or sharded) and the
/// tokenizer files of the folder `dir`.
kvrt::StatusOr<ImportedModel> importHuggingFace(mlir::MLIRContext &context,
                                                const std::string &dir);

/// Reads a whole small text file of a folder (config.json, tokenizer files).
kvrt::StatusOr<std::string> readHfText(const std::string &path);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_HF_HFIMPORT_H
