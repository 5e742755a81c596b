//===- Pipeline.cpp - The pass pipeline of `kvopt compile` ----------------===//
#include "compiler/Pipeline.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

namespace kvopt {

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
    // An empty list option prints as nothing between two spaces.
    for (size_t at; (at = text.find("  ")) != std::string::npos;)
      text.erase(at, 1);
    std::string name = pass.getArgument().str();
    records.emplace_back(name, text.substr(std::min(name.size(), text.size())));
  }
  if (records.empty())
    return records;

  // Pass failures arrive as diagnostics; keep the first error's text (with
  // its location) for the one-sentence report.
  std::string firstError;
  mlir::ScopedDiagnosticHandler handler(
      module->getContext(), [&](mlir::Diagnostic &diagnostic) {
        if (diagnostic.getSeverity() == mlir::DiagnosticSeverity::Error &&
            firstError.empty()) {
          llvm::raw_string_ostream os(firstError);
          os << diagnostic.getLocation() << ": " << diagnostic;
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
