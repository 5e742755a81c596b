//===- KVTypes.cpp - Types of the kv dialect ------------------------------===//
#include "dialects/kv/IR/KVTypes.h"
#include "dialects/kv/IR/KVDialect.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::kv;

#define GET_TYPEDEF_CLASSES
#include "dialects/kv/IR/KVTypes.cpp.inc"

void KVDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/kv/IR/KVTypes.cpp.inc"
      >();
}

static LogicalResult
verifyEncoding(function_ref<InFlightDiagnostic()> emitError,
               llvm::StringRef which, Attribute encoding, int64_t headDim) {
  auto iface = llvm::dyn_cast<EncodingAttrInterface>(encoding);
  if (!iface)
    return emitError()
           << "!kv.cache " << which
           << " encoding must be one of #kv.f32, #kv.bf16, #kv.fp8, "
              "#kv.nvfp4, #kv.int, #kv.polar or #kv.lowrank, got "
           << encoding;
  // The encodings' own messages cannot tell keys from values.
  auto emitEncodingError = [&] {
    InFlightDiagnostic diag = emitError();
    diag << "!kv.cache " << which << " encoding: ";
    return diag;
  };
  // KIVI groups keys along tokens, so only its values constrain head_dim
  // (and a key latent's size, whole bytes of codes).
  if (which == "key" && llvm::isa<IntEncodingAttr>(encoding))
    return success();
  if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(encoding);
      lowRank && which == "key")
    return lowRank.verifyKeySize(headDim, emitEncodingError);
  return iface.verifyVectorSize(headDim, "head_dim", emitEncodingError);
}

LogicalResult CacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                int64_t heads, int64_t headDim, int64_t page,
                                Attribute key, Attribute value) {
  if (heads <= 0)
    return emitError() << "!kv.cache needs at least one KV head, got " << heads;
  if (headDim <= 0 || headDim % 2 != 0)
    return emitError() << "!kv.cache head_dim must be positive and even (RoPE "
                          "rotates pairs), got "
                       << headDim;
  if (page <= 0 || !llvm::isPowerOf2_64(page))
    return emitError() << "!kv.cache page must be a positive power of two "
                          "number of tokens, got "
                       << page;
  if (failed(verifyEncoding(emitError, "key", key, headDim)) ||
      failed(verifyEncoding(emitError, "value", value, headDim)))
    return failure();
  for (auto [which, encoding] : {std::pair{"key", key}, {"value", value}})
    if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(encoding);
        lowRank && heads % lowRank.getGroup() != 0)
      return emitError() << "!kv.cache " << which
                         << " encoding: #kv.lowrank group "
                         << lowRank.getGroup() << " must divide the " << heads
                         << " KV heads";
  if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(key);
      lowRank && lowRank.getFolded())
    return emitError() << "!kv.cache key encoding: #kv.lowrank folded = true "
                          "is for values; RoPE rotates each key by its "
                          "position between k_proj and the cache, so no "
                          "fixed matrix folds into the projections";
  if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(value);
      lowRank && lowRank.getCentred())
    return emitError() << "!kv.cache value encoding: #kv.lowrank centred = "
                          "true is for keys; values are stored around 0 on "
                          "the axes of their second moment, which keep the "
                          "attention sink's value (docs/lowrank.md)";
  return success();
}

double CacheType::getBytesPerToken() const {
  double bits =
      llvm::cast<EncodingAttrInterface>(getKey()).getBitsPerCoordinate(
          getHeadDim()) +
      llvm::cast<EncodingAttrInterface>(getValue())
          .getBitsPerCoordinate(getHeadDim());
  return bits * getHeadDim() * getHeads() / 8.0;
}
