//===- PrefillAttention.h - A prefill's attention on tensor cores -*- C++
//-*-===//
//
// The rows of one sequence's prefill attend to its bf16 pages: row i (at
// sequence index before + i) to the first before + i + 1 tokens, as
// decodeAttention() does for such rows, but 64 rows of one query head per
// block share each 64-token tile of keys and values (FlashAttention 2:
// scores and the online softmax in registers, never the full score
// matrix). Queries and weights enter the MMAs as bf16, accumulations are
// fp32.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_PREFILLATTENTION_H
#define KVRT_BACKENDS_CUDA_PREFILLATTENTION_H

#include "runtime/src/backends/cuda/DecodeAttention.h"

namespace kvrt::cuda {

struct PrefillAttentionArgs {
  /// bf16 pages of the layer (PagedKvView's keys, values and layouts).
  PagedKvView cache;
  /// The sequence's page table (device memory).
  const int32_t *pageTable = nullptr;
  /// Tokens stored before the first row, and rows.
  uint32_t before = 0;
  uint32_t rows = 0;
  /// [rows][qHeads][headDim] fp32.
  const float *q = nullptr;
  float *out = nullptr;
  uint32_t qHeads = 0;
  float scale = 1.0f;
};

/// Whether prefillAttention() reads `view`'s layer (bf16, head dimension
/// 64 or 128, query heads a multiple of the KV heads).
bool prefillAttentionReads(const PagedKvView &view, uint32_t qHeads);

/// Enqueues the attention of `args` on `stream`.
Status prefillAttention(const PrefillAttentionArgs &args, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_PREFILLATTENTION_H
