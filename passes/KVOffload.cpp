//===- KVOffload.cpp - Keep selecting caches in host memory ---------------===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/CacheTypes.h"
#include "passes/LayerSelection.h"
#include "passes/Passes.h"

#include <cmath>
#include <cstdio>

namespace mlir::kv {
#define GEN_PASS_DEF_KVOFFLOADPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

/// "1073741824", "512M", "2G": bytes, or nothing when `text` is neither.
static std::optional<uint64_t> parseBytes(StringRef text) {
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
    case 'K':
      unit = uint64_t(1) << 10;
      break;
    case 'M':
      unit = uint64_t(1) << 20;
      break;
    case 'G':
      unit = uint64_t(1) << 30;
      break;
    default:
      break;
    }
  }
  if (unit != 1)
    text = text.drop_back();
  uint64_t count;
  if (text.empty() || text.getAsInteger(10, count) || count == 0 ||
      count > UINT64_MAX / unit)
    return std::nullopt;
  return count * unit;
}

/// `value` as %g writes it: 0.25, 1.5.
static std::string shortest(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

namespace {

struct KVOffloadPass : public kv::impl::KVOffloadPassBase<KVOffloadPass> {
  using KVOffloadPassBase::KVOffloadPassBase;

  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    return emitOptionError(ctx, "kv-offload", option);
  }

  LogicalResult initialize(MLIRContext *ctx) override {
    if (gpuBudget.empty() == (ratio == 0))
      return optionError(ctx, gpuBudget.empty() ? "gpu_budget" : "ratio")
             << (gpuBudget.empty()
                     ? "or 'ratio' is required: the device bytes for the "
                       "offloaded pages (1G), or the fraction of each "
                       "layer's pages on the device (0.25)"
                     : "is given with gpu_budget; give one of the two");
    if (!gpuBudget.empty()) {
      budgetBytes = parseBytes(gpuBudget);
      if (!budgetBytes)
        return optionError(ctx, "gpu_budget")
               << "is '" << gpuBudget
               << "'; allowed: a positive whole number of bytes, optionally "
                  "with a K, M or G suffix (512M)";
    } else if (!(ratio > 0 && ratio <= 1)) {
      return optionError(ctx, "ratio")
             << "is " << shortest(ratio) << "; allowed: a fraction in (0, 1]";
    }
    if (prefetch != "next-step" && prefetch != "next-layer")
      return optionError(ctx, "prefetch")
             << "is '" << prefetch << "'; allowed: next-step, next-layer";
    if (runnersUp > (1u << 16))
      return optionError(ctx, "runners_up")
             << "is " << unsigned(runnersUp) << "; allowed: 0 to 65536 blocks";
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<std::pair<AttentionOp, SelectOp>> selecting;
    WalkResult walked = module.walk([&](AttentionOp attention) {
      Value selection = attention.getSelection();
      if (!selection)
        return WalkResult::advance();
      auto select = selection.getDefiningOp<SelectOp>();
      if (!select) {
        attention.emitError() << "kv-offload: the attention reads a "
                                 "selection that no kv.select made";
        return WalkResult::interrupt();
      }
      selecting.push_back({attention, select});
      return WalkResult::advance();
    });
    if (walked.wasInterrupted())
      return signalPassFailure();
    if (selecting.empty()) {
      module.emitError()
          << "kv-offload: no layer selects what its attention reads, and "
             "offload predicts the pages a step needs from the selection; "
             "run kv-sparse-select before kv-offload";
      return signalPassFailure();
    }

    for (auto [attention, select] : selecting) {
      // Earlier kv-offload invocations leave a prefetch: replace it.
      for (Operation *user :
           llvm::make_early_inc_range(select.getSelection().getUsers()))
        if (isa<PrefetchOp>(user))
          user->erase();
      auto cache = llvm::cast<CacheType>(attention.getCache().getType());
      TwoLevelAttr policy = select.getPolicy();
      OpBuilder builder(attention->getContext());
      builder.setInsertionPointAfter(attention);
      auto op =
          PrefetchOp::create(builder, attention.getLoc(), attention.getCache(),
                             prefetch == "next-step" ? PrefetchMode::NextStep
                                                     : PrefetchMode::NextLayer,
                             select.getSelection(), IntegerAttr(), FloatAttr(),
                             uint32_t(runnersUp));
      if (!budgetBytes) {
        op.setDeviceRatioAttr(builder.getF64FloatAttr(ratio));
        continue;
      }
      // The unit is one KV head's part of a page: heads select apart.
      double pageBytes = cache.getBytesPerToken() * double(cache.getPage()) /
                         double(cache.getHeads());
      uint64_t pages = uint64_t(std::floor(
          double(*budgetBytes) / double(selecting.size()) / pageBytes));
      uint64_t needed = uint64_t(policy.getTopBlocks()) * cache.getHeads();
      if (pages < needed) {
        attention.emitError()
            << "kv-offload: gpu_budget=" << gpuBudget << " leaves room for "
            << pages << " KV-head pages of " << int64_t(pageBytes)
            << " bytes on the device for each of the " << selecting.size()
            << " offloaded layers, fewer than the " << needed
            << " one decode step of one sequence may read (top_blocks for "
               "each KV head); raise gpu_budget or lower top_blocks";
        return signalPassFailure();
      }
      op.setDevicePagesAttr(builder.getI64IntegerAttr(int64_t(pages)));
    }
  }

private:
  std::optional<uint64_t> budgetBytes;
};

} // namespace
