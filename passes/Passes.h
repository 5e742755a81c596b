//===- Passes.h - kvopt's passes --------------------------------*- C++ -*-===//
#ifndef KVOPT_PASSES_PASSES_H
#define KVOPT_PASSES_PASSES_H

#include "dialects/kv/IR/KVDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::kv {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace mlir::kv

#endif // KVOPT_PASSES_PASSES_H
