//===- KVEvict.cpp - Bound the caches of some layers by eviction ----------===//
#include "compiler/policy/Allocation.h"
#include "compiler/policy/Budget.h"
#include "dialects/kv/IR/KVOps.h"
#include "passes/CacheTypes.h"
#include "passes/LayerSelection.h"
#include "passes/Passes.h"

#include <map>

namespace mlir::kv {
#define GEN_PASS_DEF_KVEVICTPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

namespace {

/// What a method keeps by default when `window=` and `sinks=` are -1.
struct MethodDefaults {
  StringRef name;
  unsigned window, sinks;
};
constexpr MethodDefaults kMethods[] = {{"triattention", 128, 0},
                                       {"snapkv", 128, 0},
                                       {"h2o", 128, 0},
                                       {"streaming", 0, 4}};
constexpr unsigned kDefaultObserve = 32, kDefaultKernel = 7;
/// allocate=attention without spread=: a layer keeps from half to twice the
/// budget (docs/eviction.md).
constexpr unsigned kDefaultSpread = 2;

struct KVEvictPass : public kv::impl::KVEvictPassBase<KVEvictPass> {
  using KVEvictPassBase::KVEvictPassBase;

  /// Starts an error about `option`, the command-line name.
  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    return emitOptionError(ctx, "kv-evict", option);
  }

  /// Validates the options once, whether or not the module has caches, and
  /// builds the policy they describe.
  LogicalResult initialize(MLIRContext *ctx) override {
    const MethodDefaults *defaults = llvm::find_if(
        kMethods, [&](const MethodDefaults &m) { return m.name == method; });
    if (defaults == std::end(kMethods))
      return optionError(ctx, "method")
             << (method.empty() ? std::string("is required")
                                : "is '" + method + "'")
             << "; allowed: triattention, snapkv, h2o, streaming";
    if (budget.empty())
      return optionError(ctx, "budget")
             << "is required: a fraction in (0, 1] of the tokens seen, with "
                "a '.' (0.25), or a whole token count (1024)";
    kvrt::StatusOr<kvopt::policy::Budget> parsed =
        kvopt::policy::parseBudget(budget);
    if (!parsed)
      return emitError(UnknownLoc::get(ctx))
             << "kv-evict: option 'budget': " << parsed.status().message();

    FailureOr<unsigned> keptWindow =
        resolveKept(ctx, "window", window, defaults->window);
    FailureOr<unsigned> keptSinks =
        resolveKept(ctx, "sinks", sinks, defaults->sinks);
    if (failed(keptWindow) || failed(keptSinks))
      return failure();
    if (interval == 0)
      return optionError(ctx, "interval")
             << "is 0; allowed: at least 1 decode step between compactions";
    bool snapkv = method == "snapkv";
    for (auto [name, value] :
         {std::pair(StringRef("observe"), unsigned(observe)),
          std::pair(StringRef("kernel"), unsigned(kernel))})
      if (value != 0 && !snapkv)
        return optionError(ctx, name)
               << "is " << value << "; only method=snapkv takes " << name;
    if (horizon != 0 && method != "triattention")
      return optionError(ctx, "horizon")
             << "is " << unsigned(horizon)
             << "; only method=triattention takes horizon";
    std::optional<EvictCombine> combination = symbolizeEvictCombine(
        combine.empty() ? StringRef("mean") : StringRef(combine));
    if (!combination)
      return optionError(ctx, "combine")
             << "is '" << combine << "'; allowed: mean, zmax";
    if (!combine.empty() && method != "triattention")
      return optionError(ctx, "combine")
             << "is '" << combine << "'; only method=triattention takes "
             << "combine";
    std::optional<EvictHeads> selection = symbolizeEvictHeads(
        heads.empty() ? StringRef("shared") : StringRef(heads));
    if (!selection)
      return optionError(ctx, "heads")
             << "is '" << heads << "'; allowed: shared, each";
    if (!heads.empty() && method == "streaming")
      return optionError(ctx, "heads")
             << "is '" << heads
             << "'; method=streaming keeps the same entries in every KV head "
                "and takes no heads";
    if (kernel % 2 == 0 && kernel != 0)
      return optionError(ctx, "kernel")
             << "is " << kernel.getValue()
             << "; allowed: an odd number of entries (1, 3, 5, 7, ...)";
    if (!parsed->isFraction &&
        parsed->tokens <= uint64_t(*keptWindow) + *keptSinks)
      return optionError(ctx, "budget")
             << "is " << parsed->tokens << " tokens, but window ("
             << *keptWindow << ") + sinks (" << *keptSinks
             << ") entries are always kept, which leaves no room for scored "
                "entries; raise budget, or lower window or sinks";

    if (allocate != "uniform" && allocate != "attention")
      return optionError(ctx, "allocate")
             << "is '" << allocate << "'; allowed: uniform, attention";
    if (spread != 0 && allocate != "attention")
      return optionError(ctx, "spread")
             << "is " << unsigned(spread)
             << "; only allocate=attention takes spread";
    if (allocate == "attention" && !parsed->isFraction)
      return optionError(ctx, "allocate")
             << "is 'attention', which shares a fraction of the tokens seen "
                "across layers, but budget is "
             << parsed->tokens
             << " tokens; give budget as a fraction (0.25) or "
                "allocate=uniform";

    if (failed(layerSelection.parse(ctx, layers)))
      return failure();

    kept = {*keptWindow, *keptSinks, *selection, *combination};
    Attribute budgetAttr =
        parsed->isFraction
            ? Attribute(FloatAttr::get(Float64Type::get(ctx), parsed->fraction))
            : Attribute(IntegerAttr::get(IntegerType::get(ctx, 64),
                                         int64_t(parsed->tokens)));
    fraction = parsed->isFraction ? parsed->fraction : 0;
    policy = policyWith(ctx, budgetAttr);
    // Not success(policy): that wraps the attribute in a FailureOr, which
    // reads as success even when the verifier refused it.
    return success(bool(policy));
  }

