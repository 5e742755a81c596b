//===- KVQuantize.cpp - Choose the cache encoding of some layers ----------===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/CacheTypes.h"
#include "passes/LayerSelection.h"
#include "passes/Passes.h"

namespace mlir::kv {
#define GEN_PASS_DEF_KVQUANTIZEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

/// The widths each encoding accepts for `bits`; empty for the encodings of
/// fixed width.
static ArrayRef<unsigned> allowedBits(StringRef encoding) {
  static const unsigned intBits[] = {2, 4};
  static const unsigned polarBits[] = {2, 3, 4};
  if (encoding == "int")
    return intBits;
  if (encoding == "polar")
    return polarBits;
  return {};
}

/// The width of int and polar when `bits` is not given.
static constexpr unsigned kDefaultBits = 4;

namespace {

struct KVQuantizePass : public kv::impl::KVQuantizePassBase<KVQuantizePass> {
  using KVQuantizePassBase::KVQuantizePassBase;

  /// Starts an error about `option`, the command-line name.
  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    return emitOptionError(ctx, "kv-quantize", option);
  }

  /// Validates the options once, whether or not the module has caches, and
  /// builds the encoding they describe.
  LogicalResult initialize(MLIRContext *ctx) override {
    if (failed(checkEncodingOptions(ctx)) || failed(checkSelection(ctx)))
      return failure();
    auto emitError = [&] { return mlir::emitError(UnknownLoc::get(ctx)); };
    newEncoding = buildEncoding(emitError, ctx, bits ? bits : kDefaultBits);
    // Not success(newEncoding): that wraps the attribute in a FailureOr,
    // which reads as success even when the verifier refused it.
    return success(bool(newEncoding));
  }

  /// The options that say what the encoding is.
  LogicalResult checkEncodingOptions(MLIRContext *ctx) {
    if (!llvm::is_contained({"f32", "bf16", "fp8", "nvfp4", "int", "polar"},
                            StringRef(encoding)))
      return optionError(ctx, "encoding")
             << "is '" << encoding
             << "'; allowed: f32, bf16, fp8, nvfp4, int, polar";

    // A bit-width for an encoding of fixed width would be silently ignored.
    // 0 (the default) stands for "not given": options built in C++ mark
    // every option as given.
    ArrayRef<unsigned> allowed = allowedBits(encoding);
    unsigned width = bits;
    if (width != 0 && allowed.empty())
      return optionError(ctx, "bits")
             << "is " << width << "; encoding=" << encoding
             << " has a fixed width, only int and polar take bits";
    if (width != 0 && !llvm::is_contained(allowed, width)) {
      InFlightDiagnostic diag = optionError(ctx, "bits");
      diag << "is " << width << "; allowed for encoding=" << encoding << ": ";
      llvm::interleaveComma(allowed, diag);
      return diag;
    }

    if (encoding == "fp8" && !symbolizeScaleMode(scale))
      return optionError(ctx, "scale")
             << "is '" << scale
             << "'; allowed for encoding=fp8: per_head, dynamic";
    if (encoding == "int") {
      if (!llvm::is_contained({32u, 64u, 128u}, group.getValue()))
        return optionError(ctx, "group")
               << "is " << group.getValue()
               << "; allowed for encoding=int: 32, 64, 128";
      if (residual % group != 0)
        return optionError(ctx, "residual")
               << "is " << residual.getValue()
               << "; allowed for encoding=int: a multiple of group ("
               << group.getValue() << ")";
    }
    if (qjl && encoding != "polar")
      return optionError(ctx, "qjl")
             << "is true; only encoding=polar has a QJL residual";
    for (auto [name, tokens] : {std::pair{"sinks", unsigned(sinks)},
                                std::pair{"window", unsigned(window)}})
      if (tokens &&
          !llvm::is_contained({"polar", "fp8", "nvfp4"}, StringRef(encoding)))
        return optionError(ctx, name)
               << "is " << tokens
               << "; only encoding=polar, fp8 and nvfp4 keep exact tokens "
                  "(int keeps its residual, kv-lowrank its own sinks and "
                  "window)";
    return success();
  }

