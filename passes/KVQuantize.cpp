//===- KVQuantize.cpp - Choose the cache encoding of every layer ----------===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/Passes.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

namespace mlir::kv {
#define GEN_PASS_DEF_KVQUANTIZEPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

/// The widths each encoding accepts for `bits`, `key-bits` and `value-bits`;
/// empty for the encodings of fixed width.
static ArrayRef<unsigned> allowedBits(StringRef encoding) {
  static const unsigned intBits[] = {2, 4};
  static const unsigned polarBits[] = {2, 3, 4};
  if (encoding == "int")
    return intBits;
  if (encoding == "polar")
    return polarBits;
  return {};
}

/// The pass gives each kv.cache a new type and carries it through kv.append
/// and kv.evict only; a cache that crosses a function or block boundary would
/// keep its old type on the other side.
static LogicalResult checkCachesStayInKVOps(ModuleOp module) {
  auto isCache = [](Type type) { return llvm::isa<CacheType>(type); };
  WalkResult result = module->walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (auto func = dyn_cast<FunctionOpInterface>(op);
        func && (llvm::any_of(func.getArgumentTypes(), isCache) ||
                 llvm::any_of(func.getResultTypes(), isCache))) {
      op->emitError() << "kv-quantize cannot rewrite a !kv.cache that "
                         "crosses a function boundary: @"
                      << func.getName()
                      << " takes or returns one; inline it into its callers "
                         "first";
      return WalkResult::interrupt();
    }
    for (Region &region : op->getRegions())
      for (Block &block : region)
        for (BlockArgument arg : block.getArguments())
          if (isCache(arg.getType())) {
            emitError(arg.getLoc())
                << "kv-quantize cannot rewrite a !kv.cache block argument: "
                   "caches must flow from kv.cache to their readers through "
                   "kv ops only";
            return WalkResult::interrupt();
          }
    if (!llvm::isa_and_nonnull<KVDialect>(op->getDialect()) &&
        (llvm::any_of(op->getOperandTypes(), isCache) ||
         llvm::any_of(op->getResultTypes(), isCache))) {
      op->emitError() << "kv-quantize cannot rewrite the !kv.cache that '"
                      << op->getName()
                      << "' passes on: caches must flow from kv.cache to "
                         "their readers through kv ops only";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// The width of int and polar when `bits` is not given.
static constexpr unsigned kDefaultBits = 4;

namespace {

struct KVQuantizePass : public kv::impl::KVQuantizePassBase<KVQuantizePass> {
  using KVQuantizePassBase::KVQuantizePassBase;

  /// Starts an error about `option`, the command-line name.
  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    InFlightDiagnostic diag = emitError(UnknownLoc::get(ctx));
    diag << "kv-quantize: option '" << option << "' ";
    return diag;
  }

  /// Checks that `value`, the bit-width from `option`, suits the encoding.
  LogicalResult checkBits(MLIRContext *ctx, StringRef option, unsigned value) {
    ArrayRef<unsigned> allowed = allowedBits(encoding);
    if (llvm::is_contained(allowed, value))
      return success();
    InFlightDiagnostic diag = optionError(ctx, option);
    diag << "is " << value << "; allowed for encoding=" << encoding << ": ";
    llvm::interleaveComma(allowed, diag);
    return diag;
  }

  /// Validates the options once, whether or not the module has caches.
  LogicalResult initialize(MLIRContext *ctx) override {
    if (!llvm::is_contained({"f32", "bf16", "fp8", "nvfp4", "int", "polar"},
                            StringRef(encoding)))
      return optionError(ctx, "encoding")
             << "is '" << encoding
             << "'; allowed: f32, bf16, fp8, nvfp4, int, polar";

    // A bit-width for an encoding of fixed width would be silently ignored.
    // 0 (the default) stands for "not given": options built in C++ mark
    // every option as given.
    bool hasBits = !allowedBits(encoding).empty();
    for (auto [name, value] : {std::pair<StringRef, unsigned>{"bits", bits},
                               {"key-bits", keyBits},
                               {"value-bits", valueBits}}) {
      if (value == 0)
        continue;
      if (!hasBits)
        return optionError(ctx, name)
               << "is " << value << "; encoding=" << encoding
               << " has a fixed width, only int and polar take bits";
      if (failed(checkBits(ctx, name, value)))
        return failure();
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

    auto emitError = [&] { return mlir::emitError(UnknownLoc::get(ctx)); };
    unsigned width = bits ? bits : kDefaultBits;
    keyEncoding = buildEncoding(emitError, ctx, keyBits ? keyBits : width);
    valueEncoding =
        buildEncoding(emitError, ctx, valueBits ? valueBits : width);
    return success(keyEncoding && valueEncoding);
  }

  /// The encoding of keys or values at `width` bits (where the encoding has
  /// a width); null after a diagnostic.
  Attribute buildEncoding(function_ref<InFlightDiagnostic()> emitError,
                          MLIRContext *ctx, unsigned width) {
    if (encoding == "fp8")
      return Fp8EncodingAttr::get(ctx, Fp8Format::E4M3,
                                  *symbolizeScaleMode(scale));
    if (encoding == "nvfp4")
      return Nvfp4EncodingAttr::get(ctx);
    if (encoding == "f32")
      return F32EncodingAttr::get(ctx);
    if (encoding == "int")
      return IntEncodingAttr::getChecked(emitError, ctx, width,
                                         group.getValue(), residual.getValue());
    if (encoding == "polar")
      return PolarEncodingAttr::getChecked(
          emitError, ctx, width, Rotation::Hadamard, seed.getValue(), false);
    return Bf16EncodingAttr::get(ctx);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkCachesStayInKVOps(module)))
      return signalPassFailure();

    // The verifier guarantees non-negative layers.
    int64_t layers = 0;
    module.walk([&](CacheOp op) {
      layers = std::max<int64_t>(layers, op.getLayerAttr().getInt() + 1);
    });

    Attribute bf16 = Bf16EncodingAttr::get(&getContext());
    WalkResult result = module.walk([&](CacheOp op) -> WalkResult {
      auto type = llvm::cast<CacheType>(op.getType());
      int64_t layer = op.getLayerAttr().getInt();
      bool keep = layer < static_cast<int64_t>(keepFirst) ||
                  layer >= layers - static_cast<int64_t>(keepLast);
      CacheType newType = CacheType::getChecked(
          [&] { return op.emitError(); }, &getContext(), type.getHeads(),
          type.getHeadDim(), type.getPage(), keep ? bf16 : keyEncoding,
          keep ? bf16 : valueEncoding);
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

private:
  /// The encodings of the layers not kept in bf16, built from the options.
  Attribute keyEncoding, valueEncoding;
};

} // namespace
