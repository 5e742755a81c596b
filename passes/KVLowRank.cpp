//===- KVLowRank.cpp - Keys or values stored as latents on calibrated axes ===//
#include "dialects/kv/IR/KVOps.h"
#include "passes/CacheTypes.h"
#include "passes/GroupAxes.h"
#include "passes/LayerSelection.h"
#include "passes/LrkvAxes.h"
#include "passes/Passes.h"
#include "passes/ValueFold.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace mlir::kv {
#define GEN_PASS_DEF_KVLOWRANKPASS
#include "passes/Passes.h.inc"
} // namespace mlir::kv

using namespace mlir;
using namespace mlir::kv;

namespace {

struct KVLowRankPass : public kv::impl::KVLowRankPassBase<KVLowRankPass> {
  using KVLowRankPassBase::KVLowRankPassBase;

  InFlightDiagnostic optionError(MLIRContext *ctx, StringRef option) {
    return emitOptionError(ctx, "kv-lowrank", option);
  }

  LogicalResult initialize(MLIRContext *ctx) override {
    if (method != "pca" && method != "svd" && method != "lrkv")
      return optionError(ctx, "method")
             << "is '" << method << "'; it must be pca, svd or lrkv";
    if (group == 0)
      return optionError(ctx, "group") << "is 0; it must be at least 1";
    if (method == "lrkv" && group != 1)
      return optionError(ctx, "group")
             << "is " << unsigned(group)
             << " with method=lrkv, whose shared basis spans the layer's KV "
                "heads already; each head keeps its own latent (group=1)";
    if (shared.hasValue() && method != "lrkv")
      return optionError(ctx, "shared")
             << "is given with method=" << method
             << "; only method=lrkv has a shared basis";
    if (!(shared >= 0 && shared <= 1)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", double(shared));
      return optionError(ctx, "shared")
             << "is " << text << "; it must be in [0, 1]";
    }
    if (side != "value" && side != "key")
      return optionError(ctx, "side")
             << "is '" << side << "'; it must be key or value";
    const bool hasRatio = ratio != 0, hasRank = rank != 0;
    if (hasRatio == hasRank)
      return optionError(ctx, hasRatio ? "rank" : "ratio")
             << (hasRatio ? "is given with ratio; give one of them"
                          : "is missing; give ratio=R in (0, 1) or rank=N");
    if (hasRatio && !(ratio > 0 && ratio < 1)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", double(ratio));
      return optionError(ctx, "ratio")
             << "is " << text << "; it must be in (0, 1)";
    }
    if (valueBasis != "second_moment" && valueBasis != "attention")
      return optionError(ctx, "value_basis")
             << "is '" << valueBasis
             << "'; it must be second_moment or attention";
    if (method == "svd" && valueBasis.hasValue())
      return optionError(ctx, "value_basis")
             << "is given with method=svd, whose axes are those of the "
                "whitened projection (the plain second moment's); it chooses "
                "among method=pca's";
    // The default (attention) is the values'; keys refuse it only when given.
    if (side == "key" && valueBasis.hasValue() && valueBasis == "attention")
      return optionError(ctx, "value_basis")
             << "is attention, which only values have; keys take their "
                "query-weighted axes";
    if (centre.hasValue() && side != "key")
      return optionError(ctx, "centre")
             << "is given with side=value; values are stored around 0 on the "
                "axes of their second moment, which keep the attention "
                "sink's value (docs/lowrank.md); only keys are centred";
    if (fold && side != "value")
      return optionError(ctx, "fold")
             << "is true with side=key; RoPE rotates each key by its position "
                "between k_proj and the cache, so only values fold";
    if (fold && group != 1)
      return optionError(ctx, "fold")
             << "is true with group=" << unsigned(group)
             << "; a group's latent mixes its heads, which o_proj reads "
                "apart, so only group=1 folds";
    if (allocate != "spectrum" && allocate != "uniform")
      return optionError(ctx, "allocate")
             << "is '" << allocate << "'; it must be spectrum or uniform";
    return layerSelection.parse(ctx, layers);
  }

  /// Which calibrated axes the options select for the side (lrkv fits its
  /// own to the moments of the axes pca would take).
  LowRankBasis basis() const {
    if (method == "svd")
      return LowRankBasis::Svd;
    return side == "value" && valueBasis == "attention"
               ? LowRankBasis::Attention
               : LowRankBasis::SecondMoment;
  }

