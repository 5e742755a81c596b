//===- Statistics.cpp - Calibration statistics into the module ------------===//
#include "compiler/calibrate/Statistics.h"
#include "compiler/calibrate/SymmetricEigen.h"

#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

using kvrt::Status;

namespace kvopt::calibrate {
namespace {

std::string str(int64_t value) { return std::to_string(value); }

/// "1 layer", "2 layers".
std::string count(int64_t n, const std::string &noun) {
  return str(n) + " " + noun + (n == 1 ? "" : "s");
}

/// Checks one statistic of one layer: a finite, non-negative value per head.
Status checkPerHead(const std::vector<float> &values, int64_t kvHeads,
                    const std::string &what, const std::string &origin) {
  if (int64_t(values.size()) != kvHeads)
    return Status::error(origin + ": " + what + " has " + str(values.size()) +
                         " values for " + str(kvHeads) + " KV heads");
  for (size_t head = 0; head < values.size(); ++head)
    if (!std::isfinite(values[head]) || values[head] < 0)
      return Status::error(origin + ": " + what + " of KV head " + str(head) +
                           " is " + std::to_string(values[head]) +
                           "; it must be finite and non-negative");
  return Status::ok();
}

/// Checks one pre-RoPE statistic of one layer: `heads` x `perHead` finite
/// values, non-negative when `magnitude`.
Status checkPairs(const std::vector<float> &values, int64_t heads,
                  int64_t perHead, bool magnitude, const std::string &what,
                  const std::string &origin) {
  if (int64_t(values.size()) != heads * perHead)
    return Status::error(origin + ": " + what + " has " + str(values.size()) +
                         " values for " + str(heads) + " heads of " +
                         str(perHead));
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]) || (magnitude && values[i] < 0))
      return Status::error(origin + ": " + what + " of head " +
                           str(int64_t(i) / perHead) + " is " +
                           std::to_string(values[i]) + "; it must be finite" +
                           (magnitude ? " and non-negative" : ""));
  return Status::ok();
}

/// The kv.cache op whose entries `cache` holds, through appends and
/// evictions; null when it comes from elsewhere.
mlir::kv::CacheOp cacheOf(mlir::Value cache) {
  while (mlir::Operation *op = cache.getDefiningOp()) {
    if (auto found = llvm::dyn_cast<mlir::kv::CacheOp>(op))
      return found;
    if (auto append = llvm::dyn_cast<mlir::kv::AppendOp>(op))
      cache = append.getCache();
    else if (auto evict = llvm::dyn_cast<mlir::kv::EvictOp>(op))
      cache = evict.getCache();
    else
      return {};
  }
  return {};
}

/// The pre-RoPE statistics as a dense f32 attribute of `shape`.
mlir::DenseFPElementsAttr dense(mlir::MLIRContext *context,
                                llvm::ArrayRef<int64_t> shape,
                                const std::vector<float> &values) {
  auto type =
      mlir::RankedTensorType::get(shape, mlir::Float32Type::get(context));
  return llvm::cast<mlir::DenseFPElementsAttr>(
      mlir::DenseElementsAttr::get(type, llvm::ArrayRef<float>(values)));
}

} // namespace

/// A layer's axes per KV head as kv.*_axes holds them, and their
/// eigenvalues (kv.*_spectrum: [kvHeads][d], largest first, at least 0).
struct LayerAxes {
  std::vector<float> axes, spectrum;

  void addSpectrum(const std::vector<double> &values) {
    for (double v : values)
      spectrum.push_back(float(std::max(v, 0.0)));
  }
};

/// The eigenvectors of each KV head's symmetric `moments` ([heads][d][d]),
/// as kv.value_axes holds them, and their eigenvalues.
static LayerAxes momentAxes(const std::vector<double> &moments, int64_t heads,
                            int64_t d) {
  LayerAxes out;
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<double> moment(moments.begin() + h * d * d,
                               moments.begin() + (h + 1) * d * d);
    SymmetricEigen eigen = symmetricEigen(moment, d);
    out.axes.insert(out.axes.end(), eigen.vectors.begin(), eigen.vectors.end());
    out.addSpectrum(eigen.values);
  }
  return out;
}

