//===- EvictKernels.h - Scoring, selecting and compacting on the GPU -*- C++
//-*-===//
//
// The kernels of a compaction (DeviceEviction.h), each over every sequence
// of one layer that a call made due, as backends/cpu/Eviction.cpp does it
// for one sequence (docs/eviction.md):
// - scoreEntries(): one float per (sequence, KV head, entry). TriAttention
//   first makes, once per call, each (sequence, KV group)'s direction u and
//   norm weights m in double from the calibrated centres (as the scorer's
//   constructor does, its distances already folded into one factor per
//   pair), then scores every cached key with one dot product and d / 2
//   pair norms: d / 16 lanes a key, each holding a pair's both halves
//   (two 8-coordinate chunks, 16 bytes each in bf16) and its 24 weights in
//   registers, four keys a thread in flight; each block also writes the
//   double moments of its scores for the standardisation. With
//   combine=zmax each query head gets its own u and m and its own scores,
//   which a third kernel standardises per head and combines by their
//   maximum into the KV head's, as evict::combineHeads() does. StreamingLLM
//   scores the sinks +inf and the others their index. SnapKV
//   (EvictSnapKv.cu) scores by the attention of the layer's last `observe`
//   queries (recordObserved() keeps them, per sequence, in a ring):
//   softmax over every entry each sees, summed over the window, max-pooled
//   along the entries per query head, summed over the group's heads.
//   H2O scores each entry by the attention it has accumulated (the
//   layer's mass, which the decode attention adds to as it attends,
//   DecodeAttentionArgs::mass, and accumulateH2o() for a prefill's rows),
//   over the group's query heads.
// - selectEntries(): per sequence and selection row (one for the layer, or
//   one per KV head), TriAttention's scores standardised per head (mean 0,
//   deviation 1, from the moments in double), the heads combined by their
//   mean (in double) for a shared selection, then the `free` best of the
//   candidates between the sinks and the recent window: the k-th largest
//   evict::rankKey() score word by a radix select (three passes of 11, 11
//   and 10 bits, each a kernel over tiles of every row), the entries at
//   that score kept in index order, so the kept entries are those
//   evict::selectKept() keeps for the same combined scores. Writes the kept
//   indices ascending.
// - compactEntries(): moves kept entry i of each KV head to index i in its
//   sequence's pages, keys, values and the head's position, each entry
//   read once and written once, in place: chunks of destinations, one a
//   block, in the order an atomic counter hands them out; a block reads
//   its chunk's sources, says so, waits until every earlier chunk whose
//   sources lie in its destinations has said so, then writes (a chunk's
//   sources are never below its destinations, kept being ascending).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_EVICTKERNELS_H
#define KVRT_BACKENDS_CUDA_EVICTKERNELS_H

#include "kvrt/Status.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"

#include <cstdint>
#include <vector_types.h>

