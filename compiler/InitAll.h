//===- InitAll.h - Register kvopt's dialects, passes and pipelines -*- C++
//-*-===//
#ifndef KVOPT_COMPILER_INITALL_H
#define KVOPT_COMPILER_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace kvopt {

/// The dialects a kvopt module may contain: kv and the upstream dialects it
/// uses (func, arith, tensor).
void registerAllDialects(mlir::DialectRegistry &registry);

/// Every kvopt pass and pipeline, for kvopt-opt and `kvopt compile --passes`.
void registerAllPasses();

} // namespace kvopt

#endif // KVOPT_COMPILER_INITALL_H
