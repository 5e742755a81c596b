//===- PrefillDecode.h - Earlier tokens decoded for a prefill ---*- C++ -*-===//
//
// The prefill kernel (PrefillAttention.h) reads a sequence's earlier
// tokens from bf16 pages. A chunked prefill of a quantized layer (a
// prompt prefilled in pieces, or a sequence extended by a long run) would
// otherwise send each of its rows through the decode kernels, one
// flash-decoding pass per row over the whole sequence: at 32K tokens in
// chunks of 8192 that made a polar-4 prefill 4x slower than bf16's. So
// the earlier tokens of fp8 (e4m3), nvfp4, polar (at most 4 bits) and
// KIVI layers are first decoded, as the CPU codecs decode them (polar
// rotated back to the model's basis), rounded to bf16, into pages of their
// own that the prefill kernel then reads like any bf16 layer's; where the
// layer keeps tokens exact (sinks, window, KIVI's residual), those come
// from its store instead, as the decode kernels read them. That costs one
// pass over the earlier tokens' codes and one write of their bf16 copy per
// layer and chunk. The rows read the decoded tokens rounded to bf16 once
// more than the CPU backend does (it scores the codes).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_PREFILLDECODE_H
#define KVRT_BACKENDS_CUDA_PREFILLDECODE_H

#include "kvrt/Status.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"

#include <cstdint>

namespace kvrt::cuda {

/// Whether decodeEarlierTokens() decodes both sides of `view`: fp8 e4m3,
/// nvfp4, polar of at most 4 bits or KIVI, heads of 64 or 128 coordinates.
bool prefillDecodes(const PagedKvView &view);

/// Bytes of decodeEarlierTokens()'s output for `before` tokens of `view`:
/// keys' and values' pages, then the table of those pages.
size_t decodedTokensBytes(const PagedKvView &view, uint32_t before);

/// Decodes tokens [0, before) of the sequence whose page table is
/// `pageTable` (row `tableRow` of the batch's, which names its exact
/// tokens' store slot in view.exact.calls) into `out`
/// (decodedTokensBytes()) and returns the view of them as bf16 pages: page
/// p of the sequence becomes page p there, so the prefill reads them
/// through the table the view's decoded pages come with (`*table`).
/// Enqueued on `stream`.
StatusOr<PagedKvView> decodeEarlierTokens(const PagedKvView &view,
                                          const int32_t *pageTable,
                                          uint32_t tableRow, uint32_t before,
                                          void *out, const int32_t **table,
                                          cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_PREFILLDECODE_H