  /// The names of the axes and spectrum attributes the side projects on.
  std::pair<StringRef, StringRef> axesNames(bool keys) const {
    switch (basis()) {
    case LowRankBasis::Attention:
      return {KVDialect::ValueAttentionAxesAttrHelper::getNameStr(),
              KVDialect::ValueAttentionSpectrumAttrHelper::getNameStr()};
    case LowRankBasis::Svd:
      if (keys)
        return {KVDialect::KeyMomentAxesAttrHelper::getNameStr(),
                KVDialect::KeyMomentSpectrumAttrHelper::getNameStr()};
      break;
    case LowRankBasis::SecondMoment:
      if (keys)
        return {KVDialect::KeyAxesAttrHelper::getNameStr(),
                KVDialect::KeySpectrumAttrHelper::getNameStr()};
      break;
    }
    return {KVDialect::ValueAxesAttrHelper::getNameStr(),
            KVDialect::ValueSpectrumAttrHelper::getNameStr()};
  }

  /// The side's calibrated spectrum of `op` as shares of its total, summed
  /// over the KV heads (largest first), or an error on `op`.
  FailureOr<std::vector<double>> spectrumShares(CacheOp op, bool keys) {
    StringRef name = axesNames(keys).second;
    auto spectrum = op->getAttrOfType<DenseFPElementsAttr>(name);
    if (!spectrum)
      return op.emitError()
             << "kv-lowrank: layer " << op.getLayerAttr().getInt()
             << " has no calibrated " << side << " spectrum ('" << name
             << "') to allocate ranks by; calibrate again or give "
                "allocate=uniform";
    // The dialect verified the shape [heads][head_dim].
    int64_t d = llvm::cast<CacheType>(op.getType()).getHeadDim();
    std::vector<double> shares(size_t(d), 0.0);
    double total = 0;
    for (auto [i, value] : llvm::enumerate(spectrum.getValues<float>())) {
      shares[i % size_t(d)] += value;
      total += value;
    }
    for (double &share : shares)
      share = total > 0 ? share / total : 1.0 / double(d);
    return shares;
  }

  /// Ranks for caches whose spectra (as shares of their total, [G
  /// head_dim]) are `shares`, averaging G round(ratio x head_dim): each
  /// starts at one step (G head_dim / 8), then steps go one at a time to the
  /// layer whose next eigenvalues hold the largest share of its spectrum
  /// (the calibration reconstruction error, greedily), ties to the lower
  /// layer, none past G head_dim - step. What is left of the budget below a
  /// step stays unused.
  std::vector<unsigned>
  allocateRanks(const std::vector<std::vector<double>> &shares) {
    const int64_t g = group;
    std::vector<int64_t> ranks, steps, dims;
    int64_t budget = 0, used = 0;
    for (const std::vector<double> &s : shares) {
      int64_t d = int64_t(s.size()) / g, step = g * std::max<int64_t>(1, d / 8);
      int64_t target =
          g * std::clamp<int64_t>(std::llround(ratio * d), 1, d - 1);
      dims.push_back(g * d);
      steps.push_back(step);
      ranks.push_back(std::min(step, target));
      budget += target;
      used += ranks.back();
    }
    for (;;) {
      int64_t best = -1;
      double bestGain = -1;
      for (size_t l = 0; l < ranks.size(); ++l) {
        if (ranks[l] + steps[l] > dims[l] - steps[l] ||
            used + steps[l] > budget)
          continue;
        double gain = 0;
        for (int64_t k = ranks[l]; k < ranks[l] + steps[l]; ++k)
          gain += shares[l][size_t(k)];
        if (gain > bestGain)
          best = int64_t(l), bestGain = gain;
      }
      if (best < 0)
        break;
      ranks[size_t(best)] += steps[size_t(best)];
      used += steps[size_t(best)];
    }
    return std::vector<unsigned>(ranks.begin(), ranks.end());
  }

