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

LogicalResult setCacheEncodings(CacheOp op, Attribute key, Attribute value) {
  auto type = llvm::cast<CacheType>(op.getType());
  CacheType newType = CacheType::getChecked(
      [&] { return op.emitError(); }, op.getContext(), type.getHeads(),
      type.getHeadDim(), type.getPage(), key, value);
  if (!newType)
    return failure();
  op.getResult().setType(newType);
  return success();
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
