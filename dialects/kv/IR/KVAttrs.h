//===- KVAttrs.h - Attributes of the kv dialect -----------------*- C++ -*-===//
#ifndef KVOPT_DIALECTS_KV_IR_KVATTRS_H
#define KVOPT_DIALECTS_KV_IR_KVATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"

#include <string>
#include <utility>

namespace mlir::kv {
/// Parses a floating-point attribute parameter.
FailureOr<llvm::APFloat> parseDouble(AsmParser &parser);
/// Prints `value` in the shortest form that parses back to it.
void printDouble(AsmPrinter &printer, const llvm::APFloat &value);
/// Formats `value` for a diagnostic in its shortest round-trip form (`1.5`,
/// `1e-05`), not raw_ostream's `%e`.
std::string formatDouble(double value);

/// TriAttention's largest future query distance when a policy gives none:
/// the reference code's (WeianMao/triattention, offset_max_length), the
/// runtime's evict::kReferenceHorizon.
inline constexpr unsigned kDefaultHorizon = 65536;
} // namespace mlir::kv

#include "dialects/kv/IR/KVEnums.h.inc"

#include "dialects/kv/IR/KVAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/kv/IR/KVAttrs.h.inc"

namespace mlir::kv {

/// The tokens an encoding keeps exact beside its codes: each sequence's
/// first (sinks) and most recent (window); {0, 0} for most encodings.
std::pair<unsigned, unsigned> exactTokensOf(Attribute encoding);

/// Checks an eviction budget: a fraction in (0, 1] or a positive token count.
/// `policy` names the attribute in the diagnostic (`#kv.h2o`).
llvm::LogicalResult
verifyBudget(Attribute budget, llvm::StringRef policy,
             llvm::function_ref<InFlightDiagnostic()> emitError);

} // namespace mlir::kv

#endif // KVOPT_DIALECTS_KV_IR_KVATTRS_H
