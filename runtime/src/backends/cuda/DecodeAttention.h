//===- DecodeAttention.h - Flash-decoding over the paged cache --*- C++ -*-===//
//
// Decode attention on the GPU: one query row per sequence, over a device
// copy of one layer of the paged cache (PagedCache.h) whose page areas hold
// exactly the CPU codecs' bytes (docs/kv-encodings.md). It computes what
// cpu::attention computes for such rows: causal over stored positions
// (and a sliding window), query head h reads KV head h / (qHeads /
// kvHeads), logits * scale, softmax, values; a sequence with no visible
// entry gets zeros.
//
// Flash-decoding: each sequence's entries are cut into splits of
// splitTokens tokens, one thread block per (split, KV head, sequence) that
// serves all query heads of the KV head's group from each load of a key or
// value; blocks leave a partial (max, sum, unnormalised output) in fp32 and
// a second kernel merges the splits. planDecodeAttention() chooses every
// launch parameter. Tiles reach shared memory by bulk copies (sm_90) and
// are decoded in registers; products accumulate in fp32.
//
// Polar caches are read in their rotated domain (docs/kv-encodings.md):
// each split block rotates its queries into the keys' domain (q' = R_K q)
// and the merge rotates each output row back (R_V^T), as the CPU codec's
// prepareQuery() and finishOutput() do.
//
// A layer that keeps tokens exact beside their codes (ExactTokens.h) has
// more splits per row, over those tokens in bf16.
//
// Low-rank keys (#kv.lowrank, side=key) are stored before RoPE as latents
// z on per-head axes; the GroupMma kernel rebuilds each tile's keys on the
// tensor cores (K = Z W^T, W the axes over the coordinates' weights, as
// bf16 hi + lo halves) and rotates them to their positions in registers
// before scoring them (SplitGroupMmaLatentKeys.cu, LatentKeyOperands.h),
// beside bf16 values or latent values of rank up to 64.
//
// Low-rank values (#kv.lowrank, side=value: docs/lowrank.md) are read as
// their latents z = B^T (v - mu), rank coordinates in bf16 beside bf16
// keys: the code splits sum w z and w over the latent entries, the exact
// splits w v in head_dim coordinates, and the merge maps each row back once,
// exact + mu * sum w + B * sum w z (PagedKvView::valueBasis), as the CPU
// codec's finishOutput() does; no value is rebuilt entry by entry.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DECODEATTENTION_H
#define KVRT_BACKENDS_CUDA_DECODEATTENTION_H

#include "kvrt/Status.h"
#include "runtime/src/backends/cuda/ExactTokens.h"

#include <cstddef>
#include <cstdint>

// The runtime API's stream type, without its header in every includer.
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;