void secondMomentAxes(const std::vector<double> &mean,
                      const std::vector<double> &covariance, int64_t heads,
                      int64_t d, std::vector<float> &axes,
                      std::vector<float> &spectrum) {
  std::vector<double> moments = covariance;
  for (int64_t h = 0; h < heads; ++h) {
    const double *mu = mean.data() + h * d;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        moments[size_t((h * d + i) * d + j)] += mu[i] * mu[j];
  }
  LayerAxes out = momentAxes(moments, heads, d);
  axes = std::move(out.axes);
  spectrum = std::move(out.spectrum);
}

/// The query-weighted axes of each KV head's keys before RoPE, as
/// kv.key_axes holds them ([kvHeads][d][d + 1]: the eigenvectors of
/// S E[k k^T] S, largest first, then the weights S). Coordinate i weighs
/// s_i = sqrt(mean over the group's query heads of E|q_f|^2), f its RoPE
/// pair, taking E|q_f|^2 as (E|q_f|)^2 from the mean magnitudes: then
/// |S (k - k')| bounds how far q . k moves for a typical query, at any
/// distance (RoPE keeps each pair's magnitude). A floor of 1e-6 of the
/// largest weight keeps S invertible.
static LayerAxes keyAxes(const Statistics &stats, const LayerStatistics &s,
                         mlir::kv::RopeStyle style) {
  const int64_t d = stats.headDim, half = d / 2, heads = stats.kvHeads;
  const int64_t group = stats.heads / heads;
  const bool interleaved = style == mlir::kv::RopeStyle::Interleaved;
  LayerAxes out;
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<double> weight(size_t(d), 0.0);
    for (int64_t f = 0; f < half; ++f) {
      double sum = 0;
      for (int64_t q = h * group; q < (h + 1) * group; ++q) {
        double m = s.queryMagnitude[size_t(q * half + f)];
        sum += m * m;
      }
      int64_t a = interleaved ? 2 * f : f, b = interleaved ? a + 1 : f + half;
      weight[size_t(a)] = weight[size_t(b)] = std::sqrt(sum / double(group));
    }
    double floor = 1e-6 * *std::max_element(weight.begin(), weight.end());
    for (double &w : weight)
      w = std::max(w, floor > 0 ? floor : 1.0);
    std::vector<double> moment(size_t(d * d));
    const double *mu = s.keyMean.data() + h * d;
    const double *cov = s.keyCovariance.data() + h * d * d;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        moment[size_t(i * d + j)] = weight[size_t(i)] *
                                    (cov[i * d + j] + mu[i] * mu[j]) *
                                    weight[size_t(j)];
    SymmetricEigen eigen = symmetricEigen(moment, d);
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < d; ++j)
        out.axes.push_back(float(eigen.vectors[size_t(i * d + j)]));
      out.axes.push_back(float(weight[size_t(i)]));
    }
    out.addSpectrum(eigen.values);
  }
  return out;
}

