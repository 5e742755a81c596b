//===- Kernels.h - The CPU reference kernels --------------------*- C++ -*-===//
//
// fp32 kernels over row-major activations. Each output element is computed
// by one thread in an order that does not depend on the number of rows, the
// thread count or the page size, so a token's results do not depend on
// what else is in the batch.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_KERNELS_H
#define KVRT_BACKENDS_CPU_KERNELS_H

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/sparse/TwoLevel.h"

#include <cstdint>
#include <vector>

namespace kvrt {
class AppendObserver;
class Codec;
class PagedCache;
} // namespace kvrt

namespace kvrt::cpu {

class ThreadPool;

/// A weight matrix as the artifact holds it: f32 values, or rows of blocks
/// of a ggml format (q8_0, q4_0, q4_1) that the kernels decode as they read
/// them (BlockFormats.h, whose definitions kvrt::decodeValues uses too), to
/// the same values as decoded ahead.
struct WeightView {
  const void *data = nullptr;
  schema::DType dtype = schema::DTYPE_F32;
};

/// y[r, o] = bias[o] + sum_i x[r, i] w[o, i]; `bias` may be null.
void linear(ThreadPool &pool, const float *x, int64_t rows, int64_t in,
            const float *w, int64_t out, const float *bias, float *y);
/// The same over a weight in any format: the result is linear()'s over
/// the decoded values, bit for bit.
void linear(ThreadPool &pool, const float *x, int64_t rows, int64_t in,
            WeightView w, int64_t out, const float *bias, float *y);

/// Normalises each of `rows` vectors of `dim` values by its RMS, then scales
/// by `weight`.
void rmsNorm(ThreadPool &pool, const float *x, int64_t rows, int64_t dim,
             const float *weight, float epsilon, float *y);

/// Per-pair rotation frequencies of one RoPE configuration.
struct RopeFrequencies {
  std::vector<double> inverse;
  /// YaRN's factor on cos and sin; 1 otherwise.
  double attentionFactor = 1.0;
  bool interleaved = false;
};

/// The frequencies of `rope` for heads of `headDim` values, with its
/// scaling applied as Hugging Face's modeling_rope_utils computes them.
RopeFrequencies ropeFrequencies(const schema::Rope &rope, int64_t headDim);

/// Rotates each head of x [rows, heads, headDim] by positions[row].
void rope(ThreadPool &pool, const RopeFrequencies &freqs, const float *x,
          int64_t rows, int64_t heads, int64_t headDim,
          const int32_t *positions, float *y);

/// The codecs of one cache layer.
struct CacheCodecs {
  const Codec *key = nullptr;
  const Codec *value = nullptr;
  /// An f32 codec that reads the layer's tail.
  const Codec *tail = nullptr;
  /// Whether tail keys (values) are rounded to bf16 when they arrive: for
  /// every encoding but f32, whose tail must stay exact.
  bool roundKeys = true;
  bool roundValues = true;
};

/// Brings the block summaries (sparse/BlockSummary.h) of the `count`
/// encoded entries of `sequence` in `layer` from `first` on up to date, one
/// KV head per task; after an eviction moved entries, from 0.
void summariseEntries(ThreadPool &pool, PagedCache &cache, uint32_t layer,
                      const Codec &keys, uint64_t sequence, uint64_t first,
                      uint64_t count);

/// Encodes the oldest `tokens` tail tokens of `sequence` in `layer` (whole
/// flush groups) into its pages.
void encodeTail(ThreadPool &pool, PagedCache &cache, uint32_t layer,
                const CacheCodecs &codecs, uint64_t sequence, uint64_t tokens);

/// Encodes what may leave the tails of the listed sequences (repeats are
/// fine) in `layer`.
void encodeTails(ThreadPool &pool, PagedCache &cache, uint32_t layer,
                 const CacheCodecs &codecs, const uint64_t *sequences,
                 int64_t count);

/// Encodes what earlier calls left in the tails of the batch's sequences
/// and may leave them now (encodeTails), then adds keys and values [rows,
/// kvHeads, headDim] at each row's sequence and position to the tails of
/// `layer`; room must have been reserved.
void append(ThreadPool &pool, PagedCache &cache, uint32_t layer,
            const CacheCodecs &codecs, const float *keys, const float *values,
            int64_t rows, const uint64_t *sequences, const int32_t *positions);

/// What a selecting attention read, for the offload step after it.
struct SelectionRecord {
  struct Row {
    /// False when the row attended to every entry (a prefill row, or a
    /// sequence no longer than the selection).
    bool selected = false;
    /// The encoded entries it read, and the blocks ranked just below its
    /// kept ones.
    std::vector<uint64_t> entries, runnerUpBlocks;
  };
  /// Blocks below the kept ones to record.
  uint32_t runnersUp = 0;
  /// [row * kvHeads + kvHead] of the last call.
  std::vector<Row> rows;
};

/// Parameters of attention() besides its operands.
struct AttentionParams {
  const PagedCache *cache = nullptr;
  uint32_t layer = 0;
  CacheCodecs codecs;
  float scale = 1.0f;
  /// 0: unbounded.
  int64_t slidingWindow = 0;
  /// Decode rows attend to a two-level selection (sparse/TwoLevel.h).
  sparse::SelectPolicy select;
  /// When set, attention() records what each row selected into it.
  SelectionRecord *record = nullptr;
};

/// The entries of a sequence a query sees: `count` consecutive ones from
/// index `first` (positions grow with the index, so causal and sliding
/// windows leave a run).
struct VisibleEntries {
  uint64_t first = 0;
  int64_t count = 0;
};

/// Floats of scratch that attentionWeights() needs for `group` heads and
/// `stride` entries.
int64_t attentionWeightsScratch(const AttentionParams &params, int64_t group,
                                int64_t stride);

/// The attention weights attention() gives: the softmax over the visible
/// entries of `sequence` of the `group` query heads at `q` (one row at
/// `position`) that read KV head `kvHead`, left in scratch[h * stride + i]
/// for entry first + i; `stride` at least the sequence's length.
VisibleEntries attentionWeights(const AttentionParams &params,
                                uint64_t sequence, uint32_t kvHead,
                                int32_t position, const float *q, int64_t group,
                                int64_t stride, float *scratch);

/// Gives `observer` (AppendObserver::onAttention) the weights attention()
/// gave each of `rows` queries and each KV head: computed again by
/// attentionWeights(), in parallel a few rows at a time, and reported from
/// the calling thread in row and head order.
void reportAttention(ThreadPool &pool, const AttentionParams &params,
                     const float *q, int64_t rows, int64_t qHeads,
                     const uint64_t *sequences, const int32_t *positions,
                     AppendObserver &observer);

/// Compares attention over the cache with attention over a bf16 copy of it
/// (EngineOptions::measureFidelity), per layer.
class FidelityProbe {
public:
  /// The bf16 copy, appended to like the cache, and its codecs.
  const PagedCache *cache = nullptr;
  std::vector<CacheCodecs> layerCodecs;
  uint32_t topK = 16;

