//===- Pipeline.cpp - The pass pipeline of `kvopt compile` ----------------===//
#include "compiler/Pipeline.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

namespace kvopt {
namespace {

/// A pass's options as MLIR prints them ("{a=1 b= c={x,y}}"), less those
/// left empty (a string or list option at its default prints as "b=" or
/// as nothing at all): what a reader of `kvopt inspect` needs.
std::string givenOptions(llvm::StringRef printed) {
  if (!printed.consume_front("{") || !printed.consume_back("}"))
    return printed.str();
  std::string kept;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= printed.size(); ++i) {
    if (i < printed.size() && (printed[i] != ' ' || depth > 0)) {
      depth += printed[i] == '{' ? 1 : printed[i] == '}' ? -1 : 0;
      continue;
    }
    llvm::StringRef option = printed.slice(start, i);
    if (!option.empty() && !option.ends_with("="))
      kept += (kept.empty() ? "" : " ") + option.str();
    start = i + 1;
  }
  return "{" + kept + "}";
}

} // namespace

kvrt::StatusOr<std::vector<PassRecord>>
runPipeline(mlir::ModuleOp module, const std::string &pipeline) {
  mlir::PassManager pm(module->getContext());
  std::string parseErrors;
  llvm::raw_string_ostream parseStream(parseErrors);
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm, parseStream)))
    return kvrt::Status::error("--passes '" + pipeline + "': " +
                               llvm::StringRef(parseErrors).trim().str());

  std::vector<PassRecord> records;
  for (mlir::Pass &pass : pm.getPasses()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    pass.printAsTextualPipeline(os);
    std::string name = pass.getArgument().str();
    records.emplace_back(name, givenOptions(llvm::StringRef(text).drop_front(
                                   std::min(name.size(), text.size()))));
  }
  if (records.empty())
    return records;

  // Pass failures arrive as diagnostics; keep the first error's text (with
  // its location, where the op has one) for the one-sentence report.
  std::string firstError;
  mlir::ScopedDiagnosticHandler handler(
      module->getContext(), [&](mlir::Diagnostic &diagnostic) {
        if (diagnostic.getSeverity() == mlir::DiagnosticSeverity::Error &&
            firstError.empty()) {
          llvm::raw_string_ostream os(firstError);
          // An op without a source location would only say loc(unknown).
          if (!llvm::isa<mlir::UnknownLoc>(diagnostic.getLocation()))
            os << diagnostic.getLocation() << ": ";
          os << diagnostic;
        }
        return mlir::success();
      });
  if (mlir::failed(pm.run(module)))
    return kvrt::Status::error(
        "the pass pipeline '" + pipeline + "' failed" +
        (firstError.empty() ? std::string(".") : ": " + firstError));
  return records;
}

} // namespace kvopt
