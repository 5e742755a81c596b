//===- SparseSelect.h - Two-level sparse decode on the GPU ------*- C++ -*-===//
//
// Sparse selection (runtime/src/sparse/TwoLevel.h, the same rule) and
// attention over what it selects, for bf16, fp8 e4m3 (per-head or per-slot
// scales), nvfp4 and 2- to 4-bit polar caches (GatherEntries.cuh decodes
// them; polar in its rotated domain: the queries are rotated into it
// by level 1's launch and the output back after the attention, as the CPU
// does): what cpu::attention computes for decode rows with
// AttentionParams::select set. Row b's pages hold lengths[b] tokens; the
// newest is this step's token (still in the tail on the CPU): it is always
// attended and never selected from. The lengths[b] - 1 entries before it
// are the selectable ones; where the cache keeps tokens exact beside their
// codes (ExactTokens.h), all but the most recent `window` of them, and the
// row reads those, its own token and the sinks the selection lists exact
// (more splits of the row, ExactAttention.cu), as the CPU backend reads
// its tail and its sinks:
//
//   summaries  per (page, KV head, block of `block` slots) the per-channel
//              minimum and maximum of the stored keys as decoded, rounded
//              outward to FP8 codes with an exponent per block
//              (sparse/BoundCodes.h, the CPU's bits), built for a
//              prefill's pages, and for a decode step's token by the
//              attention's launch, ready for the next step;
//   level 1    Quest's bound of every selectable block for each query
//              head of the group in fp32 (a launch spread over many SMs),
//              then ranked across the heads, the first and the newest
//              block forced, the topBlocks best kept (index order; a
//              second launch, one block a row);
//   level 2    likewise: q.k of every entry of the kept blocks, ranked
//              the same way, the topTokens best kept (index order);
//   attention  flash-decoding over the kept entries and the newest token,
//              gathered through the page table, its splits merged by
//              SplitReduce.cu; the kept entries' logits are level 2's
//              scores (the ranking lists where they are), so only their
//              values are read, and the newest token's key.
// Ties go to the lower index, as on the CPU. A row with at most topTokens
// selectable entries attends to all of them.
//
// The summaries live beside the pool, indexed like its pages
// (BlockSummaries: the layout of the CPU's Page::keyBounds and
// Page::boundExponents, page after page).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPARSESELECT_H
#define KVRT_BACKENDS_CUDA_SPARSESELECT_H

#include "runtime/src/backends/cuda/DecodeAttention.h"

