//===- KVOps.h - Operations of the kv dialect -------------------*- C++ -*-===//
#ifndef KVOPT_DIALECTS_KV_IR_KVOPS_H
#define KVOPT_DIALECTS_KV_IR_KVOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/kv/IR/KVAttrs.h"
#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVTypes.h"

namespace mlir::kv {
/// The state of the KV caches, which append and evict write and attention
/// reads.
struct CacheResource : public SideEffects::Resource::Base<CacheResource> {
  llvm::StringRef getName() final { return "<KVCache>"; }
};
} // namespace mlir::kv

#define GET_OP_CLASSES
#include "dialects/kv/IR/KVOps.h.inc"

namespace mlir::kv {
/// Checks that entries can be evicted from a cache of type `cache` one by
/// one under `policy` (an EvictionPolicyAttrInterface): its keys are not
/// KIVI (#kv.int, quantized in groups of tokens), and the policy keeps at
/// least the sinks a low-rank side keeps exact.
llvm::LogicalResult
verifyEvictable(CacheType cache, Attribute policy,
                llvm::function_ref<InFlightDiagnostic()> emitError);
} // namespace mlir::kv

#endif // KVOPT_DIALECTS_KV_IR_KVOPS_H
