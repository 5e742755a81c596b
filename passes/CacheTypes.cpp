//===- CacheTypes.cpp - Rewriting the types of kv.cache ops --------------===//
#include "passes/CacheTypes.h"

#include "dialects/kv/IR/KVOps.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

namespace mlir::kv {

LogicalResult checkCachesStayInKVOps(ModuleOp module, StringRef pass) {
  auto isCache = [](Type type) { return llvm::isa<CacheType>(type); };
  WalkResult result = module->walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (auto func = dyn_cast<FunctionOpInterface>(op);
        func && (llvm::any_of(func.getArgumentTypes(), isCache) ||
                 llvm::any_of(func.getResultTypes(), isCache))) {
      op->emitError() << pass
                      << " cannot rewrite a !kv.cache that "
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
                << pass
                << " cannot rewrite a !kv.cache block argument: "
                   "caches must flow from kv.cache to their readers through "
                   "kv ops only";
            return WalkResult::interrupt();
          }
    if (!llvm::isa_and_nonnull<KVDialect>(op->getDialect()) &&
        (llvm::any_of(op->getOperandTypes(), isCache) ||
         llvm::any_of(op->getResultTypes(), isCache))) {
      op->emitError() << pass << " cannot rewrite the !kv.cache that '"
                      << op->getName()
                      << "' passes on: caches must flow from kv.cache to "
                         "their readers through kv ops only";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// Gives `op` the cache type of these parameters, or fails with the type
/// verifier's error on `op`.
static LogicalResult setCacheType(CacheOp op, int64_t page, Attribute key,
                                  Attribute value) {
  auto type = llvm::cast<CacheType>(op.getType());
  CacheType newType = CacheType::getChecked(
      [&] { return op.emitError(); }, op.getContext(), type.getHeads(),
      type.getHeadDim(), page, key, value);
  if (!newType)
    return failure();
  op.getResult().setType(newType);
  return success();
}

LogicalResult setCacheEncodings(CacheOp op, Attribute key, Attribute value) {
  return setCacheType(op, llvm::cast<CacheType>(op.getType()).getPage(), key,
                      value);
}

LogicalResult setCachePage(CacheOp op, int64_t page) {
  auto type = llvm::cast<CacheType>(op.getType());
  return setCacheType(op, page, type.getKey(), type.getValue());
}

CacheOp cacheOf(Value cache) {
  while (Operation *op = cache.getDefiningOp()) {
    if (auto found = dyn_cast<CacheOp>(op))
      return found;
    if (auto append = dyn_cast<AppendOp>(op))
      cache = append.getCache();
    else if (auto evict = dyn_cast<EvictOp>(op))
      cache = evict.getCache();
    else
      return {};
  }
  return {};
}

void propagateCacheTypes(ModuleOp module) {
  module.walk([](Operation *op) {
    if (auto append = dyn_cast<AppendOp>(op))
      append.getResult().setType(append.getCache().getType());
    else if (auto evict = dyn_cast<EvictOp>(op))
      evict.getResult().setType(evict.getCache().getType());
  });
}

} // namespace mlir::kv
