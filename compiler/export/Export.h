//===- Export.h - A kv module into a .kvpkg artifact ------------*- C++ -*-===//
//
// The last step of `kvopt compile`: the @forward function of a kv module
// becomes the artifact's execution plan (one kernel call per op), its
// dense_resource weights become blobs, each kv.cache type becomes the cache
// layout of its layer, and the model's hyper-parameters, tokenizer, target
// and the passes that ran are recorded in the manifest.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_EXPORT_EXPORT_H
#define KVOPT_COMPILER_EXPORT_EXPORT_H

#include "compiler/Pipeline.h"
#include "compiler/import/Importer.h"
#include "kvrt/ArtifactWriter.h"
#include "kvrt/Status.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace kvopt::exporter {

struct ExportOptions {
  /// "cpu", "h100", "h200".
  std::string target = "cpu";
  /// The passes that ran, as runPipeline reports them.
  std::vector<PassRecord> passes;
  /// Stores every layer's cache as f32 whatever the module's encodings say,
  /// so that the artifact computes exactly what the model does (calibration
  /// runs it); no scale tensors are written.
  bool float32Cache = false;
  /// The weights the module names without holding them (its
  /// `dense_resource`s without a blob), by resource key: a producer streams
  /// each into the artifact when it is written (so it must live until
  /// then), or the artifact records how the runtime generates it.
  const import::DeferredWeights *deferred = nullptr;
  /// Weights whose source holds them in a block format, by the key of the
  /// `dense_resource` holding their f32 values: each is stored as its
  /// blocks where the module's values still equal the blocks' (no pass
  /// changed it), and as those values otherwise.
  const import::BlockWeights *blocks = nullptr;
};

/// Fills `writer` from `module`: plan, tensors and cache layout from its
/// @forward function, everything else from `config` and `tokenizer`. The
/// module's weights are not copied: `writer.write()` reads them, so the
/// module (and the files it maps) must live until then. Errors name the op
/// (by its location) that the runtime cannot run.
kvrt::Status exportModule(mlir::ModuleOp module,
                          const import::ModelConfig &config,
                          const import::TokenizerSource &tokenizer,
                          const ExportOptions &options,
                          kvrt::ArtifactWriter &writer);

/// The plan, tensors and cache layout alone (PlanExport.cpp). The cache
/// layout of an fp8 per_head or nvfp4 encoding carries a tensor of scales
/// computed from the calibration statistics on its kv.cache op; fp8
/// per_head without them is an error.
kvrt::Status exportPlan(mlir::ModuleOp module, const ExportOptions &options,
                        kvrt::ArtifactWriter &writer);

} // namespace kvopt::exporter

#endif // KVOPT_COMPILER_EXPORT_EXPORT_H
