//===- DecoderBuilder.h - A kv module for a Llama-family decoder -*- C++
//-*-===//
#ifndef KVOPT_COMPILER_IMPORT_DECODERBUILDER_H
#define KVOPT_COMPILER_IMPORT_DECODERBUILDER_H

#include "compiler/import/ModelConfig.h"
#include "compiler/import/Weights.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace kvopt::import {

/// Builds `func.func @forward(%tokens, %positions) -> logits` for the
/// decoder `config` describes, reading every weight from `weights` into a
/// `dense_resource` blob that shares the source's memory (no copy for
/// mapped files). `sourceName` is recorded on the module. A weight with
/// deferred bytes becomes a `dense_resource` without a blob, its bytes
/// recorded in `deferred` by the resource's key; without `deferred`, such a
/// weight is an error. Weights the source holds in a block format are
/// recorded in `blocks` (if given) by the key of the resource holding their
/// values.
kvrt::StatusOr<mlir::OwningOpRef<mlir::ModuleOp>>
buildDecoderModule(mlir::MLIRContext &context, const ModelConfig &config,
                   WeightSource &weights, const std::string &sourceName,
                   DeferredWeights *deferred = nullptr,
                   BlockWeights *blocks = nullptr);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_DECODERBUILDER_H
