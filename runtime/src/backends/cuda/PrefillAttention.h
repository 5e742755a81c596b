//===- PrefillAttention.h - A prefill's attention on tensor cores -*- C++
//-*-===//
//
// The rows of one sequence's prefill (a run) attend to the sequence: row i
// (at sequence index before + i) to the first before + i + 1 tokens, the
// `before` earlier ones from its bf16 pages and the run's own from the
// bf16 copy its append left (so the run reads its own tokens unquantized,
// as the CPU backend reads them from its tail, whatever the encoding),
// as decodeAttention() does for such rows, but 64 rows of one query head per
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
  /// [rows][kvHeads][headDim] bf16: the run's own keys and values.
  const uint16_t *ownKeys = nullptr;
  const uint16_t *ownValues = nullptr;
  /// [rows][qHeads][headDim] fp32.
  const float *q = nullptr;
  float *out = nullptr;
  uint32_t qHeads = 0;
  float scale = 1.0f;
};

/// Whether prefillAttention() reads a run of `view`'s layer after `before`
/// tokens (bf16 pages, or none; head dimension 64 or 128; query heads a
/// multiple of the KV heads).
bool prefillAttentionReads(const PagedKvView &view, uint32_t qHeads,
                           uint32_t before);

/// Enqueues the attention of `args` on `stream`.
Status prefillAttention(const PrefillAttentionArgs &args, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_PREFILLATTENTION_H