  /// The options' policy with `budgetAttr` as its budget; null (an error
  /// emitted) when its verifier refuses it.
  Attribute policyWith(MLIRContext *ctx, Attribute budgetAttr) {
    auto emitError = [&] { return mlir::emitError(UnknownLoc::get(ctx)); };
    unsigned steps = interval;
    if (method == "triattention")
      return TriAttentionAttr::getChecked(
          emitError, ctx, budgetAttr, kept.window, steps, kept.sinks,
          kept.heads, horizon ? unsigned(horizon) : kDefaultHorizon,
          kept.combine);
    if (method == "snapkv")
      return SnapKVAttr::getChecked(
          emitError, ctx, budgetAttr, kept.window, steps, kept.sinks,
          observe ? unsigned(observe) : kDefaultObserve,
          kernel ? unsigned(kernel) : kDefaultKernel, kept.heads);
    if (method == "h2o")
      return H2OAttr::getChecked(emitError, ctx, budgetAttr, kept.window, steps,
                                 kept.sinks, kept.heads);
    return StreamingAttr::getChecked(emitError, ctx, budgetAttr, kept.window,
                                     steps, kept.sinks);
  }

  /// allocate=attention: each selected layer's policy, its fraction shared
  /// out by the calibrated eviction loss of its cache (kv.evict_loss), or
  /// an error on the first cache without one.
  FailureOr<std::map<int64_t, Attribute>>
  allocatedPolicies(std::map<int64_t, CacheOp> &caches) {
    std::vector<std::vector<float>> losses;
    for (auto &[layer, cacheOp] : caches) {
      CacheOp cache = cacheOp;
      auto *dialect = cache->getContext()->getLoadedDialect<KVDialect>();
      DenseF32ArrayAttr loss = dialect->getEvictLossAttrHelper().getAttr(cache);
      if (!loss)
        return cache.emitError()
               << "kv-evict: layer " << layer
               << " has no calibrated eviction loss ('"
               << KVDialect::EvictLossAttrHelper::getNameStr()
               << "') to allocate budgets by; calibrate again with this "
                  "kvopt (`kvopt compile --calibrate FILE`) or give "
                  "allocate=uniform";
      if (!losses.empty() && loss.size() != int64_t(losses.front().size()))
        return cache.emitError()
               << "kv-evict: layer " << layer << "'s eviction loss has "
               << loss.size() << " points but layer " << caches.begin()->first
               << "'s has " << losses.front().size()
               << "; calibrate the module's layers together";
      losses.emplace_back(loss.asArrayRef().begin(), loss.asArrayRef().end());
    }
    double factor = spread ? double(unsigned(spread)) : kDefaultSpread;
    std::vector<double> fractions = kvopt::policy::allocateFractions(
        losses, fraction, fraction / factor, std::min(1.0, fraction * factor));
    std::map<int64_t, Attribute> policies;
    MLIRContext *ctx = &getContext();
    for (auto [layerCache, f] : llvm::zip_equal(caches, fractions)) {
      Attribute layerPolicy =
          policyWith(ctx, FloatAttr::get(Float64Type::get(ctx), f));
      if (!layerPolicy)
        return failure();
      policies.emplace(layerCache.first, layerPolicy);
    }
    return policies;
  }

