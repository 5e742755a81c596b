//===- KVDialect.cpp - The kv dialect -------------------------------------===//
#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"

#include "mlir/IR/BuiltinOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kv;

#include "dialects/kv/IR/KVDialect.cpp.inc"

void KVDialect::initialize() {
  registerAttributes();
  registerTypes();
  addOperations<
#define GET_OP_LIST
#include "dialects/kv/IR/KVOps.cpp.inc"
      >();
}

/// kv.key_absmax / kv.value_absmax: one finite, non-negative f32 per KV head
/// of the kv.cache op that carries it.
static LogicalResult verifyAbsMax(Operation *op, NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  auto cache = dyn_cast<CacheOp>(op);
  if (!cache)
    return op->emitOpError()
           << "carries '" << name << "', which belongs on a kv.cache op";
  auto values = dyn_cast<DenseF32ArrayAttr>(attribute.getValue());
  if (!values)
    return op->emitOpError() << "'" << name
                             << "' must be an array<f32: ...> with one value "
                                "per KV head";
  int64_t heads = cast<CacheType>(cache.getType()).getHeads();
  if (int64_t(values.size()) != heads)
    return op->emitOpError()
           << "'" << name << "' has " << values.size()
           << " values for a cache of " << heads << " KV heads";
  for (auto [head, value] : llvm::enumerate(values.asArrayRef()))
    if (!std::isfinite(value) || value < 0)
      return op->emitOpError()
             << "'" << name << "' of KV head " << head
             << " must be finite and non-negative, got " << formatDouble(value);
  return success();
}

LogicalResult KVDialect::verifyOperationAttribute(Operation *op,
                                                  NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name == KeyAbsmaxAttrHelper::getNameStr() ||
      name == ValueAbsmaxAttrHelper::getNameStr())
    return verifyAbsMax(op, attribute);
  if (name == CalibrationAttrHelper::getNameStr()) {
    if (!isa<ModuleOp>(op))
      return op->emitOpError()
             << "carries '" << name << "', which belongs on the module";
    if (!isa<CalibrationAttr>(attribute.getValue()))
      return op->emitOpError()
             << "'" << name << "' must be a #kv.calibration attribute";
    return success();
  }
  // Other kv.* attributes (e.g. the importer's model summary) are not this
  // verifier's.
  return success();
}
