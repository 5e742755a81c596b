//===- LayerSelection.cpp - The layers a kv pass applies to ---------------===//
#include "passes/LayerSelection.h"
#include "dialects/kv/IR/KVOps.h"

using namespace mlir;
using namespace mlir::kv;
using kvopt::policy::LayerRange;

InFlightDiagnostic mlir::kv::emitOptionError(MLIRContext *ctx, StringRef pass,
                                             StringRef option) {
  InFlightDiagnostic diag = emitError(UnknownLoc::get(ctx));
  diag << pass << ": option '" << option << "' ";
  return diag;
}

bool SelectedLayers::contains(int64_t layer) const {
  return llvm::any_of(ranges, [&](LayerRange range) {
    return range.first <= layer && layer <= range.last;
  });
}

LogicalResult LayerSelection::parse(MLIRContext *ctx,
                                    ArrayRef<std::string> texts) {
  ranges.clear();
  for (const std::string &text : texts) {
    kvrt::StatusOr<LayerRange> range = kvopt::policy::parseLayerRange(text);
    if (!range)
      return emitError(UnknownLoc::get(ctx))
             << pass << ": option 'layers': " << range.status().message();
    ranges.push_back(*range);
  }
  return success();
}

/// One past the highest kv.cache layer in `module`; 0 without caches.
static int64_t countLayers(ModuleOp module) {
  int64_t layerCount = 0;
  module.walk([&](CacheOp op) {
    // The verifier guarantees non-negative layers, not small ones.
    int64_t layer = op.getLayerAttr().getInt();
    layerCount = std::max(layerCount, layer == INT64_MAX ? layer : layer + 1);
  });
  return layerCount;
}

FailureOr<SelectedLayers> LayerSelection::resolve(ModuleOp module) const {
  int64_t layerCount = countLayers(module);
  if (ranges.empty())
    return SelectedLayers({LayerRange{0, layerCount - 1}});
  SmallVector<LayerRange> absolute;
  for (LayerRange range : ranges) {
    kvrt::StatusOr<LayerRange> resolved =
        kvopt::policy::resolveLayerRange(range, layerCount);
    if (!resolved)
      return emitError(module.getLoc())
             << pass << ": option 'layers': " << resolved.status().message();
    absolute.push_back(*resolved);
  }
  return SelectedLayers(std::move(absolute));
}
