//===- Scores.h - How much each cached key is worth keeping -----*- C++ -*-===//
//
// Eviction scores for one KV head's cached keys, higher meaning more worth
// keeping: TriAttention (a trigonometric series over RoPE frequencies from
// calibrated query centres) and the baselines StreamingLLM, H2O and SnapKV
// on the same interface (one float per key, in sequence order). Pure
// functions of their inputs; docs/eviction.md gives the formulas.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_EVICT_SCORES_H
#define KVRT_EVICT_SCORES_H

#include "runtime/src/backends/cpu/Kernels.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace kvrt::evict {

/// How scores of several heads (the query heads of a KV group, or the KV
/// heads of a layer sharing one selection) combine into one per key: their
/// mean, their maximum, or the maximum of each head's scores standardised
/// over the keys scored (TriAttention's reference runtime:
/// sparse_normalize_scores with layer_perhead_aggregation=max).
enum class HeadAggregation { Mean, Max, StandardisedMax };

/// Calibrated statistics of one query head's pre-RoPE queries, per RoPE
/// frequency pair f (headDim / 2 of them, pair f being coordinates (f, f +
/// d/2), or (2f, 2f + 1) when interleaved, as real and imaginary parts).
struct QueryCentre {
  /// E[q_f].
  std::vector<double> re, im;
  /// E|q_f|.
  std::vector<double> magnitude;
};

/// The largest future distance of TriAttention's reference code
/// (WeianMao/triattention, offset_max_length), whatever the model's
/// context; the horizon of artifacts that give none.
inline constexpr double kReferenceHorizon = 65536;

/// The future query distances 1, 2, 4, ..., up to `horizon`.
std::vector<double> geometricDistances(double horizon = kReferenceHorizon);

/// mean over `distances` D of e^{i D w}: TriAttention's closed form takes
/// the mean over the future distances as this one factor per frequency w.
std::pair<double, double> distanceMean(double w,
                                       const std::vector<double> &distances);

/// Undoes cpu::rope(): y = the pre-RoPE heads of x [rows, heads, headDim]
/// rotated at positions[row] (back by the angle, divided by YaRN's
/// attention factor).
void unrope(const cpu::RopeFrequencies &freqs, const float *x, int64_t rows,
            int64_t heads, int64_t headDim, const int32_t *positions, float *y);

/// TriAttention's score of cached keys for a query at `queryPosition`:
/// per query head h, the mean over distances D of
///   sum_f |E q_f| |k_f| cos((t + D - p) w_f + phi_f)
///   + sum_f (E|q_f| - |E q_f|) |k_f|
/// for a key k (pre-RoPE) stored at position p, phi_f = arg E q_f - arg k_f,
/// then the heads aggregated. The mean over D is taken in closed form, so
/// a key costs one dot product and headDim / 2 norms per aggregated row
/// (docs/eviction.md).
class TriAttentionScorer {
public:
  /// `centres`: the `heads` query heads of one KV group.
  TriAttentionScorer(const cpu::RopeFrequencies &freqs, int64_t headDim,
                     const QueryCentre *centres, int64_t heads,
                     int64_t queryPosition,
                     const std::vector<double> &distances,
                     HeadAggregation aggregation = HeadAggregation::Mean);

  /// scores[i] for the cached (post-RoPE) key at keys + i * stride.
  void score(const float *keys, int64_t stride, int64_t count,
             float *scores) const;

private:
  int64_t headDim_, half_, rows_;
  bool interleaved_;
  HeadAggregation aggregation_;
  /// Per aggregated row (one for Mean, one per head otherwise): the direction
  /// whose dot product with a post-RoPE key is the averaged trigonometric
  /// term, in the key's layout, and the weights of the pair norms.
  std::vector<float> direction_, magnitude_;
};

/// StreamingLLM: the first `sinks` entries score +inf, the others their
/// index (later is better), so a budget keeps the sinks and the most recent.
void streamingScores(int64_t count, int64_t sinks, float *scores);

/// H2O: `accumulated` [heads][stride] holds, per query head of the group,
/// the running sum over past queries of the attention weight each of the
/// `count` entries received; scores aggregate it over the heads.
void h2oScores(const float *accumulated, int64_t heads, int64_t stride,
               int64_t count, HeadAggregation aggregation, float *scores);

/// SnapKV: `weights` [heads][window][stride] are the softmax weights of the
/// last `window` prompt queries over the `count` earlier prompt keys. Per
/// head the weights are summed over the window's queries, max-pooled over
/// keys with `kernel` (entry i takes the maximum over i - kernel/2 ...
/// i - kernel/2 + kernel - 1, as max_pool1d with padding kernel/2), then
/// summed over the heads.
void snapkvScores(const float *weights, int64_t heads, int64_t window,
                  int64_t stride, int64_t count, int64_t kernel, float *scores);

} // namespace kvrt::evict

#endif // KVRT_EVICT_SCORES_H