  /// `window=` or `sinks=`: -1 for the method's default, else an entry
  /// count that fits the policy's unsigned parameter.
  FailureOr<unsigned> resolveKept(MLIRContext *ctx, StringRef name,
                                  int64_t value, unsigned methodDefault) {
    if (value == -1)
      return methodDefault;
    if (value < 0 || value > int64_t(UINT32_MAX))
      return optionError(ctx, name)
             << "is " << value << "; allowed: 0 to " << UINT32_MAX
             << " entries, or -1 for the method's default";
    return unsigned(value);
  }

  /// Checks that layer `layer`, read by `attention` from `cache`, can be
  /// evicted from under the policy.
  LogicalResult checkLayer(int64_t layer, CacheOp cache, AttentionOp attention,
                           Attribute policy) {
    if (std::optional<uint64_t> window = attention.getSlidingWindow())
      return attention.emitError()
             << "kv-evict: layer " << layer
             << " attends through a sliding window of " << *window
             << " tokens, and eviction assumes every cached entry is visible "
                "to the next query; leave the layer out with layers=";
    auto *dialect = cache->getContext()->getLoadedDialect<KVDialect>();
    if (isa<TriAttentionAttr>(policy) &&
        (!dialect->getQueryCenterAttrHelper().getAttr(cache) ||
         !dialect->getQueryMagnitudeAttrHelper().getAttr(cache)))
      return cache.emitError()
             << "kv-evict: layer " << layer
             << " has no calibrated query centres ('"
             << KVDialect::QueryCenterAttrHelper::getNameStr() << "', '"
             << KVDialect::QueryMagnitudeAttrHelper::getNameStr()
             << "'); method=triattention needs them: run `kvopt compile "
                "--calibrate FILE` (or --calibration stats.json), or use "
                "another method";
    return verifyEvictable(
        llvm::cast<CacheType>(attention.getCache().getType()), policy, [&] {
          InFlightDiagnostic diag = attention.emitError();
          diag << "kv-evict: layer " << layer << ": ";
          return diag;
        });
  }

