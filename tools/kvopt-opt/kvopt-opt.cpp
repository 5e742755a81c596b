//===- kvopt-opt.cpp - The opt tool of kvopt's dialect and passes ---------===//
#include "compiler/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  kvopt::registerAllDialects(registry);
  kvopt::registerAllPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "kvopt-opt: the kv dialect and kvopt's passes\n", registry));
}
