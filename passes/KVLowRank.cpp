//===- KVLowRank.cpp - Keys or values stored as latents on calibrated axes ===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/CacheTypes.h"
#include "passes/LayerSelection.h"
#include "passes/Passes.h"

#include <cmath>
#include <cstdio>

namespace mlir::kv {
#define GEN_PASS_DEF_KVLOWRANKPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

namespace {

struct KVLowRankPass : public kv::impl::KVLowRankPassBase<KVLowRankPass> {
  using KVLowRankPassBase::KVLowRankPassBase;

  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    return emitOptionError(ctx, "kv-lowrank", option);
  }

  LogicalResult initialize(MLIRContext *ctx) override {
    if (method != "pca")
      return optionError(ctx, "method")
             << "is '" << method
             << "'; only pca is built (svd and lrkv are not yet)";
    if (side != "value" && side != "key")
      return optionError(ctx, "side")
             << "is '" << side << "'; it must be key or value";
    const bool hasRatio = ratio != 0, hasRank = rank != 0;
    if (hasRatio == hasRank)
      return optionError(ctx, hasRatio ? "rank" : "ratio")
             << (hasRatio ? "is given with ratio; give one of them"
                          : "is missing; give ratio=R in (0, 1) or rank=N");
    if (hasRatio && !(ratio > 0 && ratio < 1)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", double(ratio));
      return optionError(ctx, "ratio")
             << "is " << text << "; it must be in (0, 1)";
    }
    return layerSelection.parse(ctx, layers);
  }

  /// The rank for heads of `headDim`, or an error on `op`.
  FailureOr<unsigned> rankFor(CacheOp op, int64_t headDim) {
    int64_t r = rank ? int64_t(rank)
                     : std::max<int64_t>(1, std::llround(ratio * headDim));
    if (r >= headDim)
      return op.emitError() << "kv-lowrank: rank " << r
                            << " keeps every coordinate of heads of " << headDim
                            << "; it must be below " << headDim;
    return unsigned(r);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkCachesStayInKVOps(module, "kv-lowrank")))
      return signalPassFailure();
    FailureOr<SelectedLayers> selected = layerSelection.resolve(module);
    if (failed(selected))
      return signalPassFailure();
    auto *dialect = getContext().getLoadedDialect<KVDialect>();
    WalkResult result = module.walk([&](CacheOp op) -> WalkResult {
      if (!selected->contains(op.getLayerAttr().getInt()))
        return WalkResult::advance();
      auto type = llvm::cast<CacheType>(op.getType());
      const bool keys = side == "key";
      bool calibrated =
          keys ? bool(dialect->getKeyAxesAttrHelper().getAttr(op))
               : bool(dialect->getValueAxesAttrHelper().getAttr(op));
      if (!calibrated)
        return op.emitError()
               << "kv-lowrank: layer " << op.getLayerAttr().getInt()
               << " has no calibrated " << side << " axes ('"
               << (keys ? KVDialect::KeyAxesAttrHelper::getNameStr()
                        : KVDialect::ValueAxesAttrHelper::getNameStr())
               << "'); run `kvopt compile --calibrate FILE` with statistics "
               << (keys ? "that record key covariances and query magnitudes "
                          "of a model with RoPE"
                        : "that record value covariances");
      Attribute current = keys ? type.getKey() : type.getValue();
      if (isa<LowRankEncodingAttr>(current))
        return op.emitError()
               << "kv-lowrank: the " << side << "s of layer "
               << op.getLayerAttr().getInt() << " are low-rank already";
      FailureOr<unsigned> r = rankFor(op, type.getHeadDim());
      if (failed(r))
        return WalkResult::interrupt();
      auto emitError = [&] { return op.emitError(); };
      Attribute lowRank =
          LowRankEncodingAttr::getChecked(emitError, &getContext(), *r, current,
                                          unsigned(sinks), unsigned(window));
      if (!lowRank ||
          failed(setCacheEncodings(op, keys ? lowRank : type.getKey(),
                                   keys ? type.getValue() : lowRank)))
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    propagateCacheTypes(module);
  }

private:
  LayerSelection layerSelection{"kv-lowrank"};
};

} // namespace