  /// Scores and evicts `attention`'s cache after it, or gives the pair an
  /// earlier kv-evict left there the new policy.
  LogicalResult evictAfter(int64_t layer, AttentionOp attention,
                           Attribute policy) {
    Value cache = attention.getCache();
    SmallVector<EvictOp> evictions;
    for (Operation *user : cache.getUsers())
      if (auto evict = dyn_cast<EvictOp>(user))
        evictions.push_back(evict);
    if (evictions.size() > 1)
      return attention.emitError()
             << "kv-evict: layer " << layer << "'s cache is evicted from "
             << evictions.size()
             << " times after its append; kv-evict keeps one kv.score and "
                "kv.evict pair per layer";
    if (evictions.size() == 1) {
      EvictOp evict = evictions.front();
      // The kv.evict verifier guarantees a kv.score of this cache.
      auto score = evict.getScores().getDefiningOp<ScoreOp>();
      score.setPolicyAttr(policy);
      score.getQueriesMutable().assign(attention.getQueries());
      evict.setPolicyAttr(policy);
      return success();
    }
    auto cacheType = llvm::cast<CacheType>(cache.getType());
    OpBuilder builder(attention->getContext());
    builder.setInsertionPointAfter(attention);
    auto scoresType = RankedTensorType::get(
        {ShapedType::kDynamic, cacheType.getHeads()}, builder.getF32Type());
    Value scores = ScoreOp::create(builder, attention.getLoc(), scoresType,
                                   cache, policy, attention.getQueries());
    EvictOp::create(builder, attention.getLoc(), cacheType, cache, scores,
                    policy);
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<SelectedLayers> selected = layerSelection.resolve(module);
    if (failed(selected))
      return signalPassFailure();
    std::map<int64_t, CacheOp> caches;
    module.walk([&](CacheOp op) {
      int64_t layer = op.getLayerAttr().getInt();
      if (selected->contains(layer))
        caches.emplace(layer, op);
    });

    std::map<int64_t, SmallVector<AttentionOp>> attentions;
    WalkResult found = module.walk([&](AttentionOp attention) {
      CacheOp cache = cacheOf(attention.getCache());
      if (!cache) {
        attention.emitError()
            << "kv-evict cannot tell which layer's cache this kv.attention "
               "reads: caches must flow from kv.cache to their readers "
               "through kv.append and kv.evict only";
        return WalkResult::interrupt();
      }
      attentions[cache.getLayerAttr().getInt()].push_back(attention);
      return WalkResult::advance();
    });
    if (found.wasInterrupted())
      return signalPassFailure();

    std::map<int64_t, Attribute> policies;
    if (allocate == "attention") {
      FailureOr<std::map<int64_t, Attribute>> allocated =
          allocatedPolicies(caches);
      if (failed(allocated))
        return signalPassFailure();
      policies = std::move(*allocated);
    }
    for (auto &[layer, cache] : caches) {
      Attribute layerPolicy =
          policies.empty() ? policy : policies.find(layer)->second;
      SmallVector<AttentionOp> &readers = attentions[layer];
      if (readers.empty()) {
        cache.emitError() << "kv-evict: no kv.attention reads the cache of "
                             "layer "
                          << layer
                          << ", and kv-evict evicts after a layer's "
                             "attention; leave the layer out with layers=";
        return signalPassFailure();
      }
      if (readers.size() != 1) {
        cache.emitError() << "kv-evict: layer " << layer << " is read by "
                          << readers.size()
                          << " kv.attention ops; kv-evict evicts after the "
                             "one attention of each layer";
        return signalPassFailure();
      }
      if (failed(checkLayer(layer, cache, readers.front(), layerPolicy)) ||
          failed(evictAfter(layer, readers.front(), layerPolicy)))
        return signalPassFailure();
    }
  }

private:
  /// Built from the options by initialize(): the policy at the budget, the
  /// parameters every layer's policy shares, and the budget as a fraction
  /// (0 for a token count).
  Attribute policy;
  struct Kept {
    unsigned window = 0, sinks = 0;
    EvictHeads heads = EvictHeads::Shared;
    EvictCombine combine = EvictCombine::Mean;
  } kept;
  double fraction = 0;
  LayerSelection layerSelection{"kv-evict"};
};

} // namespace
