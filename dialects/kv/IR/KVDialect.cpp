//===- KVDialect.cpp - The kv dialect -------------------------------------===//
#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"

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
