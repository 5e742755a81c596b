//===- Append.h - Quantize-on-append into device pages ----------*- C++ -*-===//
//
// Encodes a batch's new keys (or values) into their slots of one layer's
// device pages, byte for byte as the CPU codec of the same encoding
// (docs/kv-encodings.md): each value first rounded to bf16, as the CPU
// backend's append does, then encoded: bf16, fp8 e4m3 (per_head and
// dynamic scales), nvfp4, polar of 2 to 4 bits (without QJL, which
// DeviceSideLayout does not describe) and low-rank values' bf16 latents
// (each head's z = B^T (v - mu), AppendArgs::basis) and keys' (rotated back
// from their positions first, then z = B^T (w k): AppendArgs::rotations).
// KIVI's tokens stay in bf16
// (the append's bf16Copy, then the exact-token store) until launchKiviFlush()
// encodes them a group at a time, as the CPU backend's tail does.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_APPEND_H
#define KVRT_BACKENDS_CUDA_APPEND_H

#include "runtime/src/backends/cuda/DecodeAttention.h"

namespace kvrt::cuda {

/// RoPE as a rope step applies it (launchRope()): inverse frequencies
/// [headDim / 2] in device memory, cos and sin times `factor`, pairs half a
/// head apart or, `interleaved`, side by side.
struct RopeRotation {
  const double *inverse = nullptr;
  double factor = 1.0;
  bool interleaved = false;
};

struct AppendArgs {
  /// [rows][kvHeads][headDim] fp32, rows `srcStride` values apart (a fused
  /// projection's columns; 0: kvHeads * headDim).
  const float *src = nullptr;
  uint64_t srcStride = 0;
  /// Where the rope step of the keys is folded into their append: src is
  /// not rotated yet, and the append rotates each row by positions[row]
  /// first, as the rope step would have (null `inverse`: src as it is).
  RopeRotation rope;
  /// [rows]: page * pageSize + slot of each row's token.
  const int32_t *slots = nullptr;
  uint32_t rows = 0;
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  uint32_t pageSize = 0;
  /// The layer's pool of this side: [pages][kvHeads][areaStride] bytes.
  uint8_t *pool = nullptr;
  /// fp8 per_head: [kvHeads] scales in device memory.
  const float *headScales = nullptr;
  /// Latent values or keys: their basis in device memory
  /// ([kvHeads][headDim][rank + 1], PagedKvView::valueBasis; keys' rows
  /// have rank + 2 numbers, the weight and the mean after the axes).
  const float *basis = nullptr;
  /// Latent keys: [rows] the positions RoPE rotated each row's key by, and
  /// the CPU codec's tables and frequencies to rotate it back with
  /// (LatentKeyOperands::rotations, ropeInverse), times rotationScale (1 /
  /// YaRN's attention factor).
  const int32_t *positions = nullptr;
  const double *rotations = nullptr;
  const double *ropeInverse = nullptr;
  double rotationScale = 1.0;
  /// Null, or [rows][kvHeads][headDim] bf16: receives the rounded values
  /// (what prefill attention reads of a run's own tokens).
  uint16_t *bf16Copy = nullptr;
  /// An offloaded layer's side (OffloadedPages.h; bf16, fp8 or polar):
  /// `pool` is its host pages, and where residentSlotOf ([pages][kvHeads])
  /// names a device slot for the entry's KV-head page, the entry (and an
  /// fp8 head's scale) is also stored there, so that a resident page stays
  /// whole. Null otherwise.
  const int32_t *residentSlotOf = nullptr;
  uint8_t *residentAreas = nullptr;
  uint64_t residentAreaStride = 0;
};

/// Whether launchAppend() writes `side`'s encoding.
bool appendWrites(const DeviceSideLayout &side);

/// Enqueues the encoding of `args` as `side` lays it out.
Status launchAppend(const AppendArgs &args, const DeviceSideLayout &side,
                    cudaStream_t stream);

/// A rope step of queries run by the append of their layer (a folded rope
/// step): `heads` heads of the keys' head dimension a row, rows
/// `srcStride` values apart, rotated as the keys' `rope` says by the same
/// positions into out [rows][heads][headDim].
struct QueryRope {
  const float *src = nullptr;
  uint64_t srcStride = 0;
  uint32_t heads = 0;
  float *out = nullptr;
};

/// Enqueues a layer's key and value appends, and the rope of its queries
/// where `queries` is not null, as one launch: at decode each of the three
/// is a few microseconds of latency, paid once instead of three times
/// (four with the keys' own rope, which `keys.rope` folds in). The two
/// sides share rows, slots, heads and head dimension.
Status launchAppends(const AppendArgs &keys, const DeviceSideLayout &keySide,
                     const AppendArgs &values,
                     const DeviceSideLayout &valueSide,
                     const QueryRope *queries, cudaStream_t stream);

/// KIVI's groups that leave the window in a call (KiviFlush.cu): row r of
/// the call holds token x = lengths[r] - 1 of its sequence; where x + 1 -
/// recent is a positive multiple of the group G, the tokens [x + 1 - recent
/// - G, x + 1 - recent) are encoded into their pages, keys as one block and
/// values entry by entry, in the CPU codec's arithmetic (the same bytes).
/// Those tokens are the call's own (in the append's bf16 copy) or, stored
/// before it, still in the exact-token store: this runs after the append
/// and before storeExactTokens(). The next call's rows read their codes.
struct KiviFlushArgs {
  /// The layer's pages, page tables, each row's length and table row, and
  /// its exact tokens (calls and own copies set).
  PagedKvView view;
  uint8_t *keys = nullptr;
  uint8_t *values = nullptr;
  uint32_t rows = 0;
};
Status launchKiviFlush(const KiviFlushArgs &args, cudaStream_t stream);

/// positions[slots[r]] = values[r] for r < rows.
Status launchStorePositions(const int32_t *slots, const int32_t *values,
                            uint32_t rows, int32_t *positions,
                            cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_APPEND_H