namespace kvrt::cuda {

/// How one side (keys or values) of a layer is laid out in a head's area.
struct DeviceSideLayout {
  /// Latent: a low-rank value's latent, `rank` bf16 coordinates.
  /// LatentKey: a low-rank key's latent before RoPE, `rank` bf16
  /// coordinates.
  enum class Kind : uint8_t {
    Bf16,
    Fp8E4M3,
    Polar,
    Nvfp4,
    Kivi,
    Latent,
    LatentKey
  };
  Kind kind = Kind::Bf16;
  /// Bytes from one slot's codes to the next slot's.
  uint32_t entryBytes = 0;
  /// Where slot 0's codes start in the area.
  uint32_t codesOffset = 0;
  /// fp8: whether each slot carries its own f32 scale (dynamic), found
  /// scaleOffset bytes after its codes; otherwise (per_head) the head's
  /// scale is at scaleOffset from the area's start, the same in every page.
  /// polar: each slot's f16 scale, scaleOffset bytes after its codes.
  bool slotScales = false;
  uint32_t scaleOffset = 0;
  /// polar: bits per code (2, 3 or 4); the codebook as the kernels hold it,
  /// level c times 2^levelShift as two f16 halves (hi in the low 16 bits,
  /// lo = the rest in the high 16 bits: together about 22 bits, so scores
  /// and sums keep fp32 accuracy); and the rotation's signs, bit i of
  /// rotationSigns set where D[i][i] = -1 (R = H D / sqrt(d)).
  /// nvfp4: the kernels hold entries times 2^levelShift / tensorScale
  /// (the artifact's per-tensor scale, read back through the codec).
  /// kivi: bits per code (2 or 4), and the group: keys, tokens per block
  /// (the block's codes, then a scale and a zero per channel); values,
  /// channels per scale and zero (each entry's codes, then those pairs).
  /// entryBytes is a block's bytes over its tokens for keys.
  uint32_t bits = 0;
  uint32_t group = 0;
  /// Latent, LatentKey: coordinates per entry (below the head dimension).
  uint32_t rank = 0;
  /// LatentKey: whether RoPE rotates pairs of neighbouring coordinates
  /// (GPT-J) rather than coordinates half a head apart.
  bool ropeInterleaved = false;
  int32_t levelShift = 0;
  float tensorScale = 1.0f;
  uint32_t levelHalves[16] = {};
  /// polar: the codebook's levels as the CPU codec decodes them, in fp32
  /// (the sparse kernels decode with them, bit for bit).
  float levels[16] = {};
  uint32_t rotationSigns[4] = {};
  /// The codec's headBytes(pageSize).
  uint64_t headBytes = 0;
  /// Bytes between consecutive heads' areas in the device pool: headBytes
  /// rounded up to 16, so that every area starts 16-byte aligned.
  uint64_t areaStride = 0;
};

/// One layer's pages and a batch's page tables in device memory.
struct PagedKvView {
  DeviceSideLayout key, value;
  /// [pages][kvHeads][areaStride] bytes each.
  const uint8_t *keys = nullptr;
  const uint8_t *values = nullptr;
  /// [pages][pageSize]: the position stored in each slot.
  const int32_t *positions = nullptr;
  /// [batch][pageTableStride]: sequence b's token i is in page
  /// pageTables[b * pageTableStride + i / pageSize], slot i % pageSize.
  const int32_t *pageTables = nullptr;
  /// Null, or [batch]: row b reads row tableRows[b] of pageTables, so that
  /// the rows of one sequence's prefill share its page table.
  const int32_t *tableRows = nullptr;
  /// [batch]: tokens stored (and encoded) per sequence, or per row: row b
  /// reads the first lengths[b] tokens of its page table.
  const int32_t *lengths = nullptr;
  uint32_t pageTableStride = 0;
  uint32_t pageSize = 0;
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  /// The tokens the layer keeps exact, if any: the pages' codes of those
  /// are not read.
  ExactTokensView exact;
  /// Latent values: the basis, [kvHeads][headDim][rank + 1] f32 (each
  /// coordinate's row of axes, then its mean), as the artifact stores it.
  const float *valueBasis = nullptr;
  /// Latent keys: each KV head's axes as the kernel's operands, and RoPE's
  /// frequencies as fractions of a turn (LatentKeyOperands.h).
  const uint32_t *keyAxes = nullptr;
  const uint32_t *keyFrequencies = nullptr;
};

/// What a launch depends on besides the data.
struct DecodeAttentionShape {
  uint32_t batch = 0;
  uint32_t qHeads = 0;
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  uint32_t pageSize = 0;
  /// An upper bound of the batch's lengths.
  uint32_t maxLength = 0;
  DeviceSideLayout key, value;
  /// The sinks plus the window of a layer that keeps tokens exact
  /// (PagedKvView::exact), else 0.
  uint32_t exactTokens = 0;
  /// H2O: the rows add their attention to DecodeAttentionArgs::mass.
  bool addsMass = false;
};

/// The split kernels. Each encoding has a default (planDecodeAttention()
/// picks it); the others it reads are second implementations to check the
/// first against, and for comparison.
enum class SplitKernel : uint8_t {
  /// Tensor cores, mma.sync with the group's query heads as its 8 columns
  /// and 16 tokens (keys) or coordinates (values) as its rows; 64-token
  /// tiles, 16 tokens a warp (SplitGroupMmaKernel.cuh). The default for
  /// fp8, polar, nvfp4, KIVI and low-rank keys (beside bf16 values).
  GroupMma,
  /// Tensor cores, mma.sync with the group's query heads as rows of A;
  /// 32-token tiles (SplitMmaKernel.cuh). bf16, fp8 and bf16 keys with
  /// latent values; the default for bf16 keys.
  Mma,
  /// CUDA cores, FFMA (SplitKernel.cuh). bf16 and fp8.
  Fma,
};

/// Whether `kernel` reads keys laid out as `key` with values as `value`.
bool splitKernelReads(SplitKernel kernel, const DeviceSideLayout &key,
                      const DeviceSideLayout &value);

/// Launch parameters, chosen in planDecodeAttention() alone.
struct DecodeAttentionPlan {
  SplitKernel kernel = SplitKernel::Mma;
  /// Tokens a pipeline stage holds: 64 for GroupMma, else 32.
  uint32_t tileTokens = 0;
  /// The KV group rounded up to 1, 2, 4 or 8: the CUDA-core kernel's
  /// instance (unused query rows are masked).
  uint32_t groupCapacity = 0;
  uint32_t splitTokens = 0;
  /// Partials per row: the splits of the codes, then exactSplits of the
  /// exact tokens (which a decode row reads one tile of 64 each); at least
  /// two for latent values, whose sums are mapped back by the merge.
  uint32_t splits = 0;
  uint32_t exactSplits = 0;
  /// Tokens a shared-memory tile holds of one page: min(pageSize, tile).
  uint32_t segmentTokens = 0;
  /// Pipeline stages, and the bytes of one (a tile of keys or values and,
  /// for keys, its positions).
  uint32_t stages = 0;
  uint32_t stageBytes = 0;
  /// Value tiles one stage holds: 2 for latents of rank 64 or below beside
  /// keys of 128 coordinates (the kernel instance with a value dimension
  /// of 64), so the value pass keeps as many bytes in flight as the key
  /// pass; else 1.
  uint32_t valueTilesPerStage = 1;
  /// Latent keys: k-steps of 16 latent coordinates the rebuild takes (the
  /// rank rounded up to 32, 64 or 128), and the shared-memory bytes of one
  /// KV head's operands (LatentKeyOperands.h).
  uint32_t keyRankSteps = 0;
  uint32_t keyOperandBytes = 0;
  /// Latent values beside bf16 keys (the Mma kernel): whether the kernel
  /// reads their coordinates in pairs, 4 bytes at a time, as bf16 values
  /// (an even rank: every entry starts 4-byte aligned), or one at a time
  /// (an odd rank).
  bool latentPairs = false;
  /// Dynamic shared memory per block, and the kernel's static shared
  /// memory beside it (4-bit polar's table of level pairs).
  size_t sharedBytes = 0;
  size_t staticSharedBytes = 0;
  /// Device bytes decodeAttention() needs at `workspace`: the splits'
  /// partial outputs, maxima and sums, then (addsMass) their weights,
  /// splits x splitTokens floats per query row.
  size_t workspaceBytes = 0;
  bool addsMass = false;
};

/// The plan for `shape` on a device with `multiprocessors` SMs with the
/// encoding's default split kernel, or why the kernels cannot serve it.
StatusOr<DecodeAttentionPlan>
planDecodeAttention(const DecodeAttentionShape &shape,
                    uint32_t multiprocessors);
/// The same with `kernel`, which must read the shape's encoding.
StatusOr<DecodeAttentionPlan>
planDecodeAttention(const DecodeAttentionShape &shape, uint32_t multiprocessors,
                    SplitKernel kernel);

/// A stream beside the layer's, with the events that fork it from the
/// layer's stream and join it back.
struct SideStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
};

/// Operands of one decode step's attention for one layer.
struct DecodeAttentionArgs {
  PagedKvView cache;
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
  /// Where the plan addsMass (H2O): [pages][kvHeads][pageSize] floats, to
  /// which each row adds the attention its group's query heads give each
  /// entry it reads (summed over the group), from the weights the
  /// attention computes anyway (AttentionMass.cu).
  float *mass = nullptr;
  /// planDecodeAttention()'s workspaceBytes of device memory.
  void *workspace = nullptr;
  /// Where the exact tokens' splits run, concurrently with the codes'
  /// (they are short and latency-bound); without a stream, after them.
  SideStream exactSide;
};

/// Enqueues the attention of `args` on `stream` with `plan` (made for this
/// shape); fails with one sentence when a launch fails.
Status decodeAttention(const DecodeAttentionArgs &args,
                       const DecodeAttentionPlan &plan, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DECODEATTENTION_H
