//===- Eviction.h - Bounding a layer's cache during a forward call -*- C++
//-*-===//
//
// The plan's `evict` call (kvpkg.proto EvictParams): after a layer's
// attention, every sequence of the batch whose cache is due is scored by the
// layer's method, the kept entries are selected (one selection per KV head,
// or one for all of them: EvictParams.heads) and the cache is compacted in
// place. H2O's accumulated attention and SnapKV's observation queries
// are state kept here per sequence, between calls. docs/eviction.md.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_EVICTION_H
#define KVRT_BACKENDS_CPU_EVICTION_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/evict/Scores.h"

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace kvrt {
class PagedCache;
}

namespace kvrt::cpu {

class ThreadPool;

struct EvictionParams {
  schema::EvictParams plan;
  /// TriAttention: the calibrated centre of each query head.
  std::vector<evict::QueryCentre> centres;
  /// The RoPE of the layer's queries and keys.
  RopeFrequencies rope;
};

class LayerEviction {
public:
  /// `attention`: the layer's attention (cache, codecs, scale), whose
  /// weights H2O and SnapKV score by.
  LayerEviction(EvictionParams params, AttentionParams attention);

  /// After the layer's attention: `q` [rows, qHeads, headDim] are the
  /// call's queries after RoPE.
  Status run(ThreadPool &pool, PagedCache &cache, const float *q, int64_t rows,
             int64_t qHeads, const uint64_t *sequences,
             const int32_t *positions);
  void removeSequence(uint64_t sequence) { sequences_.erase(sequence); }

  /// Compactions run and entries they dropped, over all sequences so far.
  uint64_t compactions() const { return compactions_; }
  uint64_t evictedEntries() const { return evicted_; }

private:
  struct SequenceState {
    /// Tokens the sequence has appended to the layer.
    uint64_t seen = 0;
    /// H2O: per query head, the attention each entry received so far.
    std::vector<std::vector<float>> mass;
    /// SnapKV: the last `observe` queries [qHeads * headDim] and their
    /// positions, oldest first.
    std::vector<float> observed;
    std::vector<int32_t> observedPositions;
  };

  /// The rows of one sequence in this call.
  struct Rows {
    uint64_t sequence = 0;
    std::vector<int64_t> rows;
  };

  void accumulateMass(ThreadPool &pool, const std::vector<Rows> &bySequence,
                      const float *q, int64_t qHeads, const int32_t *positions);
  void observe(SequenceState &state, const Rows &rows, const float *q,
               int64_t qHeads, const int32_t *positions);
  /// scores [kvHeads][length] of every entry of `sequence`.
  void score(ThreadPool &pool, const PagedCache &cache, uint64_t sequence,
             const SequenceState &state, int64_t qHeads, int32_t position,
             std::vector<float> &scores);
  Status compact(ThreadPool &pool, PagedCache &cache, uint64_t sequence,
                 SequenceState &state, int64_t qHeads, int32_t position);

  EvictionParams params_;
  AttentionParams attention_;
  std::unordered_map<uint64_t, SequenceState> sequences_;
  std::vector<std::vector<float>> scratch_;
  uint64_t compactions_ = 0;
  uint64_t evicted_ = 0;
};

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_EVICTION_H
