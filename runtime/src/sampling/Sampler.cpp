//===- Sampler.cpp - Greedy and stochastic token choice -------------------===//
#include "kvrt/Sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace kvrt {
namespace {

/// A parameter as the user wrote it ("-1", "1.5"), not std::to_string's
/// six decimals.
std::string shown(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

} // namespace

uint64_t randomBits(uint64_t seed, uint64_t counter) {
  // SplitMix64 at index `counter` of the stream seeded by a mix of `seed`.
  uint64_t z = (seed ^ 0x6A09E667F3BCC909ULL) * 0xBF58476D1CE4E5B9ULL +
               (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

StatusOr<Sampler> Sampler::create(const SamplingParams &params) {
  if (!(params.temperature >= 0) || !std::isfinite(params.temperature))
    return Status::error("sampling temperature must be 0 (greedy) or "
                         "positive, not " +
                         shown(params.temperature));
  if (params.topK < 0)
    return Status::error("sampling top_k must be 0 (off) or positive, not " +
                         std::to_string(params.topK));
  if (!(params.topP > 0 && params.topP <= 1))
    return Status::error("sampling top_p must be in (0, 1], not " +
                         shown(params.topP));
  if (!(params.repetitionPenalty > 0) ||
      !std::isfinite(params.repetitionPenalty))
    return Status::error("sampling repetition_penalty must be positive, not " +
                         shown(params.repetitionPenalty));
  for (auto [name, value] :
       {std::pair{"frequency_penalty", params.frequencyPenalty},
        std::pair{"presence_penalty", params.presencePenalty}})
    if (!(value >= -2 && value <= 2))
      return Status::error(std::string("sampling ") + name +
                           " must be in [-2, 2], not " + shown(value));
  return Sampler(params);
}

int32_t greedyToken(const float *logits, size_t vocab) {
  float best = -std::numeric_limits<float>::infinity();
  int32_t at = 0;
  for (size_t i = 0; i < vocab; ++i)
    if (logits[i] > best) { // NaN never compares greater.
      best = logits[i];
      at = int32_t(i);
    }
  return at;
}

int32_t Sampler::sample(const float *logits, size_t vocab,
                        const std::vector<int32_t> &history,
                        size_t promptTokens) {
  if (params_.temperature == 0.0f && params_.unpenalised())
    return greedyToken(logits, vocab);
  // NaN sorts below everything, so it is chosen only when all are NaN.
  auto clean = [](float v) {
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  candidates_.resize(vocab);
  for (size_t i = 0; i < vocab; ++i)
    candidates_[i] = {clean(logits[i]), int32_t(i)};
  if (params_.repetitionPenalty != 1.0f) {
    std::unordered_set<int32_t> seen;
    for (int32_t t : history)
      if (t >= 0 && size_t(t) < vocab && seen.insert(t).second) {
        float &v = candidates_[size_t(t)].first;
        v = v > 0 ? v / params_.repetitionPenalty
                  : v * params_.repetitionPenalty;
      }
  }
  if (params_.frequencyPenalty != 0.0f || params_.presencePenalty != 0.0f) {
    std::unordered_map<int32_t, uint32_t> counts;
    for (size_t i = std::min(promptTokens, history.size()); i < history.size();
         ++i)
      if (history[i] >= 0 && size_t(history[i]) < vocab)
        ++counts[history[i]];
    for (const auto &[token, count] : counts)
      candidates_[size_t(token)].first -=
          params_.frequencyPenalty * float(count) + params_.presencePenalty;
  }
  // Higher logit first; the lower id wins a tie, so greedy is deterministic.
  auto better = [](const std::pair<float, int32_t> &a,
                   const std::pair<float, int32_t> &b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  if (params_.temperature == 0.0f)
    return std::min_element(candidates_.begin(), candidates_.end(), better)
        ->second;

  size_t keep = vocab;
  if (params_.topK > 0 && size_t(params_.topK) < vocab) {
    keep = size_t(params_.topK);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep,
                      candidates_.end(), better);
  } else if (params_.topP < 1.0f) {
    std::sort(candidates_.begin(), candidates_.end(), better);
  }
  candidates_.resize(keep);
  float maxLogit =
      std::max_element(candidates_.begin(), candidates_.end(), better)->first;
  std::vector<double> weights(keep);
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    weights[i] =
        std::exp(double(candidates_[i].first - maxLogit) / params_.temperature);
    total += weights[i];
  }
  if (params_.topP < 1.0f) {
    // Candidates are sorted here: keep the shortest prefix reaching top_p.
    double cumulative = 0;
    size_t cut = 0;
    while (cut < keep) {
      cumulative += weights[cut++];
      if (cumulative >= params_.topP * total)
        break;
    }
    keep = cut;
    total = cumulative;
  }
  double u = double(randomBits(params_.seed, counter_++) >> 11) *
             (1.0 / 9007199254740992.0) * total;
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += weights[i];
    if (u < cumulative)
      return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

} // namespace kvrt