namespace kvrt::cuda {

/// Block summaries of a layer's pool (or those from one block on, where a
/// kernel writes one). With n = (page * kvHeads + head) * (pageSize /
/// block) + j for block j of a page's KV head:
struct BlockSummaries {
  /// codes[n * 2 * D ...]: its D lower bounds' codes, then its D upper ones.
  uint8_t *codes = nullptr;
  /// exponents[n]: the block's exponent.
  int8_t *exponents = nullptr;
};

/// A layer's selection (SelectParams in kvpkg.proto).
struct SparsePolicy {
  uint32_t block = 0;
  uint32_t topBlocks = 0;
  uint32_t topTokens = 0;
};

/// Rebuilds the summaries of `count` pages: for each i, every block of page
/// pages[i] that starts below slot slots[i], from its slots below slots[i]
/// (after a prefill or a compaction wrote them). `pages` and `slots` are
/// device arrays.
Status buildBlockSummaries(const PagedKvView &cache,
                           const BlockSummaries &summaries, uint32_t block,
                           const int32_t *pages, const int32_t *slots,
                           uint32_t count, cudaStream_t stream);

/// What the sparse launches depend on besides the data.
struct SparseDecodeShape {
  uint32_t batch = 0;
  uint32_t qHeads = 0;
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  uint32_t pageSize = 0;
  /// An upper bound of the batch's lengths (the newest token included).
  uint32_t maxLength = 0;
  DeviceSideLayout key, value;
  SparsePolicy policy;
  /// Entries of the layer's store of exact tokens (ExactTokensView::
  /// entries()), 0 where it keeps none.
  uint32_t exactTokens = 0;
};

/// Launch parameters and the workspace's layout, chosen in
/// planSparseDecode() alone.
struct SparseDecodePlan {
  SparsePolicy policy;
  /// The KV group rounded up to 1, 2, 4 or 8: the kernels' instance.
  uint32_t groupCapacity = 0;
  /// Selectable blocks and candidate entries of the longest row.
  uint32_t maxBlocks = 0;
  uint32_t maxCandidates = 0;
  /// Level 1: blocks per thread block, and thread blocks per row.
  uint32_t boundChunkBlocks = 0;
  uint32_t boundChunks = 0;
  /// Level 2: candidate entries per thread block, and thread blocks per row.
  uint32_t scoreChunkSlots = 0;
  uint32_t scoreChunks = 0;
  /// Attention: listed entries per split, and splits per row, the last
  /// exactSplits of them over the exact tokens.
  uint32_t splitEntries = 0;
  uint32_t splits = 0;
  uint32_t exactSplits = 0;
  /// Whether each row's blocks run as one cluster and merge their splits
  /// through distributed shared memory (SparseAttention.cu), with no merge
  /// launch and no partials in the workspace.
  bool mergesInCluster = false;
  /// Dynamic shared memory of the level 1 and level 2 kernels: scoring,
  /// then ranking; and the threads of level 2's scoring blocks.
  size_t boundSharedBytes = 0;
  size_t blockRankSharedBytes = 0;
  size_t scoreSharedBytes = 0;
  size_t entryRankSharedBytes = 0;
  uint32_t scoreThreads = 0;
  /// Byte offsets in the workspace: the selection's results
  /// (SparseSelection), per-head bounds and scores, the splits' partials,
  /// the rotated queries.
  size_t blockCountsOffset = 0;
  size_t blocksOffset = 0;
  size_t entryCountsOffset = 0;
  size_t entriesOffset = 0;
  size_t scoredOffset = 0;
  size_t candidatesOffset = 0;
  size_t boundsOffset = 0;
  size_t scoresOffset = 0;
  size_t partialsOffset = 0;
  /// Polar keys: the queries rotated into their domain (else empty).
  size_t rotatedQueriesOffset = 0;
  size_t workspaceBytes = 0;
};

/// The plan for `shape` on a device with `multiprocessors` SMs, or why the
/// kernels cannot serve it.
StatusOr<SparseDecodePlan> planSparseDecode(const SparseDecodeShape &shape,
                                            uint32_t multiprocessors);

/// What the selection leaves in the workspace, per row b and KV head h
/// (r = b * kvHeads + h).
struct SparseSelection {
  /// [r]: blocks kept by level 1 (0 where the row attends to everything).
  uint32_t *blockCounts = nullptr;
  /// [r][topBlocks]: their indices, ascending.
  int32_t *blocks = nullptr;
  /// [r]: entries listed for attention (besides the newest token).
  uint32_t *entryCounts = nullptr;
  /// [r][topTokens]: their indices in the sequence, ascending.
  int32_t *entries = nullptr;
  /// [r]: 1 where level 2 ranked the row's candidates, 0 where it listed
  /// them (or every selectable entry) unscored.
  uint32_t *scored = nullptr;
  /// [r][topTokens], where scored: each listed entry's index among the
  /// row's candidates, whose q.k for each query head level 2's scores
  /// hold (the attention's logits before the softmax's scale).
  int32_t *candidates = nullptr;
};
SparseSelection sparseSelection(void *workspace, const SparseDecodePlan &plan);

/// An offloaded layer's pages on the device (docs/offload.md): the cache
/// view's pages are then in mapped host memory, and the kernels read a
/// page's KV-head area from its device slot where slotOf names one.
struct ResidentPages {
  /// Null (nothing offloaded), or [pages][kvHeads]: the slot, or -1.
  const int32_t *slotOf = nullptr;
  /// [slots][areaStride] bytes of each side.
  const uint8_t *keys = nullptr;
  const uint8_t *values = nullptr;
};

/// Operands of one decode step's sparse attention for one layer.
struct SparseDecodeArgs {
  /// Decode rows: tableRows must be null.
  PagedKvView cache;
  ResidentPages resident;
  /// The attention's launch brings the newest blocks' summaries up to date.
  BlockSummaries summaries;
  /// [batch][qHeads][headDim] fp32.
  const float *q = nullptr;
  /// [batch]: the position of each row's query.
  const int32_t *queryPositions = nullptr;
  /// [batch][qHeads][headDim] fp32.
  float *out = nullptr;
  uint32_t batch = 0;
  uint32_t qHeads = 0;
  float scale = 1.0f;
  /// 0: unbounded.
  int32_t slidingWindow = 0;
  /// Where the cache keeps its `recent` newest tokens exact
  /// (ExactTokensView): [batch] each row's length less them, floored at 0
  /// (codedTokens(length, recent, 1), ExactTokens.h), which the selection
  /// and the summaries read as the row's length; null otherwise. (Reading the
  /// window in the kernels instead, 0 where no token is exact, made the sparse
  /// bench's step 2-4 us slower over caches without exact tokens on an H100.)
  const int32_t *codedLengths = nullptr;
  /// planSparseDecode()'s workspaceBytes, prepared once.
  void *workspace = nullptr;
  /// An offloaded layer: mapped host memory where level 1 also leaves its
  /// SparseSelection::blockCounts and blocks (same layout), for the host's
  /// schedule (OffloadedPages.h); null otherwise.
  uint32_t *hostBlockCounts = nullptr;
  int32_t *hostBlocks = nullptr;
  /// An offloaded layer: a word of mapped host memory where the attention
  /// stores `signalEnd` (the rows' end in the call) as it starts, once both
  /// levels have run and level 1's host copies are complete; null
  /// otherwise.
  uint32_t *hostSignal = nullptr;
  uint32_t signalEnd = 0;
  /// With exact tokens: where their splits run beside the sparse ones
  /// (else on the same stream).
  SideStream exactSide;
};

/// Enqueues levels 1 and 2 (two launches each, also apart: level 2 reads
/// what level 1 left in the workspace: for polar keys, the rotated queries
/// too).
Status selectSparseEntries(const SparseDecodeArgs &args,
                           const SparseDecodePlan &plan, cudaStream_t stream);
Status selectSparseBlocks(const SparseDecodeArgs &args,
                          const SparseDecodePlan &plan, cudaStream_t stream);
Status selectSparseTokens(const SparseDecodeArgs &args,
                          const SparseDecodePlan &plan, cudaStream_t stream);
/// Enqueues attention over the selection and the merge of its splits. The
/// attention's launch also rebuilds, for each row, the summary of the block
/// that holds its newest token (lengths[b] - 1) from that block's entries,
/// read from a resident page's device slot where args.resident has one:
/// the next step's newest selectable block, whose bounds its level 1 reads
/// (this step's newest selectable block was brought up to date by the
/// previous step's attention, or built with a prefill's pages).
Status sparseAttention(const SparseDecodeArgs &args,
                       const SparseDecodePlan &plan, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPARSESELECT_H