  /// Fits LRKV's axes at rank `r` to the side's per-head moments, rebuilt
  /// from the axes and eigenvalues the basis names (B_h diag(w_h) B_h^T:
  /// for query-weighted keys, the weighted moment), and puts them on `op`
  /// as groups of one head (kv.key_group_axes, kv.value_group_axes), the
  /// keys' weights kept; or an error on `op`.
  LogicalResult setLrkvAxes(CacheOp op, bool keys, unsigned r) {
    auto type = llvm::cast<CacheType>(op.getType());
    const int64_t heads = type.getHeads(), d = type.getHeadDim();
    auto [axesName, spectrumName] = axesNames(keys);
    auto spectrum = op->getAttrOfType<DenseFPElementsAttr>(spectrumName);
    if (!spectrum)
      return op.emitError()
             << "kv-lowrank: method=lrkv needs layer "
             << op.getLayerAttr().getInt() << "'s calibrated " << side
             << " spectrum ('" << spectrumName
             << "') to rebuild its heads' moments from; calibrate again";
    // The dialect verified the shapes: axes [heads][d][d] or, for
    // query-weighted keys, [heads][d][d + 1] (the weights last).
    auto axes = op->getAttrOfType<DenseFPElementsAttr>(axesName);
    const int64_t columns = axes.getType().getDimSize(2);
    std::vector<float> b(axes.getValues<float>().begin(),
                         axes.getValues<float>().end());
    std::vector<float> w(spectrum.getValues<float>().begin(),
                         spectrum.getValues<float>().end());
    std::vector<double> moments(size_t(heads * d * d), 0.0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j)
          for (int64_t k = 0; k < d; ++k)
            moments[size_t((h * d + i) * d + j)] +=
                double(b[size_t((h * d + i) * columns + k)]) *
                double(w[size_t(h * d + k)]) *
                double(b[size_t((h * d + j) * columns + k)]);
    const int64_t sharedRank =
        std::clamp<int64_t>(std::llround(shared * r), 0, int64_t(r));
    LrkvAxes found = lrkvAxes(moments, heads, d, sharedRank);
    std::vector<float> values;
    values.reserve(size_t(heads * d * (d + 1)));
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d; ++i) {
        for (int64_t k = 0; k < d; ++k)
          values.push_back(float(found.axes[size_t((h * d + i) * d + k)]));
        values.push_back(!keys         ? 0.0f
                         : columns > d ? b[size_t((h * d + i) * columns + d)]
                                       : 1.0f);
      }
    setFittedAxes(op, keys, heads, d, values);
    return success();
  }

  /// Puts `values` ([groups][size][size + 1]: per group its axes, then the
  /// keys' weights or 0) on `op` as the side's kv.key_group_axes or
  /// kv.value_group_axes, which the exporter takes the basis from.
  void setFittedAxes(CacheOp op, bool keys, int64_t groups, int64_t size,
                     ArrayRef<float> values) {
    auto tensor = RankedTensorType::get({groups, size, size + 1},
                                        Float32Type::get(&getContext()));
    auto attr = DenseFPElementsAttr::get(tensor, values);
    auto *dialect = getContext().getLoadedDialect<KVDialect>();
    if (keys)
      dialect->getKeyGroupAxesAttrHelper().setAttr(op, attr);
    else
      dialect->getValueGroupAxesAttrHelper().setAttr(op, attr);
  }

  /// The joint moment attribute the side's group axes come from.
  std::pair<StringRef, DenseFPElementsAttr> jointMoment(CacheOp op,
                                                        bool keys) const {
    StringRef name =
        keys ? KVDialect::KeyJointMomentAttrHelper::getNameStr()
        : basis() == LowRankBasis::Attention
            ? KVDialect::ValueAttentionJointMomentAttrHelper::getNameStr()
            : KVDialect::ValueJointMomentAttrHelper::getNameStr();
    return {name, op->getAttrOfType<DenseFPElementsAttr>(name)};
  }

  /// Puts the axes of each group of `group` KV heads of `op`'s side on it
  /// (kv.key_group_axes, kv.value_group_axes) and returns their spectrum's
  /// shares, or an error on `op`.
  FailureOr<std::vector<double>> setGroupAxes(CacheOp op, bool keys) {
    auto type = llvm::cast<CacheType>(op.getType());
    const int64_t heads = type.getHeads(), d = type.getHeadDim();
    const int64_t layer = op.getLayerAttr().getInt();
    if (heads % int64_t(group))
      return op.emitError()
             << "kv-lowrank: group=" << unsigned(group)
             << " does not divide layer " << layer << "'s " << heads
             << " KV heads; give a divisor of them (1 keeps a "
                "latent per head)";
    auto [name, moment] = jointMoment(op, keys);
    if (!moment)
      return op.emitError()
             << "kv-lowrank: group=" << unsigned(group) << " needs layer "
             << layer << "'s joint " << side << " moment across its KV heads ('"
             << name << "'); " << calibrationSource(getOperation())
             << ": calibrate again with this kvopt";
    // Query-weighted keys (method=pca) weigh each coordinate as the
    // per-head axes do (kv.key_axes' last column).
    std::optional<std::vector<double>> weights;
    if (keys && basis() == LowRankBasis::SecondMoment) {
      auto axes = op->getAttrOfType<DenseFPElementsAttr>(
          KVDialect::KeyAxesAttrHelper::getNameStr());
      if (!axes)
        return op.emitError()
               << "kv-lowrank: layer " << layer
               << " has no query-weighted key axes ('"
               << KVDialect::KeyAxesAttrHelper::getNameStr()
               << "') to weigh its group's keys by; calibrate with statistics "
                  "that record query magnitudes, or give method=svd";
      weights.emplace();
      for (auto [i, value] : llvm::enumerate(axes.getValues<float>()))
        if (i % size_t(d + 1) == size_t(d))
          weights->push_back(value);
    }
    GroupAxes found =
        groupAxes(moment, heads, d, group, weights ? &*weights : nullptr, keys);
    const int64_t size = int64_t(group) * d;
    setFittedAxes(op, keys, heads / int64_t(group), size, found.axes);
    double total = 0;
    for (double v : found.spectrum)
      total += v;
    for (double &v : found.spectrum)
      v = total > 0 ? v / total : 1.0 / double(size);
    return std::move(found.spectrum);
  }