  /// The options that say what the encoding replaces: which side of which
  /// layers.
  LogicalResult checkSelection(MLIRContext *ctx) {
    if (!llvm::is_contained({"key", "value", "both"}, StringRef(side)))
      return optionError(ctx, "side")
             << "is '" << side << "'; allowed: key, value, both";
    rewritesKeys = side != "value";
    rewritesValues = side != "key";
    if (qjl && rewritesValues)
      return optionError(ctx, "qjl")
             << "is true with side=" << side
             << "; the QJL residual corrects attention scores, so it is for "
                "keys only: add side=key and encode the values in a "
                "kv-quantize of their own";
    return layerSelection.parse(ctx, layers);
  }

  /// The encoding the options describe at `width` bits (where the encoding
  /// has a width); null after a diagnostic.
  Attribute buildEncoding(function_ref<InFlightDiagnostic()> emitError,
                          MLIRContext *ctx, unsigned width) {
    if (encoding == "fp8")
      return Fp8EncodingAttr::getChecked(emitError, ctx, Fp8Format::E4M3,
                                         *symbolizeScaleMode(scale),
                                         sinks.getValue(), window.getValue());
    if (encoding == "nvfp4")
      return Nvfp4EncodingAttr::getChecked(emitError, ctx, sinks.getValue(),
                                           window.getValue());
    if (encoding == "f32")
      return F32EncodingAttr::get(ctx);
    if (encoding == "int")
      return IntEncodingAttr::getChecked(emitError, ctx, width,
                                         group.getValue(), residual.getValue());
    if (encoding == "polar")
      return PolarEncodingAttr::getChecked(
          emitError, ctx, width, Rotation::Hadamard, seed.getValue(),
          qjl.getValue(), sinks.getValue(), window.getValue());
    return Bf16EncodingAttr::get(ctx);
  }

  /// fp8 with per-head scales reads them from the calibration statistics
  /// on the kv.cache op, one attribute per side it rewrites.
  LogicalResult checkCalibrated(CacheOp op) {
    if (encoding != "fp8" || *symbolizeScaleMode(scale) != ScaleMode::PerHead)
      return success();
    for (auto [rewrites, side, name] :
         {std::tuple(rewritesKeys, "key",
                     KVDialect::KeyAbsmaxAttrHelper::getNameStr()),
          std::tuple(rewritesValues, "value",
                     KVDialect::ValueAbsmaxAttrHelper::getNameStr())})
      if (rewrites && !op->hasAttrOfType<DenseF32ArrayAttr>(name))
        return op.emitError()
               << "kv-quantize: encoding=fp8 scale=per_head needs the "
                  "calibrated "
               << side << " scales of layer " << op.getLayerAttr().getInt()
               << " ('" << name
               << "'), which this kv.cache lacks; run `kvopt compile "
                  "--calibrate FILE` or use scale=dynamic";
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkCachesStayInKVOps(module, "kv-quantize")))
      return signalPassFailure();
    FailureOr<SelectedLayers> selected = layerSelection.resolve(module);
    if (failed(selected))
      return signalPassFailure();

    WalkResult result = module.walk([&](CacheOp op) -> WalkResult {
      if (!selected->contains(op.getLayerAttr().getInt()))
        return WalkResult::advance();
      if (failed(checkCalibrated(op)))
        return WalkResult::interrupt();
      auto type = llvm::cast<CacheType>(op.getType());
      auto emitError = [&] { return op.emitError(); };
      // A low-rank side keeps its rank, exact tokens, group, fold and centre
      // and stores its latent this way.
      auto rewrite = [&](Attribute old) -> Attribute {
        if (auto lowRank = dyn_cast<LowRankEncodingAttr>(old))
          return LowRankEncodingAttr::getChecked(
              emitError, &getContext(), lowRank.getRank(), newEncoding,
              lowRank.getSinks(), lowRank.getWindow(), lowRank.getBasis(),
              lowRank.getGroup(), lowRank.getFolded(), lowRank.getCentred());
        return newEncoding;
      };
      Attribute key = rewritesKeys ? rewrite(type.getKey()) : type.getKey();
      Attribute value =
          rewritesValues ? rewrite(type.getValue()) : type.getValue();
      if (!key || !value || failed(setCacheEncodings(op, key, value)))
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();

    propagateCacheTypes(module);
  }

private:
  /// Built from the options by initialize().
  Attribute newEncoding;
  bool rewritesKeys = true, rewritesValues = true;
  LayerSelection layerSelection{"kv-quantize"};
};

} // namespace
