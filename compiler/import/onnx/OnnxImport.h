//===- OnnxImport.h - ONNX models into kv modules ---------------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_ONNX_ONNXIMPORT_H
#define KVOPT_COMPILER_IMPORT_ONNX_ONNXIMPORT_H

#include "compiler/import/Importer.h"

namespace kvopt::import {

/// Imports the Llama-family decoder in the .onnx file at `path` (opset-23
/// Attention / RotaryEmbedding / RMSNormalization, or the decomposed form
/// of torch.onnx and optimum), weights inline or external in its folder,
/// and tokenizer.json from that folder when there is one.
kvrt::StatusOr<ImportedModel> importOnnx(mlir::MLIRContext &context,
                                         const std::string &path);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_ONNX_ONNXIMPORT_H