namespace kvrt::cuda {

/// One sequence of a compaction: where its page table is, how many entries
/// it holds and keeps, and what its selection protects.
struct EvictSequence {
  /// Row of the batch's page tables.
  int32_t tableRow = 0;
  /// Entries held, and the position of the call's last query.
  int32_t length = 0;
  int32_t queryPosition = 0;
  /// evict::KeptLayout: the first `sinks` and the entries from
  /// `recentStart` on are kept, and the `free` best between them.
  int32_t sinks = 0, recentStart = 0, free = 0;
  /// sinks + (length - recentStart) + free.
  int32_t kept = 0;
  /// SnapKV: the sequence's row of the observed queries' ring.
  int32_t observedRow = 0;
};

/// TriAttention's calibrated query heads of one layer, in device memory:
/// per query head and frequency pair E[q_f] (re, im) and E|q_f| - |E q_f|,
/// double [qHeads][headDim / 2]; per pair the frequency and the mean over
/// the future distances of e^{i D w} (re, im), double [headDim / 2].
struct TriAttentionCentres {
  const double *re = nullptr, *im = nullptr, *spread = nullptr;
  const double *frequency = nullptr, *meanRe = nullptr, *meanIm = nullptr;
  /// YaRN's attention factor (1 otherwise) and the pairs' layout.
  double attentionFactor = 1.0;
  bool interleaved = false;
};

enum class EvictScoring : uint8_t { TriAttention, Streaming, SnapKv, H2o };

/// Operands of one layer's compaction of `count` sequences.
struct EvictLaunch {
  /// [count] in device memory.
  const EvictSequence *sequences = nullptr;
  uint32_t count = 0;
  /// An upper bound of the sequences' lengths and kept counts: the strides
  /// of the workspace's rows.
  uint32_t maxLength = 0, maxKept = 0;
  /// The layer's pages and the batch's page tables (PagedKvView: keys,
  /// values, pageTables, pageTableStride, pageSize, kvHeads, headDim).
  PagedKvView cache;
  /// The layer's positions per KV head: [pages][kvHeads][pageSize].
  int32_t *positions = nullptr;
  /// H2O: the attention each entry has accumulated per KV head (summed
  /// over the group's query heads), laid out as `positions`; compaction
  /// moves it with them.
  float *mass = nullptr;
  uint32_t qHeads = 0;
  EvictScoring scoring = EvictScoring::TriAttention;
  TriAttentionCentres centres;
  /// SnapKV: the layer's observed queries, [rows][observe][qHeads * d]
  /// floats (after RoPE), and their positions [rows][observe] (-1: none);
  /// the attention's scale and the pooling kernel (odd).
  const float *observed = nullptr;
  const int32_t *observedPositions = nullptr;
  uint32_t observe = 0, kernel = 1;
  float scale = 1.0f;
  /// One selection for all KV heads (else one per head).
  bool shared = true;
  /// TriAttention: each query head's scores standardised over the entries,
  /// then a KV head's the maximum over its group (combine=zmax), instead
  /// of one score of the group's mean.
  bool standardisedMax = false;
  /// Device workspace of evictWorkspaceBytes() (EvictWorkspace).
  void *workspace = nullptr;
};

/// Entries a block of scoreEntries() and of selectEntries() covers, and the
/// bins of a radix pass.
constexpr uint32_t kEvictScoreTile = 2048, kEvictSelectTile = 1024;
constexpr uint32_t kEvictRadixBins = 2048;

/// The workspace of a launch, carved from EvictLaunch::workspace (or
/// from address 0, to size it): rows are (sequence, KV head).
struct EvictWorkspace {
  /// [rows][maxLength]: the raw scores, and the standardised combination a
  /// selection row ranks by (row sequence * kvHeads + 0 for a shared
  /// selection, + head otherwise).
  float *scores = nullptr, *combined = nullptr;
  /// [rows][maxKept]: the kept indices of each selection row, ascending.
  int32_t *kept = nullptr;
  /// [scored rows][headDim * 3 / 2]: TriAttention's u (key layout), then
  /// m; scored rows are (sequence, KV head), or with standardisedMax
  /// (sequence, query head).
  float *directions = nullptr;
  /// standardisedMax: [sequence * qHeads][maxLength] each query head's raw
  /// scores and [sequence * qHeads][scoreTiles][3] their moments.
  float *headScores = nullptr;
  double *headMoments = nullptr;
  /// SnapKV: [rows][scoreTiles][snapKvPaddedRows()] each tile's maximum
  /// and sum of its entries' exponentials (base 2) per query row; then
  /// [rows][group][maxLength] each query head's summed weights.
  float2 *partials = nullptr;
  float *votes = nullptr;
  /// [rows][scoreTiles][3]: sum, sum of squares, finite count of a tile.
  double *moments = nullptr;
  /// [rows][3][2048]: the radix select's histograms; [rows][2][2]: the
  /// prefix and the count still needed after its first and second pass;
  /// [rows][selectTiles][2]: each tile's entries kept for sure and its
  /// candidates at the threshold.
  uint32_t *histograms = nullptr, *rowState = nullptr;
  int32_t *tileCounts = nullptr;
  /// Compaction: the chunk counter, then [rows][chunks] "sources read".
  uint32_t *chunkCounter = nullptr, *chunkRead = nullptr;
  size_t bytes = 0;
};
EvictWorkspace evictWorkspace(const EvictLaunch &launch);

/// Bytes of the workspace a launch needs: of its fields, count,
/// maxLength, maxKept, cache.kvHeads, cache.headDim, qHeads, scoring,
/// standardisedMax and observe count.
size_t evictWorkspaceBytes(const EvictLaunch &shape);

/// Whether SnapKV's scores take a layer's observed queries for a KV head
/// (group * observe rows, padded as snapKvPaddedRows() says, as registers
/// of the block's warps) and heads of headDim; the sentence why not
/// otherwise.
Status snapKvFits(uint32_t group, uint32_t observe, uint32_t headDim);
/// The same for H2O's rows of a prefill: a row's group of query heads.
Status h2oFits(uint32_t group, uint32_t headDim);

/// SnapKV's query rows of a KV head as its kernels lay them out: each
/// query head's window padded to whole tiles of 16 rows.
inline uint64_t snapKvPaddedRows(uint32_t group, uint32_t observe) {
  return uint64_t(group) * ((uint64_t(observe) + 15) / 16 * 16);
}

/// Whether scoreEntries() reads keys of `kind` (for TriAttention and
/// SnapKV; streaming reads none).
bool evictScoresRead(DeviceSideLayout::Kind kind);
/// Whether compactEntries() moves entries of `side` one by one.
bool evictCompacts(const DeviceSideLayout &side);

/// The kept indices of sequence i, row r (0, or the KV head) of a launch:
/// keptIndices(...) + (i * kvHeads + r) * maxKept, ascending.
const int32_t *keptIndices(const EvictLaunch &launch);

Status scoreEntries(const EvictLaunch &launch, cudaStream_t stream);
/// scoreEntries() for SnapKV (EvictSnapKv.cu).
Status scoreSnapKv(const EvictLaunch &launch, const EvictWorkspace &workspace,
                   cudaStream_t stream);
Status selectEntries(const EvictLaunch &launch, cudaStream_t stream);
Status compactEntries(const EvictLaunch &launch, cudaStream_t stream);

/// SnapKV: copies each row's queries (q[r * qStride ...], qWidth floats)
/// into its sequence's ring, at its position modulo `observe`, for the rows
/// whose ringRows[r] >= 0 (the host marks the last `observe` rows of each
/// sequence, so that no two rows of a call meet in one place).
Status recordObserved(const float *q, uint64_t qStride, uint32_t qWidth,
                      uint32_t rows, const int32_t *positions,
                      const int32_t *ringRows, uint32_t observe, float *ring,
                      int32_t *ringPositions, cudaStream_t stream);

/// Stores rows' positions into every evicting layer's per-head positions:
/// positions[l][slot / pageSize][h][slot % pageSize] = rowPositions[r] for
/// slot = slots[r], each of `layers` layers (layerStride ints apart) and
/// `kvHeads` heads; with `mass` (H2O), the same places of it zeroed.
Status storeHeadPositions(int32_t *positions, float *mass, uint64_t layerStride,
                          uint32_t layers, uint32_t kvHeads, uint32_t pageSize,
                          const int32_t *slots, const int32_t *rowPositions,
                          uint32_t rows, cudaStream_t stream);

/// H2O, at a layer's evict step: a run of rows of one sequence that the
/// decode attention did not take (a prefill's), each reading entries
/// 0 .. rowLengths[r] - 1 of page table row rowTables[r] (one row for
/// the run: a block of runs reads its first row's) at positions up to
/// rowPositions[r], their queries at queries + r * queryStride (after
/// RoPE). Each row's softmax over what it sees, per query head, summed
/// over the group, is added to `launch.mass` (atomic: a prefill's rows
/// meet in one entry). Of `launch`: cache, positions, qHeads, scale and
/// mass; `partials` holds h2oPartialsBytes(): per block of rows, KV head
/// and tile of maxLength, each of its query rows' maximum and sum.
struct H2oRows {
  const float *queries = nullptr;
  uint64_t queryStride = 0;
  const int32_t *rowTables = nullptr, *rowLengths = nullptr,
                *rowPositions = nullptr;
  uint32_t rows = 0, maxLength = 0;
};
size_t h2oPartialsBytes(const EvictLaunch &launch, const H2oRows &rows);
Status accumulateH2o(const EvictLaunch &launch, const H2oRows &rows,
                     float2 *partials, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_EVICTKERNELS_H
