//===- CacheTypes.h - Rewriting the types of kv.cache ops -------*- C++ -*-===//
//
// Passes that choose how a cache is stored (kv-quantize, kv-lowrank,
// kv-sparse-select) give
// each kv.cache a new type and carry it through the kv ops that return the
// cache they were given.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_PASSES_CACHETYPES_H
#define KVOPT_PASSES_CACHETYPES_H

#include "dialects/kv/IR/KVOps.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir::kv {

/// Fails, with an error naming `pass`, when a cache crosses a function or
/// block boundary or passes through an op outside the kv dialect: its type
/// would stay old on the other side.
LogicalResult checkCachesStayInKVOps(ModuleOp module, StringRef pass);

/// Gives `op` a cache type with `key` and `value` encodings, or fails with
/// the type verifier's error on `op`.
LogicalResult setCacheEncodings(CacheOp op, Attribute key, Attribute value);

/// Gives `op` a cache type with pages of `page` tokens, or fails with the
/// type verifier's error on `op`.
LogicalResult setCachePage(CacheOp op, int64_t page);

/// The kv.cache op whose entries `cache` holds, through appends and
/// evictions; null when it comes from elsewhere.
CacheOp cacheOf(Value cache);

/// Gives kv.append and kv.evict results the type of the cache they take.
void propagateCacheTypes(ModuleOp module);

} // namespace mlir::kv

#endif // KVOPT_PASSES_CACHETYPES_H
