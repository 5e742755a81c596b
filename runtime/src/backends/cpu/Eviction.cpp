//===- Eviction.cpp - Scoring, selecting and compacting after attention ---===//
#include "runtime/src/backends/cpu/Eviction.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/evict/Compact.h"
#include "runtime/src/evict/Schedule.h"
#include "runtime/src/evict/Select.h"

#include <algorithm>
#include <cmath>

namespace kvrt::cpu {

LayerEviction::LayerEviction(EvictionParams params, AttentionParams attention)
    : params_(std::move(params)), attention_(attention) {}

Status LayerEviction::run(ThreadPool &pool, PagedCache &cache, const float *q,
                          int64_t rows, int64_t qHeads,
                          const uint64_t *sequences, const int32_t *positions) {
  std::vector<Rows> bySequence;
  std::unordered_map<uint64_t, size_t> index;
  for (int64_t r = 0; r < rows; ++r) {
    auto [it, inserted] = index.emplace(sequences[r], bySequence.size());
    if (inserted)
      bySequence.push_back({sequences[r], {}});
    bySequence[it->second].rows.push_back(r);
  }
  const schema::EvictMethod method = params_.plan.method();
  if (method == schema::EVICT_METHOD_H2O)
    accumulateMass(pool, bySequence, q, qHeads, positions);
  const uint32_t layer = attention_.layer;
  for (const Rows &s : bySequence) {
    SequenceState &state = sequences_[s.sequence];
    state.seen += s.rows.size();
    if (method == schema::EVICT_METHOD_SNAPKV)
      observe(state, s, q, qHeads, positions);
    if (!evict::compactionDue(params_.plan, cache.length(layer, s.sequence),
                              state.seen, s.rows.size()))
      continue;
    KVRT_RETURN_IF_ERROR(compact(pool, cache, s.sequence, state, qHeads,
                                 positions[s.rows.back()]));
  }
  return Status::ok();
}

void LayerEviction::accumulateMass(ThreadPool &pool,
                                   const std::vector<Rows> &bySequence,
                                   const float *q, int64_t qHeads,
                                   const int32_t *positions) {
  const PagedCache &cache = *attention_.cache;
  const CacheLayerShape &shape = cache.shape(attention_.layer);
  const int64_t kvHeads = shape.kvHeads, group = qHeads / kvHeads;
  const int64_t headDim = shape.headDim;
  int64_t longest = 0;
  for (const Rows &s : bySequence) {
    int64_t length = int64_t(cache.length(attention_.layer, s.sequence));
    longest = std::max(longest, length);
    SequenceState &state = sequences_[s.sequence];
    state.mass.resize(size_t(qHeads));
    for (std::vector<float> &m : state.mass)
      m.resize(size_t(length), 0.0f);
  }
  scratch_.resize(pool.size());
  for (std::vector<float> &buffer : scratch_)
    buffer.resize(size_t(attentionWeightsScratch(attention_, group, longest)));
  // One task per (sequence, KV head) owns that head group's sums: no two
  // threads add to the same entry.
  pool.parallelFor(
      int64_t(bySequence.size()) * kvHeads, 1,
      [&](int64_t begin, int64_t end, unsigned thread) {
        float *weights = scratch_[thread].data();
        for (int64_t task = begin; task < end; ++task) {
          const Rows &s = bySequence[size_t(task / kvHeads)];
          uint32_t g = uint32_t(task % kvHeads);
          std::vector<std::vector<float>> &mass = sequences_[s.sequence].mass;
          for (int64_t r : s.rows) {
            VisibleEntries visible =
                attentionWeights(attention_, s.sequence, g, positions[r],
                                 q + (r * qHeads + g * group) * headDim, group,
                                 longest, weights);
            for (int64_t h = 0; h < group; ++h) {
              float *m = mass[size_t(g * group + h)].data() + visible.first;
              const float *w = weights + h * longest;
              for (int64_t i = 0; i < visible.count; ++i)
                m[i] += w[i];
            }
          }
        }
      });
}

void LayerEviction::observe(SequenceState &state, const Rows &rows,
                            const float *q, int64_t qHeads,
                            const int32_t *positions) {
  const size_t width =
      size_t(qHeads) * attention_.cache->shape(attention_.layer).headDim;
  for (int64_t r : rows.rows) {
    state.observed.insert(state.observed.end(), q + r * width,
                          q + (r + 1) * width);
    state.observedPositions.push_back(positions[r]);
  }
  size_t excess =
      state.observedPositions.size() -
      std::min<size_t>(state.observedPositions.size(), params_.plan.observe());
  state.observed.erase(state.observed.begin(),
                       state.observed.begin() + excess * width);
  state.observedPositions.erase(state.observedPositions.begin(),
                                state.observedPositions.begin() + excess);
}

void LayerEviction::score(ThreadPool &pool, const PagedCache &cache,
                          uint64_t sequence, const SequenceState &state,
                          int64_t qHeads, int32_t position,
                          std::vector<float> &scores) {
  const uint32_t layer = attention_.layer;
  const CacheLayerShape &shape = cache.shape(layer);
  const int64_t kvHeads = shape.kvHeads, group = qHeads / kvHeads;
  const int64_t headDim = shape.headDim;
  const int64_t length = int64_t(cache.length(layer, sequence));
  scores.assign(size_t(kvHeads * length), 0.0f);
  const schema::EvictMethod method = params_.plan.method();
  if (method == schema::EVICT_METHOD_STREAMING) {
    for (int64_t g = 0; g < kvHeads; ++g)
      evict::streamingScores(length, params_.plan.sinks(),
                             scores.data() + g * length);
    return;
  }
  const std::vector<double> distances = evict::futureDistances(params_.plan);
  const int64_t window = int64_t(state.observedPositions.size());
  pool.parallelFor(kvHeads, 1, [&](int64_t begin, int64_t end, unsigned) {
    std::vector<float> buffer;
    for (int64_t g = begin; g < end; ++g) {
      float *out = scores.data() + g * length;
      switch (method) {
      case schema::EVICT_METHOD_H2O:
        buffer.resize(size_t(group * length));
        for (int64_t h = 0; h < group; ++h)
          std::copy_n(state.mass[size_t(g * group + h)].data(), length,
                      buffer.data() + h * length);
        evict::h2oScores(buffer.data(), group, length, length,
                         evict::HeadAggregation::Mean, out);
        break;
      case schema::EVICT_METHOD_SNAPKV: {
        // [group][window][length], zero where a query saw no entry.
        buffer.assign(size_t(group * window * length), 0.0f);
        std::vector<float> weights(
            size_t(attentionWeightsScratch(attention_, group, length)));
        for (int64_t j = 0; j < window; ++j) {
          const float *qj =
              state.observed.data() + (j * qHeads + g * group) * headDim;
          VisibleEntries visible = attentionWeights(
              attention_, sequence, uint32_t(g), state.observedPositions[j], qj,
              group, length, weights.data());
          for (int64_t h = 0; h < group; ++h)
            std::copy_n(weights.data() + h * length, visible.count,
                        buffer.data() + (h * window + j) * length +
                            visible.first);
        }
        evict::snapkvScores(buffer.data(), group, window, length, length,
                            params_.plan.kernel(), out);
        break;
      }
      default: {
        // TriAttention scores the cached keys, in the model's basis.
        buffer.resize(size_t(length * headDim));
        const Codec &keys = *attention_.codecs.key;
        const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
        uint64_t encoded = cache.encoded(layer, sequence);
        const uint64_t positions = shape.positionOffset(uint32_t(g));
        for (uint64_t i = 0; i < encoded; ++i) {
          const Page &page = cache.page(layer, pages[i / shape.pageSize]);
          uint32_t slot = uint32_t(i % shape.pageSize);
          keys.decodeAt(
              keys.areaOf(page.keys.get(), uint32_t(g), shape.keyHeadBytes),
              slot, uint32_t(g), page.positions[positions + slot],
              buffer.data() + i * headDim);
        }
        const std::vector<float> &tail = cache.tail(layer, sequence).keys[g];
        std::copy(tail.begin(), tail.end(), buffer.data() + encoded * headDim);
        evict::TriAttentionScorer scorer(
            params_.rope, headDim, params_.centres.data() + g * group, group,
            position, distances, evict::groupCombination(params_.plan));
        scorer.score(buffer.data(), headDim, length, out);
        evict::standardise(out, uint64_t(length));
        break;
      }
      }
    }
  });
}

Status LayerEviction::compact(ThreadPool &pool, PagedCache &cache,
                              uint64_t sequence, SequenceState &state,
                              int64_t qHeads, int32_t position) {
  const uint32_t layer = attention_.layer;
  evict::SelectionParams select = evict::selectionFor(params_.plan, state.seen);
  const uint64_t recent = select.recent;
  // Only encoded entries move, and the tail stays: what may leave it now
  // is encoded first (as the next append would), and so is what this
  // window does not protect, so that an encoding's exact window
  // (docs/kv-encodings.md) yields to the budget instead of outliving it.
  const uint64_t tail = cache.tail(layer, sequence).tokens();
  const uint32_t group = cache.shape(layer).flushGroup;
  encodeTail(pool, cache, layer, attention_.codecs, sequence,
             std::max(cache.flushable(layer, sequence),
                      tail > recent ? (tail - recent) / group * group : 0));
  const uint64_t length = cache.length(layer, sequence);
  const uint64_t encoded = cache.encoded(layer, sequence);
  const uint64_t kvHeads = cache.shape(layer).kvHeads;
  std::vector<float> scores;
  score(pool, cache, sequence, state, qHeads, position, scores);
  // Per head, every head keeps as many entries (the sinks and the window
  // are the same for all), so the sequence's counts stay one for all heads.
  select.recent = std::max<uint64_t>(recent, length - encoded);
  const std::vector<std::vector<uint64_t>> kept = evict::selectKept(
      scores.data(), int64_t(kvHeads), int64_t(length), length, select);
  // The tail is in the window, so it is kept whole in every list.
  std::vector<std::vector<uint64_t>> keptEncoded;
  for (const std::vector<uint64_t> &list : kept)
    keptEncoded.emplace_back(
        list.begin(), std::lower_bound(list.begin(), list.end(), encoded));
  Status compacted =
      evict::compactSequence(cache, layer, sequence, *attention_.codecs.key,
                             *attention_.codecs.value, keptEncoded);
  if (!compacted.isOk())
    return Status::error("layer " + std::to_string(layer) + ": " +
                         compacted.message());
  // Entries moved between blocks: their summaries are made anew.
  if (cache.shape(layer).summaryBlock)
    summariseEntries(pool, cache, layer, *attention_.codecs.key, sequence, 0,
                     cache.encoded(layer, sequence));
  // Query head h's sums follow the entries its KV head kept.
  const size_t queriesPerHead = state.mass.size() / kvHeads;
  for (size_t h = 0; h < state.mass.size(); ++h) {
    std::vector<float> &m = state.mass[h];
    const std::vector<uint64_t> &list =
        kept[kept.size() == 1 ? 0 : h / queriesPerHead];
    for (uint64_t i = 0; i < list.size(); ++i)
      m[i] = m[list[i]];
    m.resize(list.size());
  }
  ++compactions_;
  evicted_ += length - kept[0].size();
  return Status::ok();
}

} // namespace kvrt::cpu
