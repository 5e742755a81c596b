//===- KVPrintWeights.cpp - Name, type and checksum of every weight -------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/CRC.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::kv {
#define GEN_PASS_DEF_KVPRINTWEIGHTSPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;

namespace {

struct KVPrintWeightsPass
    : public kv::impl::KVPrintWeightsPassBase<KVPrintWeightsPass> {
  void runOnOperation() override {
    getOperation().walk([](arith::ConstantOp op) {
      auto attr = llvm::dyn_cast<DenseResourceElementsAttr>(op.getValue());
      if (!attr)
        return;
      AsmResourceBlob *blob = attr.getRawHandle().getBlob();
      llvm::outs() << attr.getRawHandle().getKey() << " " << attr.getType()
                   << " ";
      if (!blob) {
        llvm::outs() << "elided\n";
        return;
      }
      ArrayRef<char> data = blob->getData();
      uint32_t crc = llvm::crc32(ArrayRef<uint8_t>(
          reinterpret_cast<const uint8_t *>(data.data()), data.size()));
      llvm::outs() << "crc32=" << llvm::format_hex_no_prefix(crc, 8) << "\n";
    });
    markAllAnalysesPreserved();
  }
};

} // namespace
