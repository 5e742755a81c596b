//===- KVTypes.h - Types of the kv dialect ----------------------*- C++ -*-===//
#ifndef KVOPT_DIALECTS_KV_IR_KVTYPES_H
#define KVOPT_DIALECTS_KV_IR_KVTYPES_H

#include "dialects/kv/IR/KVAttrs.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "dialects/kv/IR/KVTypes.h.inc"

#endif // KVOPT_DIALECTS_KV_IR_KVTYPES_H
