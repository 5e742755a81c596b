//===- KVDialect.h - The kv dialect -----------------------------*- C++ -*-===//
#ifndef KVOPT_DIALECTS_KV_IR_KVDIALECT_H
#define KVOPT_DIALECTS_KV_IR_KVDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

// The dialect's discardable attributes are typed with its attributes.
#include "dialects/kv/IR/KVAttrs.h"

#include "dialects/kv/IR/KVDialect.h.inc"

#endif // KVOPT_DIALECTS_KV_IR_KVDIALECT_H