  struct Totals {
    uint64_t queries = 0;
    double relativeError = 0;
    double overlap = 0;
    /// Queries whose overlap was measured: those that saw as many entries
    /// as the reference (eviction leaves the rest without a common index).
    uint64_t overlapQueries = 0;
  };
  /// Sums over every query row compared, by layer.
  std::vector<Totals> layers;

  /// A call of `tasks` (row, KV head) tasks on `threads` threads.
  void beginCall(unsigned threads, int64_t tasks);
  /// One KV group's heads, task `task` on `thread`: outputs [group,
  /// headDim] and normalised weights [group, stride] over `visible`
  /// entries, of the cache and the copy.
  void record(unsigned thread, int64_t task, int64_t group, int64_t headDim,
              int64_t visible, int64_t referenceVisible, int64_t stride,
              const float *out, const float *reference, const float *weights,
              const float *referenceWeights);
  /// Adds the call's tasks to `layer`'s totals in task order, so that the
  /// sums do not depend on which thread took which task.
  void endCall(uint32_t layer);

private:
  std::vector<Totals> perTask_;
  std::vector<std::vector<int64_t>> order_;
};

/// Causal grouped-query attention of q [rows, qHeads, headDim] over the
/// cached entries of each row's sequence whose stored position is at most
/// the row's position (and within the window). `scratch` holds one buffer
/// per pool thread. With a probe, also attends over its copy of the cache
/// and records the difference. A task takes a row's KV head, or, for calls
/// of fewer than two per thread over f32 or bf16 values (a decode step of
/// one sequence), a part of its entries, one query head's softmax or a
/// range of its value columns: the same bits either way.
void attention(ThreadPool &pool, const AttentionParams &params, const float *q,
               int64_t rows, int64_t qHeads, const uint64_t *sequences,
               const int32_t *positions, float *out,
               std::vector<std::vector<float>> &scratch, FidelityProbe *probe);

/// out = silu(gate) * up over n values.
void swiglu(ThreadPool &pool, const float *gate, const float *up, int64_t n,
            float *out);

/// out = a + b over n values.
void add(ThreadPool &pool, const float *a, const float *b, int64_t n,
         float *out);

/// Copies row tokens[r] of table [vocab, hidden] to out[r], decoded; token
/// ids must be in range.
void embedding(ThreadPool &pool, WeightView table, int64_t hidden,
               const int32_t *tokens, int64_t rows, float *out);

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_KERNELS_H
