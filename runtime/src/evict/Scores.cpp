//===- Scores.cpp - TriAttention and the baseline eviction scores ---------===//
//
// TriAttention in closed form: with k~_f = a k_f e^{i p w_f} the cached
// (post-RoPE) pair and a YaRN's attention factor,
//   |E q_f| |k_f| cos((t + D - p) w_f + phi_f)
//     = Re(E q_f conj(k_f) e^{i (t + D - p) w_f})
//     = Re(E q_f e^{i t w_f} e^{i D w_f} conj(k~_f)) / a,
// so the mean over D is Re(u_f conj(k~_f)) with
// u_f = E q_f e^{i t w_f} mean_D(e^{i D w_f}) / a: a dot product of the
// cached key with a direction fixed for the whole step. Keys are never
// un-rotated and the cost does not grow with the number of distances.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/evict/Scores.h"
#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/evict/Select.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvrt::evict {
namespace {

/// Per key: the pair norms, then per aggregated row one dot product with
/// the direction and one with the norm weights, in eight lanes (Simd.h);
/// this file is built with -fno-math-errno so the square roots vectorise.
KVRT_MULTIVERSION
void scoreKeys(const float *keys, int64_t stride, int64_t count, int64_t d,
               bool interleaved, int64_t rows, const float *direction,
               const float *magnitude, float *norms, float *scores) {
  using cpu::kLanes;
  int64_t half = d / 2;
  for (int64_t i = 0; i < count; ++i) {
    const float *k = keys + i * stride;
    if (interleaved) {
      for (int64_t f = 0; f < half; ++f)
        norms[f] = k[2 * f] * k[2 * f] + k[2 * f + 1] * k[2 * f + 1];
    } else {
      for (int64_t f = 0; f < half; ++f)
        norms[f] = k[f] * k[f] + k[f + half] * k[f + half];
    }
    for (int64_t f = 0; f < half; ++f)
      norms[f] = std::sqrt(norms[f]);
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
      const float *u = direction + r * d, *m = magnitude + r * half;
      cpu::Vec8 acc = {};
      int64_t j = 0, f = 0;
      for (; j + kLanes <= d; j += kLanes)
        acc += cpu::load8(k + j) * cpu::load8(u + j);
      for (; f + kLanes <= half; f += kLanes)
        acc += cpu::load8(norms + f) * cpu::load8(m + f);
      float sum = cpu::reduce8(acc);
      for (; j < d; ++j)
        sum += k[j] * u[j];
      for (; f < half; ++f)
        sum += norms[f] * m[f];
      best = std::max(best, sum);
    }
    scores[i] = best;
  }
}

} // namespace

std::vector<double> geometricDistances(double horizon) {
  std::vector<double> d;
  for (double v = 1; v <= horizon; v *= 2)
    d.push_back(v);
  return d;
}

std::pair<double, double> distanceMean(double w,
                                       const std::vector<double> &distances) {
  double zr = 0, zi = 0;
  for (double d : distances) {
    zr += std::cos(d * w);
    zi += std::sin(d * w);
  }
  return {zr / double(distances.size()), zi / double(distances.size())};
}

void unrope(const cpu::RopeFrequencies &freqs, const float *x, int64_t rows,
            int64_t heads, int64_t headDim, const int32_t *positions,
            float *y) {
  int64_t half = headDim / 2;
  int64_t stride = freqs.interleaved ? 2 : 1;
  int64_t partner = freqs.interleaved ? 1 : half;
  std::vector<double> c(static_cast<size_t>(half)),
      s(static_cast<size_t>(half));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < half; ++p) {
      double angle = double(positions[r]) * freqs.inverse[p];
      c[p] = std::cos(angle) / freqs.attentionFactor;
      s[p] = std::sin(angle) / freqs.attentionFactor;
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float *xh = x + (r * heads + h) * headDim;
      float *yh = y + (r * heads + h) * headDim;
      for (int64_t p = 0; p < half; ++p) {
        int64_t a = p * stride, b = a + partner;
        double x1 = xh[a], x2 = xh[b];
        yh[a] = float(x1 * c[p] + x2 * s[p]);
        yh[b] = float(x2 * c[p] - x1 * s[p]);
      }
    }
  }
}

