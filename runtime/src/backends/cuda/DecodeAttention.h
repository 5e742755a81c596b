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
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DECODEATTENTION_H
#define KVRT_BACKENDS_CUDA_DECODEATTENTION_H

#include "kvrt/Status.h"

#include <cstddef>
#include <cstdint>

// The runtime API's stream type, without its header in every includer.
typedef struct CUstream_st *cudaStream_t;

namespace kvrt::cuda {

/// How one side (keys or values) of a layer is laid out in a head's area.
struct DeviceSideLayout {
  enum class Kind : uint8_t { Bf16, Fp8E4M3 };
  Kind kind = Kind::Bf16;
  /// Bytes from one slot's codes to the next slot's.
  uint32_t entryBytes = 0;
  /// Where slot 0's codes start in the area.
  uint32_t codesOffset = 0;
  /// fp8: whether each slot carries its own scale (dynamic), found
  /// scaleOffset bytes after its codes; otherwise (per_head) the head's
  /// scale is at scaleOffset from the area's start, the same in every page.
  bool slotScales = false;
  uint32_t scaleOffset = 0;
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
  /// [batch]: tokens stored (and encoded) per sequence.
  const int32_t *lengths = nullptr;
  uint32_t pageTableStride = 0;
  uint32_t pageSize = 0;
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
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
};

/// Launch parameters, chosen in planDecodeAttention() alone.
struct DecodeAttentionPlan {
  /// Whether the split kernel computes on the tensor cores (mma.sync, the
  /// default) or on the CUDA cores (FFMA; kept as a second implementation
  /// to check the first against, and for comparison). Either may be set
  /// after planning: the rest of the plan serves both.
  bool tensorCores = true;
  /// The KV group rounded up to 1, 2, 4 or 8: the CUDA-core kernel's
  /// instance (unused query rows are masked).
  uint32_t groupCapacity = 0;
  uint32_t splitTokens = 0;
  uint32_t splits = 0;
  /// Tokens a shared-memory tile holds of one page: min(pageSize, tile).
  uint32_t segmentTokens = 0;
  /// Pipeline stages, and the bytes of one (a tile of keys or values and,
  /// for keys, its positions).
  uint32_t stages = 0;
  uint32_t stageBytes = 0;
  size_t sharedBytes = 0;
  /// Device bytes decodeAttention() needs at `workspace`: the splits'
  /// partial outputs, maxima and sums.
  size_t workspaceBytes = 0;
};

/// The plan for `shape` on a device with `multiprocessors` SMs, or why the
/// kernels cannot serve it.
StatusOr<DecodeAttentionPlan>
planDecodeAttention(const DecodeAttentionShape &shape,
                    uint32_t multiprocessors);

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
  /// planDecodeAttention()'s workspaceBytes of device memory.
  void *workspace = nullptr;
};

/// Enqueues the attention of `args` on `stream` with `plan` (made for this
/// shape); fails with one sentence when a launch fails.
Status decodeAttention(const DecodeAttentionArgs &args,
                       const DecodeAttentionPlan &plan, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DECODEATTENTION_H
