//===- KVQuantize.cpp - Choose the cache encoding of every layer ----------===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/Passes.h"

namespace mlir::kv {
#define GEN_PASS_DEF_KVQUANTIZEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

namespace {

struct KVQuantizePass : public kv::impl::KVQuantizePassBase<KVQuantizePass> {
  using KVQuantizePassBase::KVQuantizePassBase;

  /// The encoding for keys (or values) of a layer that is not kept in bf16;
  /// null after a diagnostic.
  Attribute buildEncoding(function_ref<InFlightDiagnostic()> emitError,
                          unsigned bitsOverride) {
    MLIRContext *ctx = &getContext();
    unsigned b = bitsOverride ? bitsOverride : bits.getValue();
    if (encoding == "bf16")
      return Bf16EncodingAttr::get(ctx);
    if (encoding == "nvfp4")
      return Nvfp4EncodingAttr::get(ctx);
    if (encoding == "fp8") {
      std::optional<ScaleMode> mode = symbolizeScaleMode(scale);
      if (!mode) {
        emitError() << "kv-quantize: fp8 scale must be per_head or dynamic, "
                       "got '"
                    << scale << "'";
        return {};
      }
      return Fp8EncodingAttr::get(ctx, Fp8Format::E4M3, *mode);
    }
    if (encoding == "int")
      return IntEncodingAttr::getChecked(emitError, ctx, b, group.getValue(),
                                         residual.getValue());
    if (encoding == "polar")
      return PolarEncodingAttr::getChecked(
          emitError, ctx, b, Rotation::Hadamard, seed.getValue(), false);
    emitError() << "kv-quantize: unknown encoding '" << encoding
                << "'; allowed: bf16, fp8, nvfp4, int, polar";
    return {};
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t layers = 0;
    module.walk([&](CacheOp op) {
      layers = std::max<int64_t>(layers, op.getLayer() + 1);
    });

    WalkResult result = module.walk([&](CacheOp op) -> WalkResult {
      auto emitError = [&] { return op.emitError(); };
      auto type = llvm::cast<CacheType>(op.getType());
      int64_t layer = op.getLayer();
      bool keep = layer < static_cast<int64_t>(keepFirst.getValue()) ||
                  layer >= layers - static_cast<int64_t>(keepLast.getValue());
      Attribute key = Bf16EncodingAttr::get(&getContext());
      Attribute value = key;
      if (!keep) {
        if (!(key = buildEncoding(emitError, keyBits)) ||
            !(value = buildEncoding(emitError, valueBits)))
          return WalkResult::interrupt();
      }
      CacheType newType =
          CacheType::getChecked(emitError, &getContext(), type.getHeads(),
                                type.getHeadDim(), type.getPage(), key, value);
      if (!newType)
        return WalkResult::interrupt();
      op.getResult().setType(newType);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();

    // Ops that return the cache they were given carry its new type on.
    module.walk([](Operation *op) {
      if (auto append = dyn_cast<AppendOp>(op))
        append.getResult().setType(append.getCache().getType());
      else if (auto evict = dyn_cast<EvictOp>(op))
        evict.getResult().setType(evict.getCache().getType());
    });
  }
};

} // namespace
