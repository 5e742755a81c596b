//===- ExactTokens.h - Tokens kept exact beside the codes ------*- C++ -*-===//
//
// An fp8, nvfp4 or polar encoding with `sinks` or `window`
// (docs/kv-encodings.md) keeps each sequence's first `sinks` tokens and its
// `window` most recent ones exact, and attention reads them exact instead
// of their codes; KIVI keeps its `residual` recent tokens in bf16 and
// encodes them a group at a time as they leave (KiviFlush.cu). The CPU backend
// holds them in its tail and its sinks (PagedCache.h); here each such layer has
// a store of sinks + window bf16 entries per KV head for each sequence slot
// (PageLedger::slot()): token i < sinks at entry i, a later one at entry sinks
// + i % window. Every token is still encoded into its page when it is appended,
// but KIVI's, which are encoded when their group leaves the window.
//
// What a row reads is what the CPU backend's row reads (it encodes its
// tail down to the window before each append, then reads what the tail
// holds): with `before` tokens stored before the call, the codes of tokens
// [sinks, codedTokens(before)) (before - window; for KIVI rounded down to
// whole groups), the store's sinks and ring below `before`, and the call's
// own tokens up to the row, from the bf16 copy its append left. The split
// kernels read the codes, launchExactAttention() (DecodeKernels.h) the rest as
// more splits of the same row, a tile of 64 tokens each; storeExactTokens()
// writes a call's tokens into the store after the layer's attention, so that no
// row reads a store entry its own call has overwritten.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_EXACTTOKENS_H
#define KVRT_BACKENDS_CUDA_EXACTTOKENS_H

#include "kvrt/Status.h"
#include "runtime/src/support/HostDevice.h"

#include <cstdint>

// The runtime API's stream type, without its header in every includer.
typedef struct CUstream_st *cudaStream_t;

namespace kvrt::cuda {

struct PagedKvView;

/// One layer's exact tokens as the attention kernels read them; keys is
/// null where the layer keeps none.
struct ExactTokensView {
  uint32_t sinks = 0;
  /// Entries of the store's ring of recent tokens.
  uint32_t window = 0;
  /// The codes of tokens [0, codedTokens(before)) are read; KIVI's tokens
  /// leave the window `flushGroup` at a time once more than `recent` are
  /// in it (PagedCache::flushable()), so its ring holds recent +
  /// flushGroup. Elsewhere recent is the window and flushGroup 1.
  uint32_t recent = 0;
  uint32_t flushGroup = 1;
  /// The store: [sequence slots][kvHeads][sinks + window][headDim] bf16.
  uint16_t *keys = nullptr;
  uint16_t *values = nullptr;
  /// [table rows][3]: the sequence's slot, the tokens it stored before the
  /// call, and after it.
  const int32_t *calls = nullptr;
  /// [rows of the call][kvHeads][headDim] bf16: each row's own token, as
  /// its append rounded it; a launch's row b is row firstRow + b here.
  const uint16_t *ownKeys = nullptr;
  const uint16_t *ownValues = nullptr;
  uint32_t firstRow = 0;

  bool active() const { return keys != nullptr; }
  KVRT_HOST_DEVICE uint32_t entries() const { return sinks + window; }
};

/// Tokens whose codes a row reads when `before` were stored before its
/// call: all but the most recent ones that `recent` and `flushGroup` keep
/// exact (the sinks are left out where the codes are read).
KVRT_HOST_DEVICE inline int codedTokens(int before, int recent,
                                        int flushGroup) {
  return before > recent ? (before - recent) / flushGroup * flushGroup : 0;
}

/// The first token of the group that leaves KIVI's window when token
/// `token` is stored (tokens [first, first + flushGroup)), or -1: the row
/// storing it encodes that group (KiviFlush.cu). Over a call's rows these
/// are the groups between codedTokens(before) and codedTokens(after).
KVRT_HOST_DEVICE inline int leavingGroup(int token, int recent,
                                         int flushGroup) {
  const int end = token + 1 - recent;
  return end >= flushGroup && end % flushGroup == 0 ? end - flushGroup : -1;
}

/// Writes each of `rows` rows' own token into the store of `view.exact`
/// where it belongs after the call: row r holds token view.lengths[r] - 1
/// of table row view.tableRows[r] (row r when null), kept when it is a
/// sink or among the window most recent tokens once the call is done.
Status storeExactTokens(const PagedKvView &view, uint32_t rows,
                        cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_EXACTTOKENS_H