  /// The value axes of `op` the latent is taken on, for folding: the
  /// calibrated ones the options name, or method=lrkv's fitted ones.
  HeadAxes foldedAxes(CacheOp op, bool lrkv) {
    auto type = llvm::cast<CacheType>(op.getType());
    auto *dialect = getContext().getLoadedDialect<KVDialect>();
    // The dialect verified the shapes; setLrkvAxes put the fitted ones.
    DenseFPElementsAttr attr =
        lrkv ? dialect->getValueGroupAxesAttrHelper().getAttr(op)
             : op->getAttrOfType<DenseFPElementsAttr>(axesNames(false).first);
    HeadAxes axes;
    axes.values.assign(attr.getValues<float>().begin(),
                       attr.getValues<float>().end());
    axes.kvHeads = type.getHeads();
    axes.headDim = type.getHeadDim();
    axes.stride = lrkv ? axes.headDim + 1 : axes.headDim;
    return axes;
  }

  /// What the module's statistics lack, for a diagnostic naming where they
  /// came from (kv.calibration).
  static std::string calibrationSource(ModuleOp module) {
    auto *dialect = module.getContext()->getLoadedDialect<KVDialect>();
    if (CalibrationAttr c = dialect->getCalibrationAttrHelper().getAttr(module))
      return ("the module's statistics (calibrated on '" + c.getSource() +
              "') have none")
          .str();
    return "the module has no statistics";
  }