Status attachStatistics(mlir::ModuleOp module, const Statistics &stats,
                        const std::string &origin) {
  std::map<int64_t, mlir::kv::CacheOp> caches;
  mlir::WalkResult walk = module.walk([&](mlir::kv::CacheOp op) {
    if (!caches.emplace(int64_t(op.getLayer()), op).second)
      return mlir::WalkResult::interrupt();
    return mlir::WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return Status::error(origin + ": the module opens a layer's cache twice, "
                                  "so its statistics have no one place");
  int64_t layers = int64_t(stats.layers.size());
  if (int64_t(caches.size()) != layers)
    return Status::error(origin + ": the statistics describe " +
                         count(layers, "layer") + " but the model has " +
                         count(int64_t(caches.size()), "layer"));
  for (auto &[layer, op] : caches) {
    if (layer >= layers)
      return Status::error(origin + ": the model has a cache for layer " +
                           str(layer) + " but the statistics stop at layer " +
                           str(layers - 1));
    auto type = llvm::cast<mlir::kv::CacheType>(op.getType());
    if (type.getHeads() != stats.kvHeads || type.getHeadDim() != stats.headDim)
      return Status::error(origin + ": the statistics describe caches of " +
                           str(stats.kvHeads) + " KV heads of " +
                           str(stats.headDim) + " but layer " + str(layer) +
                           "'s cache has " + str(type.getHeads()) +
                           " KV heads of " + str(type.getHeadDim()));
    std::string prefix = "layer " + str(layer) + "'s ";
    KVRT_RETURN_IF_ERROR(checkPerHead(stats.layers[layer].keyAbsMax,
                                      stats.kvHeads, prefix + "key absmax",
                                      origin));
    KVRT_RETURN_IF_ERROR(checkPerHead(stats.layers[layer].valueAbsMax,
                                      stats.kvHeads, prefix + "value absmax",
                                      origin));
    const LayerStatistics &s = stats.layers[layer];
    if (stats.hasAttentionMoment() &&
        int64_t(s.valueAttentionMoment.size()) !=
            stats.kvHeads * stats.headDim * stats.headDim)
      return Status::error(
          origin + ": " + prefix + "attention-weighted value moment has " +
          str(int64_t(s.valueAttentionMoment.size())) +
          " values, not one square of " + str(stats.headDim) + " per KV head");
    const size_t jointSize = size_t(stats.kvHeads * stats.headDim);
    for (const std::vector<double> *joint :
         {&s.keyJointMoment, &s.valueJointMoment, &s.valueAttentionJointMoment})
      if (stats.hasJointMoments() && !joint->empty() &&
          joint->size() != jointSize * jointSize)
        return Status::error(origin + ": " + prefix + "joint moment has " +
                             str(int64_t(joint->size())) +
                             " values, not one square of " + str(jointSize) +
                             " (the KV heads' coordinates together)");
    if (stats.hasJointMoments() &&
        (s.keyJointMoment.empty() || s.valueJointMoment.empty()))
      return Status::error(origin + ": " + prefix +
                           "joint moments are missing while layer 0 has them");
    if (stats.hasEvictLoss()) {
      const std::vector<float> &loss = s.evictLoss;
      if (loss.size() != stats.layers.front().evictLoss.size())
        return Status::error(
            origin + ": " + prefix + "eviction loss has " +
            str(int64_t(loss.size())) + " values while layer 0's has " +
            str(int64_t(stats.layers.front().evictLoss.size())));
      for (size_t i = 0; i < loss.size(); ++i)
        if (!(loss[i] >= 0 && loss[i] <= 1) || (i && loss[i] > loss[i - 1]))
          return Status::error(origin + ": " + prefix + "eviction loss " +
                               std::to_string(loss[i]) + " at point " +
                               str(int64_t(i)) +
                               " is not in [0, 1] or is above the one "
                               "before it");
    }
    if (!stats.heads) {
      if (!s.queryCenter.empty() || !s.queryMagnitude.empty() ||
          !s.keyCenter.empty() || !s.keyMagnitude.empty())
        return Status::error(origin + ": layer " + str(layer) +
                             " has pre-RoPE statistics but the number of "
                             "query heads is not given");
      continue;
    }
    if (stats.headDim % 2 || stats.heads % stats.kvHeads)
      return Status::error(
          origin +
          ": pre-RoPE statistics need an even head dimension and a "
          "multiple of the " +
          str(stats.kvHeads) + " KV heads as query heads, not " +
          str(stats.headDim) + " and " + str(stats.heads));
    int64_t pairs = stats.headDim / 2;
    KVRT_RETURN_IF_ERROR(checkPairs(s.queryCenter, stats.heads, 2 * pairs,
                                    false, prefix + "query centre", origin));
    KVRT_RETURN_IF_ERROR(checkPairs(s.queryMagnitude, stats.heads, pairs, true,
                                    prefix + "query magnitude", origin));
    KVRT_RETURN_IF_ERROR(checkPairs(s.keyCenter, stats.kvHeads, 2 * pairs,
                                    false, prefix + "key centre", origin));
    KVRT_RETURN_IF_ERROR(checkPairs(s.keyMagnitude, stats.kvHeads, pairs, true,
                                    prefix + "key magnitude", origin));
  }
  if (stats.heads) {
    std::optional<std::string> mismatch;
    module.walk([&](mlir::kv::AttentionOp op) {
      auto queries = llvm::cast<mlir::ShapedType>(op.getQueries().getType());
      mlir::kv::CacheOp cache = cacheOf(op.getCache());
      if (!mismatch && cache && !queries.isDynamicDim(1) &&
          queries.getDimSize(1) != stats.heads)
        mismatch = origin + ": the statistics describe " +
                   count(stats.heads, "query head") + " but layer " +
                   str(int64_t(cache.getLayer())) + "'s attention has " +
                   count(queries.getDimSize(1), "query head");
    });
    if (mismatch)
      return Status::error(*mismatch);
  }

  mlir::MLIRContext *context = module.getContext();
  auto *dialect = context->getLoadedDialect<mlir::kv::KVDialect>();
  // How RoPE pairs coordinates, which the key axes' weights follow; a model
  // without RoPE gets no key axes.
  std::optional<mlir::kv::RopeStyle> ropeStyle;
  module.walk([&](mlir::kv::RopeOp op) {
    ropeStyle = op.getStyle();
    return mlir::WalkResult::interrupt();
  });
  const CalibrationSource &source = stats.source;
  dialect->getCalibrationAttrHelper().setAttr(
      module, mlir::kv::CalibrationAttr::get(context, source.file, source.xxh64,
                                             source.tokens, source.window));
  for (auto &[layer, op] : caches) {
    const LayerStatistics &s = stats.layers[layer];
    dialect->getKeyAbsmaxAttrHelper().setAttr(
        op, mlir::DenseF32ArrayAttr::get(context, s.keyAbsMax));
    dialect->getValueAbsmaxAttrHelper().setAttr(
        op, mlir::DenseF32ArrayAttr::get(context, s.valueAbsMax));
    const int64_t d = stats.headDim, heads = stats.kvHeads;
    // Sets (or, without `axes`, removes) a pair of axes and spectrum
    // attributes of the [heads][d][d] shape.
    auto setAxes = [&](auto &&axesHelper, auto &&spectrumHelper,
                       const LayerAxes *axes) {
      if (!axes) {
        axesHelper.removeAttr(op);
        spectrumHelper.removeAttr(op);
        return;
      }
      axesHelper.setAttr(op, dense(context, {heads, d, d}, axes->axes));
      spectrumHelper.setAttr(op, dense(context, {heads, d}, axes->spectrum));
    };
    // The principal axes of each KV head's second moment E[x x^T] (the
    // covariance plus mu mu^T), largest first. Uncentred, because the
    // values' mean lies along directions of little variance, and a centred
    // basis drops them, and with them the value of the attention sink,
    // whose small vector is mostly -mu after centring (docs/lowrank.md).
    auto secondMoment = [&](const std::vector<double> &mean,
                            const std::vector<double> &covariance) {
      LayerAxes out;
      secondMomentAxes(mean, covariance, heads, d, out.axes, out.spectrum);
      return out;
    };
    // The values' (kv-lowrank{value_basis=second_moment} and method=svd).
    std::optional<LayerAxes> values;
    if (stats.hasMoments())
      values = secondMoment(s.valueMean, s.valueCovariance);
    setAxes(dialect->getValueAxesAttrHelper(),
            dialect->getValueSpectrumAttrHelper(), values ? &*values : nullptr);
    // Those of the attention-weighted moment, which kv-lowrank projects
    // values on by default: each value's error weighed by the attention its
    // token gets (docs/lowrank.md).
    std::optional<LayerAxes> attention;
    if (stats.hasAttentionMoment())
      attention = momentAxes(s.valueAttentionMoment, heads, d);
    setAxes(dialect->getValueAttentionAxesAttrHelper(),
            dialect->getValueAttentionSpectrumAttrHelper(),
            attention ? &*attention : nullptr);
    std::optional<LayerAxes> keyMoment;
    if (stats.hasMoments() && stats.heads && ropeStyle) {
      LayerAxes keys = keyAxes(stats, s, *ropeStyle);
      dialect->getKeyAxesAttrHelper().setAttr(
          op, dense(context, {heads, d, d + 1}, keys.axes));
      dialect->getKeySpectrumAttrHelper().setAttr(
          op, dense(context, {heads, d}, keys.spectrum));
      // The pre-RoPE keys' own, unweighted (kv-lowrank{method=svd}).
      keyMoment = secondMoment(s.keyMean, s.keyCovariance);
      // What kv-lowrank{centre=true} takes key latents around.
      std::vector<float> mean(s.keyMean.begin(), s.keyMean.end());
      dialect->getKeyMeanAttrHelper().setAttr(op,
                                              dense(context, {heads, d}, mean));
    } else {
      dialect->getKeyAxesAttrHelper().removeAttr(op);
      dialect->getKeySpectrumAttrHelper().removeAttr(op);
      dialect->getKeyMeanAttrHelper().removeAttr(op);
    }
    setAxes(dialect->getKeyMomentAxesAttrHelper(),
            dialect->getKeyMomentSpectrumAttrHelper(),
            keyMoment ? &*keyMoment : nullptr);
    // The joint moments of the layer's KV heads, whose diagonal blocks
    // kv-lowrank{group=G} takes its axes from; axes a group pass put there
    // before belong to the statistics replaced.
    auto setJoint = [&](auto &&helper, const std::vector<double> &moment) {
      if (moment.empty())
        return helper.removeAttr(op);
      std::vector<float> values(moment.begin(), moment.end());
      helper.setAttr(op, dense(context, {1, heads * d, heads * d}, values));
    };
    setJoint(dialect->getKeyJointMomentAttrHelper(), s.keyJointMoment);
    setJoint(dialect->getValueJointMomentAttrHelper(), s.valueJointMoment);
    setJoint(dialect->getValueAttentionJointMomentAttrHelper(),
             s.valueAttentionJointMoment);
    dialect->getKeyGroupAxesAttrHelper().removeAttr(op);
    dialect->getValueGroupAxesAttrHelper().removeAttr(op);
    if (stats.hasEvictLoss())
      dialect->getEvictLossAttrHelper().setAttr(
          op, mlir::DenseF32ArrayAttr::get(context, s.evictLoss));
    else
      dialect->getEvictLossAttrHelper().removeAttr(op);
    if (!stats.heads) {
      // Statistics without them replace any the module had.
      dialect->getQueryCenterAttrHelper().removeAttr(op);
      dialect->getQueryMagnitudeAttrHelper().removeAttr(op);
      dialect->getKeyCenterAttrHelper().removeAttr(op);
      dialect->getKeyMagnitudeAttrHelper().removeAttr(op);
      continue;
    }
    int64_t pairs = stats.headDim / 2;
    dialect->getQueryCenterAttrHelper().setAttr(
        op, dense(context, {stats.heads, pairs, 2}, s.queryCenter));
    dialect->getQueryMagnitudeAttrHelper().setAttr(
        op, dense(context, {stats.heads, pairs}, s.queryMagnitude));
    dialect->getKeyCenterAttrHelper().setAttr(
        op, dense(context, {stats.kvHeads, pairs, 2}, s.keyCenter));
    dialect->getKeyMagnitudeAttrHelper().setAttr(
        op, dense(context, {stats.kvHeads, pairs}, s.keyMagnitude));
  }
  return Status::ok();
}

} // namespace kvopt::calibrate