TriAttentionScorer::TriAttentionScorer(const cpu::RopeFrequencies &freqs,
                                       int64_t headDim,
                                       const QueryCentre *centres,
                                       int64_t heads, int64_t queryPosition,
                                       const std::vector<double> &distances,
                                       HeadAggregation aggregation)
    : headDim_(headDim), half_(headDim / 2),
      rows_(aggregation == HeadAggregation::Mean ? 1 : heads),
      interleaved_(freqs.interleaved), aggregation_(aggregation) {
  direction_.assign(size_t(rows_ * headDim_), 0.0f);
  magnitude_.assign(size_t(rows_ * half_), 0.0f);
  std::vector<double> direction(direction_.size()),
      magnitude(magnitude_.size());
  double inverseFactor = 1.0 / freqs.attentionFactor;
  double weight = aggregation == HeadAggregation::Mean ? 1.0 / heads : 1.0;
  for (int64_t f = 0; f < half_; ++f) {
    double w = freqs.inverse[f];
    // mean_D e^{i D w}, then times e^{i t w}.
    const auto [zr, zi] = distanceMean(w, distances);
    double tr = std::cos(double(queryPosition) * w);
    double ti = std::sin(double(queryPosition) * w);
    double rr = zr * tr - zi * ti, ri = zr * ti + zi * tr;
    int64_t a = interleaved_ ? 2 * f : f, b = interleaved_ ? a + 1 : f + half_;
    for (int64_t h = 0; h < heads; ++h) {
      const QueryCentre &c = centres[h];
      int64_t row = rows_ == 1 ? 0 : h;
      double ur = c.re[f] * rr - c.im[f] * ri, ui = c.re[f] * ri + c.im[f] * rr;
      direction[row * headDim_ + a] += weight * ur * inverseFactor;
      direction[row * headDim_ + b] += weight * ui * inverseFactor;
      double spread = c.magnitude[f] - std::hypot(c.re[f], c.im[f]);
      magnitude[row * half_ + f] += weight * spread * inverseFactor;
    }
  }
  std::copy(direction.begin(), direction.end(), direction_.begin());
  std::copy(magnitude.begin(), magnitude.end(), magnitude_.begin());
}

void TriAttentionScorer::score(const float *keys, int64_t stride, int64_t count,
                               float *scores) const {
  std::vector<float> norms(static_cast<size_t>(half_));
  if (aggregation_ != HeadAggregation::StandardisedMax) {
    scoreKeys(keys, stride, count, headDim_, interleaved_, rows_,
              direction_.data(), magnitude_.data(), norms.data(), scores);
    return;
  }
  // Each head's scores apart, then combined.
  std::vector<float> rows(size_t(rows_ * count));
  for (int64_t r = 0; r < rows_; ++r)
    scoreKeys(keys, stride, count, headDim_, interleaved_, 1,
              direction_.data() + r * headDim_, magnitude_.data() + r * half_,
              norms.data(), rows.data() + r * count);
  const std::vector<float> combined =
      combineHeads(rows.data(), rows_, count, uint64_t(count), aggregation_);
  std::copy(combined.begin(), combined.end(), scores);
}

void streamingScores(int64_t count, int64_t sinks, float *scores) {
  for (int64_t i = 0; i < count; ++i)
    scores[i] = i < sinks ? std::numeric_limits<float>::infinity() : float(i);
}

void h2oScores(const float *accumulated, int64_t heads, int64_t stride,
               int64_t count, HeadAggregation aggregation, float *scores) {
  const std::vector<float> combined =
      combineHeads(accumulated, heads, stride, uint64_t(count), aggregation);
  std::copy(combined.begin(), combined.end(), scores);
}

void snapkvScores(const float *weights, int64_t heads, int64_t window,
                  int64_t stride, int64_t count, int64_t kernel,
                  float *scores) {
  std::vector<double> votes(static_cast<size_t>(count)),
      total(size_t(count), 0.0);
  for (int64_t h = 0; h < heads; ++h) {
    std::fill(votes.begin(), votes.end(), 0.0);
    for (int64_t w = 0; w < window; ++w) {
      const float *row = weights + (h * window + w) * stride;
      for (int64_t i = 0; i < count; ++i)
        votes[i] += row[i];
    }
    for (int64_t i = 0; i < count; ++i) {
      int64_t first = std::max<int64_t>(0, i - kernel / 2);
      int64_t last = std::min<int64_t>(count - 1, i - kernel / 2 + kernel - 1);
      double best = votes[first];
      for (int64_t j = first + 1; j <= last; ++j)
        best = std::max(best, votes[j]);
      total[i] += best;
    }
  }
  for (int64_t i = 0; i < count; ++i)
    scores[i] = float(total[i]);
}

} // namespace kvrt::evict