  /// The rank (of a group's latent) for heads of `headDim`, or an error on
  /// `op`.
  FailureOr<unsigned> rankFor(CacheOp op, int64_t headDim) {
    const int64_t g = group, size = g * headDim;
    int64_t r = rank ? int64_t(rank)
                     : g * std::max<int64_t>(1, std::llround(ratio * headDim));
    if (r >= size)
      return op.emitError()
             << "kv-lowrank: rank " << r << " keeps every coordinate of "
             << (g > 1 ? "groups of " + std::to_string(g) + " heads of "
                       : std::string("heads of "))
             << headDim << "; it must be below " << size;
    if (r % g)
      return op.emitError()
             << "kv-lowrank: rank " << r << " is not a multiple of group=" << g
             << "; each head of a group stores an equal share of its latent";
    return unsigned(r);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkCachesStayInKVOps(module, "kv-lowrank")))
      return signalPassFailure();
    FailureOr<SelectedLayers> selected = layerSelection.resolve(module);
    if (failed(selected))
      return signalPassFailure();
    auto *dialect = getContext().getLoadedDialect<KVDialect>();
    const bool keys = side == "key";
    const bool lrkv = method == "lrkv";
    const LowRankBasis chosen = basis();
    const bool attention = chosen == LowRankBasis::Attention;
    const StringRef axesName = axesNames(keys).first;
    std::vector<CacheOp> caches;
    WalkResult result = module.walk([&](CacheOp op) -> WalkResult {
      if (!selected->contains(op.getLayerAttr().getInt()))
        return WalkResult::advance();
      const bool hasAxes = bool(op->getAttr(axesName));
      // Without the values' plain axes (and the ones asked for) the module
      // was never calibrated.
      bool calibrated =
          hasAxes ||
          (attention && dialect->getValueAxesAttrHelper().getAttr(op));
      if (!calibrated)
        return op.emitError()
               << "kv-lowrank: layer " << op.getLayerAttr().getInt()
               << " has no calibrated " << side << " axes ('"
               << (attention ? KVDialect::ValueAxesAttrHelper::getNameStr()
                             : axesName)
               << "'); run `kvopt compile --calibrate FILE` with statistics "
               << (!keys ? "that record value covariances"
                   : chosen == LowRankBasis::Svd
                       ? "that record key covariances of a model with RoPE"
                       : "that record key covariances and query magnitudes "
                         "of a model with RoPE");
      if (!hasAxes)
        return op.emitError()
               << "kv-lowrank: value_basis=attention (the default for values) "
                  "needs layer "
               << op.getLayerAttr().getInt()
               << "'s attention-weighted value axes ('"
               << KVDialect::ValueAttentionAxesAttrHelper::getNameStr()
               << "'), which come from the statistics' "
                  "value_attention_moment; "
               << calibrationSource(module)
               << ": calibrate again with this kvopt, on windows longer than "
                  "the exact sinks and window, or give "
                  "value_basis=second_moment";
      if (keys && centre && !dialect->getKeyMeanAttrHelper().getAttr(op))
        return op.emitError()
               << "kv-lowrank: centre=true (the default for keys) needs layer "
               << op.getLayerAttr().getInt() << "'s calibrated key mean ('"
               << KVDialect::KeyMeanAttrHelper::getNameStr() << "'); "
               << calibrationSource(module)
               << ": calibrate again with this kvopt, or give centre=false";
      caches.push_back(op);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();

    // Each cache's spectrum as shares of its total (one latent per head:
    // the calibrated one, summed over heads; per group: its joint moment's,
    // whose axes go on the cache).
    std::vector<std::vector<double>> shares;
    for (CacheOp op : caches) {
      FailureOr<std::vector<double>> s = group > 1 ? setGroupAxes(op, keys)
                                         : ratio != 0 && allocate == "spectrum"
                                             ? spectrumShares(op, keys)
                                             : std::vector<double>();
      if (failed(s))
        return signalPassFailure();
      shares.push_back(std::move(*s));
    }
    std::vector<unsigned> ranks;
    if (ratio != 0 && allocate == "spectrum") {
      ranks = allocateRanks(shares);
    } else {
      for (CacheOp op : caches) {
        FailureOr<unsigned> r =
            rankFor(op, llvm::cast<CacheType>(op.getType()).getHeadDim());
        if (failed(r))
          return signalPassFailure();
        ranks.push_back(*r);
      }
    }

    for (size_t i = 0; i < caches.size(); ++i) {
      CacheOp op = caches[i];
      unsigned r = ranks[i];
      if (lrkv && failed(setLrkvAxes(op, keys, r)))
        return signalPassFailure();
      auto type = llvm::cast<CacheType>(op.getType());
      // A side that is low-rank already gets the new rank and exact tokens
      // and keeps its latent's encoding: the last invocation wins.
      Attribute current = keys ? type.getKey() : type.getValue();
      const LowRankBasis axes = lrkv ? LowRankBasis::Lrkv : chosen;
      bool folded = false;
      if (auto previous = dyn_cast<LowRankEncodingAttr>(current)) {
        folded = previous.getFolded();
        current = previous.getLatent();
        // Folded values arrive on the axes they were folded on: another
        // truncation of those is another rank; any other axes are not.
        if (folded && (lrkv || previous.getBasis() != axes)) {
          op.emitError()
              << "kv-lowrank: layer " << op.getLayerAttr().getInt()
              << "'s values were folded on the "
              << stringifyLowRankBasis(previous.getBasis())
              << " axes by an earlier kv-lowrank{fold=true}; v_proj writes "
                 "them on those, so a later kv-lowrank may change their rank "
                 "and exact tokens on the same axes (method=lrkv's depend on "
                 "the rank), not take others";
          return signalPassFailure();
        }
      }
      if (fold && !folded) {
        if (failed(foldValueProjections(op, foldedAxes(op, lrkv))))
          return signalPassFailure();
        folded = true;
      }
      auto emitError = [&] { return op.emitError(); };
      Attribute lowRank = LowRankEncodingAttr::getChecked(
          emitError, &getContext(), r, current, unsigned(sinks),
          unsigned(window), axes, unsigned(group), folded, keys && centre);
      if (!lowRank ||
          failed(setCacheEncodings(op, keys ? lowRank : type.getKey(),
                                   keys ? type.getValue() : lowRank)))
        return signalPassFailure();
    }
    propagateCacheTypes(module);
  }

private:
  LayerSelection layerSelection{"kv-lowrank"};
};

} // namespace
