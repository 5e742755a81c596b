//===- InitAll.cpp --------------------------------------------------------===//
#include "compiler/InitAll.h"

#include "dialects/kv/IR/KVDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void kvopt::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::kv::KVDialect, mlir::arith::ArithDialect,
                  mlir::func::FuncDialect, mlir::tensor::TensorDialect>();
}

void kvopt::registerAllPasses() {
  mlir::kv::registerKVPasses();
  // The generic cleanups pipelines use around ours.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
}
