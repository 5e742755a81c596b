//===- LayerSelection.h - The layers a kv pass applies to -------*- C++ -*-===//
//
// kv-quantize and kv-evict both take `layers=` and phrase their option errors
// alike; this is that shared part, with the pass's name for the messages.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_PASSES_LAYERSELECTION_H
#define KVOPT_PASSES_LAYERSELECTION_H

#include "compiler/policy/LayerRange.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"

namespace mlir::kv {

/// Starts an error about option `option` of pass `pass`, both as written on
/// the command line: "kv-evict: option 'budget' ", for the caller to go on.
InFlightDiagnostic emitOptionError(MLIRContext *ctx, StringRef pass,
                                   StringRef option);

/// The layers of one module a pass applies to, as absolute ranges.
class SelectedLayers {
public:
  explicit SelectedLayers(SmallVector<kvopt::policy::LayerRange> ranges)
      : ranges(std::move(ranges)) {}

  bool contains(int64_t layer) const;

private:
  SmallVector<kvopt::policy::LayerRange> ranges;
};

/// A pass's `layers=` option. It is parsed once, before the pass sees any IR,
/// but negative indices count from the end, so which layers it names is only
/// known per module.
class LayerSelection {
public:
  /// `pass` names the pass in errors.
  explicit LayerSelection(StringRef pass) : pass(pass) {}

  /// Parses the option's texts, replacing what an earlier call parsed.
  LogicalResult parse(MLIRContext *ctx, ArrayRef<std::string> texts);

  /// The layers of `module` the option names: all of them when it was not
  /// given. The module has as many layers as its highest kv.cache layer says.
  FailureOr<SelectedLayers> resolve(ModuleOp module) const;

private:
  StringRef pass;
  /// As written, with negative indices.
  SmallVector<kvopt::policy::LayerRange> ranges;
};

} // namespace mlir::kv

#endif // KVOPT_PASSES_LAYERSELECTION_H
