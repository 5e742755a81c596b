//===- GgufImport.h - GGUF files into kv modules ----------------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_GGUF_GGUFIMPORT_H
#define KVOPT_COMPILER_IMPORT_GGUF_GGUFIMPORT_H

#include "compiler/import/Importer.h"

namespace kvopt::import {

/// Imports a llama-architecture GGUF file: hyper-parameters from its
/// metadata, weights dequantized to f32 (Q4_0, Q4_1, Q8_0, F16 and BF16)
/// with the query and key rows put back in Hugging Face order, and the
/// tokenizer vocabulary.
kvrt::StatusOr<ImportedModel> importGguf(mlir::MLIRContext &context,
                                         const std::string &path);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_GGUF_GGUFIMPORT_H
