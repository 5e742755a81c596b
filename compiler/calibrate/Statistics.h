//===- Statistics.h - What calibration records about a model ----*- C++ -*-===//
//
// Calibration runs the model on text and records, per layer, statistics of
// what its KV cache receives. The statistics live in the module as
// discardable attributes of the ops they describe (kv.key_absmax,
// kv.value_absmax and the pre-RoPE centres on each kv.cache), with their
// provenance in kv.calibration
// on the module; passes and the exporter read them there. A statistic of a
// new kind is a new member of LayerStatistics, a new attribute and a new
// member of the JSON file (docs/calibration.md), nothing else.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_CALIBRATE_STATISTICS_H
#define KVOPT_COMPILER_CALIBRATE_STATISTICS_H

#include "kvrt/Status.h"

#include <cstdint>
#include <string>
#include <vector>

// Declared, not included: the statistics and their JSON file link no MLIR
// (a fuzzer reads the file alone).
namespace mlir {
class ModuleOp;
} // namespace mlir

namespace kvopt::calibrate {

/// Where statistics came from: what #kv.calibration records.
struct CalibrationSource {
  /// The calibration text's file name (UTF-8, without its folder).
  std::string file;
  /// XXH64 (seed 0) of the text's bytes.
  uint64_t xxh64 = 0;
  /// Text tokens the model ran on, and the most of them in one window.
  int64_t tokens = 0;
  int64_t window = 0;
};

/// What calibration records about one layer's cache.
struct LayerStatistics {
  /// Per KV head, the largest |coordinate| of the keys (after RoPE, as the
  /// cache stores them) and of the values.
  std::vector<float> keyAbsMax, valueAbsMax;
  /// TriAttention's statistics of the queries (per query head) and keys (per
  /// KV head) before RoPE, each head seen as headDim/2 complex numbers, one
  /// per RoPE frequency pair f (coordinates (f, f + headDim/2), or (2f,
  /// 2f + 1) for interleaved RoPE; real part first): the centre E[q_f],
  /// [heads][headDim/2][2] row-major, and the mean magnitude E|q_f|,
  /// [heads][headDim/2], over every token calibration ran. All four are
  /// empty in statistics that predate them.
  std::vector<float> queryCenter, queryMagnitude, keyCenter, keyMagnitude;
  /// Per KV head, the mean and covariance of the keys before RoPE and of the
  /// values over every token calibration ran (Moments.h): [kvHeads][headDim]
  /// and [kvHeads][headDim][headDim] row-major, symmetric. The sensitivity
  /// of low-rank compression (LowRank.h) and its PCA bases come from them.
  /// All four are empty in statistics that predate them; attachStatistics
  /// puts the values' principal axes (of their second moment) in the
  /// module (kv.value_axes).
  std::vector<double> keyMean, keyCovariance, valueMean, valueCovariance;
  /// Per KV head, the values' second moment weighted by the attention they
  /// get outside the exact sinks and window (Moments.h,
  /// AttentionMomentSums), [kvHeads][headDim][headDim] row-major,
  /// symmetric; empty in statistics that predate it. attachStatistics puts
  /// its axes in the module (kv.value_attention_axes).
  std::vector<double> valueAttentionMoment;
  /// The joint second moments E[x x^T] (uncentred) of the layer's KV heads
  /// concatenated, [kvHeads headDim][kvHeads headDim] row-major, symmetric:
  /// of the pre-RoPE keys and of the values over every token, and of the
  /// values weighted by the attention each token gets from all the layer's
  /// query heads outside the exact sinks and window (empty when
  /// valueAttentionMoment is). A group of G heads' joint moment is a
  /// diagonal block: what kv-lowrank{group=G} takes its axes from. Empty in
  /// statistics that predate them.
  std::vector<double> keyJointMoment, valueJointMoment,
      valueAttentionJointMoment;
  /// The attention mass (averaged over the query heads) that the best kept
  /// list of j/G of a query's entries leaves out, averaged over the queries
  /// calibration ran, for j = 1..G (EvictLoss.h): non-increasing, in [0,
  /// 1]. kv-evict{allocate=attention} shares budget across layers by it.
  /// Empty in statistics that predate it.
  std::vector<float> evictLoss;
};

struct Statistics {
  CalibrationSource source;
  /// The caches described: kvHeads heads of headDim coordinates per layer.
  int64_t kvHeads = 0, headDim = 0;
  /// Query heads per layer; 0 when the pre-RoPE statistics are absent.
  int64_t heads = 0;
  /// The sinks and window whose entries the attention-weighted moment
  /// leaves out; 0 when the layers have no such moment.
  int64_t attentionSinks = 0, attentionWindow = 0;
  /// Indexed by layer.
  std::vector<LayerStatistics> layers;

  /// Whether the layers carry the key and value means and covariances.
  bool hasMoments() const {
    return !layers.empty() && !layers.front().keyCovariance.empty();
  }
  /// Whether the layers carry the joint moments of their KV heads.
  bool hasJointMoments() const {
    return !layers.empty() && !layers.front().keyJointMoment.empty();
  }
  /// Whether the layers carry the loss curve of eviction.
  bool hasEvictLoss() const {
    return !layers.empty() && !layers.front().evictLoss.empty();
  }
  /// Whether the layers carry the values' attention-weighted moment.
  bool hasAttentionMoment() const {
    return !layers.empty() && !layers.front().valueAttentionMoment.empty();
  }
};

/// The eigenvectors of each head's uncentred second moment E[x x^T] (the
/// `covariance` plus `mean` mean^T; [heads][d][d] and [heads][d]), as
/// kv.value_axes and kv.key_moment_axes hold them ([heads][d][d], column k
/// the k-th largest), and their eigenvalues ([heads][d], largest first, at
/// least 0). For x = X W (a projection of the rows X), these axes are the
/// right singular vectors of Palu's whitened SVD of W (docs/lowrank.md).
void secondMomentAxes(const std::vector<double> &mean,
                      const std::vector<double> &covariance, int64_t heads,
                      int64_t d, std::vector<float> &axes,
                      std::vector<float> &spectrum);

/// Sets kv.calibration on `module` and the statistics on each of its
/// kv.cache ops. Fails, changing nothing, with one sentence naming `origin`
/// (the statistics file, or the calibration text) when the statistics do
/// not fit the module's caches or hold a value that is not finite.
kvrt::Status attachStatistics(mlir::ModuleOp module, const Statistics &stats,
                              const std::string &origin);

} // namespace kvopt::calibrate

#endif // KVOPT_COMPILER_CALIBRATE_STATISTICS_H
