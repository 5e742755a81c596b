//===- Import.cpp - kvopt import: a model file into a kv module -----------===//
#include "compiler/InitAll.h"
#include "compiler/import/Importer.h"
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/OutputFile.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/raw_ostream.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace kvopt::cli {

namespace {
struct ImportOptions {
  std::string model;
  std::string output = "-";
  bool bytecode = false;
  bool elideWeights = false;
};

int runImport(const ImportOptions &o) {
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  kvrt::StatusOr<import::ImportedModel> imported =
      import::importModel(context, resolveModelPath(o.model));
  if (!imported) {
    std::cerr << "kvopt import: " << imported.status().message() << "\n";
    return 1;
  }
  mlir::ModuleOp module = *imported->module;
  // MLIR's printer renders every blob as hex before it elides it, which
  // would read every weight byte: drop the blobs instead (the elided module
  // is not re-readable anyway), so the import stays a matter of headers.
  if (o.elideWeights)
    module.walk([](mlir::arith::ConstantOp constant) {
      if (auto weights = llvm::dyn_cast<mlir::DenseResourceElementsAttr>(
              constant.getValue()))
        weights.getRawHandle().getResource()->setBlob(mlir::AsmResourceBlob());
    });
  return writeOutputFile(o.output, [&](llvm::raw_ostream &os) {
    if (o.bytecode)
      return mlir::succeeded(mlir::writeBytecodeToFile(module, os));
    mlir::OpPrintingFlags flags;
    if (o.elideWeights)
      flags.elideLargeResourceString(64).elideLargeElementsAttrs(16);
    module->print(os, flags);
    return true;
  });
}
} // namespace

void addImportCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<ImportOptions>();
  CLI::App *sub = app.add_subcommand(
      "import", "Read a Hugging Face folder, .gguf or .onnx into a kv module");
  sub->add_option("model", o->model, "Model folder, .gguf, .onnx, or `default`")
      ->required();
  sub->add_option("-o,--output", o->output, "Output file (- for stdout)");
  sub->add_flag("--emit-bytecode", o->bytecode,
                "Write MLIR bytecode (weights stored as binary blobs)");
  sub->add_flag("--elide-weights", o->elideWeights,
                "Print the structure only; weights elided (not re-readable)");
  sub->callback([o, &exitCode] { exitCode = runImport(*o); });
}

} // namespace kvopt::cli
