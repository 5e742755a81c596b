//===- Import.cpp - kvopt import: a model file into a kv module -----------===//
#include "compiler/InitAll.h"
#include "compiler/import/Importer.h"
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/OutputFile.h"
#include "tools/kvopt/Progress.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/raw_os_ostream.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <unistd.h>

namespace kvopt::cli {

namespace {
/// Passes the module's bytes on to `out` and counts them on `progress`:
/// writing the weights of a large model takes a while.
class CountingStream : public llvm::raw_ostream {
public:
  CountingStream(llvm::raw_ostream &out, Progress &progress)
      : out(out), progress(progress) {}
  ~CountingStream() override { flush(); }

private:
  void write_impl(const char *data, size_t size) override {
    out.write(data, size);
    written += size;
    progress.update(megabytes(written) + " written");
  }
  uint64_t current_pos() const override { return written; }

  llvm::raw_ostream &out;
  Progress &progress;
  uint64_t written = 0;
};

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
  Progress progress("import");
  std::string modelPath = resolveModelPath(o.model);
  progress.step("importing " + modelPath);
  kvrt::StatusOr<import::ImportedModel> imported =
      import::importModel(context, modelPath);
  progress.clear();
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
  // A module printed on the terminal is its own progress.
  bool outputOnTerminal = o.output == "-" && isatty(STDOUT_FILENO) == 1;
  return writeOutputFile(o.output, [&](std::ostream &out) {
    llvm::raw_os_ostream os(out);
    CountingStream counted(os, progress);
    llvm::raw_ostream &sink =
        outputOnTerminal ? static_cast<llvm::raw_ostream &>(os) : counted;
    if (!outputOnTerminal)
      progress.step("writing " + o.output);
    bool ok = true;
    if (o.bytecode) {
      ok = mlir::succeeded(mlir::writeBytecodeToFile(module, sink));
    } else {
      mlir::OpPrintingFlags flags;
      if (o.elideWeights)
        flags.elideLargeResourceString(64).elideLargeElementsAttrs(16);
      module->print(sink, flags);
    }
    sink.flush();
    // writeOutputFile reports its own errors next.
    progress.clear();
    return ok;
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
