//===- KVSparseSelect.cpp - Attend to a selected subset of the cache ------===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/CacheTypes.h"
#include "passes/LayerSelection.h"
#include "passes/Passes.h"

#include <numeric>

namespace mlir::kv {
#define GEN_PASS_DEF_KVSPARSESELECTPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

namespace {

/// Quest keeps its first two layers dense; so do we by default.
constexpr int64_t kDefaultDenseLayers = 2;

struct KVSparseSelectPass
    : public kv::impl::KVSparseSelectPassBase<KVSparseSelectPass> {
  using KVSparseSelectPassBase::KVSparseSelectPassBase;

  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    return emitOptionError(ctx, "kv-sparse-select", option);
  }

  /// Validates the options once, whether or not the module has caches, and
  /// builds the policy they describe.
  LogicalResult initialize(MLIRContext *ctx) override {
    bool quest = method == "quest";
    if (!quest && method != "twolevel")
      return optionError(ctx, "method")
             << (method.empty() ? std::string("is required")
                                : "is '" + method + "'")
             << "; allowed: quest, twolevel";
    unsigned entries = block ? unsigned(block) : quest ? 16 : 64;
    if (!llvm::isPowerOf2_32(entries))
      return optionError(ctx, "block")
             << "is " << entries << "; allowed: a power of two (16, 32, 64)";
    if (topBlocks == 0)
      return optionError(ctx, "top_blocks")
             << "is required: the blocks each KV head keeps per decode step";
    uint64_t inTopBlocks = uint64_t(topBlocks) * entries;
    if (quest && topTokens != 0)
      return optionError(ctx, "top_tokens")
             << "is " << unsigned(topTokens)
             << "; method=quest attends to every entry of its top blocks ("
             << inTopBlocks << "); use method=twolevel to select entries";
    if (!quest && topTokens == 0)
      return optionError(ctx, "top_tokens")
             << "is required for method=twolevel: the entries each KV head "
                "attends to per decode step";
    if (topTokens > inTopBlocks)
      return optionError(ctx, "top_tokens")
             << "is " << unsigned(topTokens) << ", more than the "
             << inTopBlocks << " entries of top_blocks (" << unsigned(topBlocks)
             << ") x block (" << entries
             << "); raise top_blocks or lower top_tokens";
    if (inTopBlocks > UINT32_MAX)
      return optionError(ctx, "top_blocks")
             << "is " << unsigned(topBlocks) << ": top_blocks x block ("
             << inTopBlocks << ") must fit in 32 bits";
    if (denseLayers < -1)
      return optionError(ctx, "dense_layers")
             << "is " << denseLayers.getValue()
             << "; allowed: 0 or more layers, or -1 for the default (2)";
    auto emitError = [&] { return mlir::emitError(UnknownLoc::get(ctx)); };
    policy = TwoLevelAttr::getChecked(
        emitError, ctx, entries, unsigned(topBlocks),
        quest ? unsigned(inTopBlocks) : unsigned(topTokens));
    // Not success(policy): that wraps the attribute in a FailureOr, which
    // reads as success even when the verifier refused it.
    return success(bool(policy));
  }

  /// Makes `attention` (of `layer`, whose cache `cache` is) read a
  /// selection under the policy.
  LogicalResult selectFor(int64_t layer, CacheOp cache, AttentionOp attention) {
    if (std::optional<uint64_t> window = attention.getSlidingWindow())
      return attention.emitError()
             << "kv-sparse-select: layer " << layer
             << " attends through a sliding window of " << *window
             << " tokens, and block summaries assume every cached entry is "
                "visible to the query; raise dense_layers past it";
    auto type = llvm::cast<CacheType>(cache.getType());
    int64_t page = std::lcm(type.getPage(), int64_t(policy.getBlock()));
    if (page != type.getPage() && failed(setCachePage(cache, page)))
      return failure();

    if (Value selection = attention.getSelection()) {
      auto select = selection.getDefiningOp<SelectOp>();
      if (!select)
        return attention.emitError()
               << "kv-sparse-select: layer " << layer
               << "'s attention reads a selection that no kv.select made";
      return replaceSelect(select, attention);
    }
    OpBuilder builder(attention);
    Value queries = attention.getQueries();
    auto selectionType = RankedTensorType::get(
        {ShapedType::kDynamic, type.getHeads(), policy.getTopTokens()},
        builder.getI32Type());
    auto select = SelectOp::create(builder, attention.getLoc(), selectionType,
                                   queries, attention.getCache(), policy);
    attention.getSelectionMutable().assign(select.getSelection());
    return success();
  }

  /// Gives an earlier kv-sparse-select's `select` the new policy: its
  /// result type holds top_tokens, so a new op takes its place.
  LogicalResult replaceSelect(SelectOp select, AttentionOp attention) {
    auto oldType = llvm::cast<RankedTensorType>(select.getType());
    auto type = RankedTensorType::get(
        {oldType.getDimSize(0), oldType.getDimSize(1), policy.getTopTokens()},
        oldType.getElementType());
    OpBuilder builder(select);
    auto replacement =
        SelectOp::create(builder, select.getLoc(), type, select.getQueries(),
                         select.getCache(), policy);
    attention.getSelectionMutable().assign(replacement.getSelection());
    if (select->use_empty())
      select.erase();
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkCachesStayInKVOps(module, "kv-sparse-select")))
      return signalPassFailure();
    int64_t dense = denseLayers == -1 ? kDefaultDenseLayers : denseLayers;
    CacheOp last;
    module.walk([&](CacheOp op) {
      if (!last || op.getLayerAttr().getInt() > last.getLayerAttr().getInt())
        last = op;
    });
    if (last && dense > last.getLayerAttr().getInt()) {
      last.emitError() << "kv-sparse-select: dense_layers=" << dense
                       << " leaves no layer to select in: the model has "
                       << last.getLayerAttr().getInt() + 1
                       << "; lower dense_layers";
      return signalPassFailure();
    }

    WalkResult walked = module.walk([&](AttentionOp attention) {
      CacheOp cache = cacheOf(attention.getCache());
      if (!cache) {
        attention.emitError()
            << "kv-sparse-select cannot tell which layer's cache this "
               "kv.attention reads: caches must flow from kv.cache to their "
               "readers through kv.append and kv.evict only";
        return WalkResult::interrupt();
      }
      int64_t layer = cache.getLayerAttr().getInt();
      if (layer < dense)
        return WalkResult::advance();
      return failed(selectFor(layer, cache, attention))
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (walked.wasInterrupted())
      return signalPassFailure();
    propagateCacheTypes(module);
  }

private:
  /// Built from the options by initialize().
  TwoLevelAttr policy;
};

} // namespace
