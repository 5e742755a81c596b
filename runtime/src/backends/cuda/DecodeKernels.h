//===- DecodeKernels.h - What the dispatcher passes to kernels --*- C++ -*-===//
//
// Internal to the CUDA backend: the split kernel's parameters, flattened
// from DecodeAttentionArgs and DecodeAttentionPlan, and one launcher per
// encoding (each in its own .cu file, so that changing one encoding's
// decoding rebuilds only its kernels). The launch* functions return
// whether their launch was accepted and leave a refused launch's error for
// the caller's cudaGetLastError().
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DECODEKERNELS_H
#define KVRT_BACKENDS_CUDA_DECODEKERNELS_H

#include "runtime/src/backends/cuda/DecodeAttention.h"

namespace kvrt::cuda {

/// Tokens per shared-memory tile (the Mma and Fma kernels; GroupMma's are
/// twice as long); threads per block that compute (four warps), and the
/// block's size with its producer warp, which only issues the bulk copies.
inline constexpr uint32_t kTileTokens = 32;
inline constexpr uint32_t kGroupTileTokens = 64;
inline constexpr uint32_t kBlockThreads = 128;
inline constexpr uint32_t kLaunchThreads = kBlockThreads + 32;
/// At most this many pipeline stages: bulk copies of the next stages are
/// in flight while one is read (the plan picks how many).
inline constexpr uint32_t kMaxStages = 8;
/// Static shared memory of the GroupMma kernel for polar: its table indexed
/// by a group of codes (GroupFragments.cuh). A byte of 4- or 2-bit codes:
/// 256 entries of 4 bytes with a copy per two lanes, or of 8 bytes with a
/// copy per four lanes; two 3-bit codes: 64 entries of 4 bytes with a copy
/// per lane.
inline constexpr uint32_t polarCodeTableBytes(uint32_t bits) {
  return bits == 3 ? 64 * 32 * 4 : 256 * 16 * 4;
}

/// One side's geometry as the split kernel walks it.
struct SideGeometry {
  uint64_t areaStride;
  uint64_t pageStride;
  uint32_t entryBytes;
  /// codesOffset rounded down to 16: where a segment's copy starts
  /// relative to its first slot's entry.
  uint32_t copyBase;
  /// codesOffset % 16: where the first slot's codes land in the copy.
  uint32_t copySkew;
  /// 16-byte chunks one segment's copy takes.
  uint32_t segmentChunks;
  bool slotScales;
  uint32_t scaleOffset;
  /// kivi: DeviceSideLayout::group.
  uint32_t group;
  /// polar: the codebook (DeviceSideLayout::levelHalves), and 2^-levelShift,
  /// which brings products with it back to the levels' scale (nvfp4: times
  /// the tensor scale); 1 otherwise.
  uint32_t levelHalves[16];
  float codeScale;
};

struct SplitKernelParams {
  const float *q;
  const int32_t *queryPositions;
  float *out;
  /// [batch][qHeads][splits][headDim] and [batch][qHeads][splits][2].
  float *partialOut;
  float *partialMaxSum;
  const uint8_t *keys;
  const uint8_t *values;
  const int32_t *positions;
  const int32_t *pageTables;
  /// Null, or row b's page table is row tableRows[b] of pageTables.
  const int32_t *tableRows;
  const int32_t *lengths;
  /// Null, or (a layer keeping tokens exact) ExactTokensView::calls: the
  /// codes of tokens below exactSinks, and from codedTokens(before,
  /// exactRecent, exactGroup) on, are not read.
  const int32_t *exactCalls;
  uint32_t exactSinks;
  uint32_t exactRecent;
  uint32_t exactGroup;
  SideGeometry key, value;
  /// Latent keys: the KV heads' axes and RoPE's frequencies
  /// (LatentKeyOperands.h), which each block copies to shared memory at
  /// keyOperandOffset; the latents' rank, and whether RoPE pairs
  /// neighbouring coordinates.
  const uint32_t *keyAxes;
  const uint32_t *keyFrequencies;
  uint32_t keyRank;
  uint32_t keyOperandOffset;
  bool ropeInterleaved;
  /// Polar: the keys' rotation signs (R = H D / sqrt(d)); the GroupMma
  /// kernel rotates the queries itself.
  uint32_t rotationSigns[4];
  uint32_t pageTableStride;
  uint32_t pageSize;
  uint32_t qHeads;
  uint32_t group;
  /// scale * log2(e): the kernels use exp2.
  float scaleLog2;
  int32_t slidingWindow;
  uint32_t splitTokens;
  uint32_t splits;
  /// log2 of the plan's segmentTokens (4, 8, 16 or 32).
  uint32_t segmentShift;
  /// Pipeline stages (at most kMaxStages) and the bytes of each.
  uint32_t stages;
  uint32_t stageBytes;
  /// Where a stage holds two value tiles (DecodeAttentionPlan::
  /// valueTilesPerStage), the bytes from the first to the second.
  uint32_t valueTileBytes;
  /// Bytes from the start of shared memory to the logits: the stages, or
  /// the block's final reduction where that is larger.
  uint32_t logitsOffset;
  /// Floats from one head's scores to the next's (padded against bank
  /// conflicts).
  uint32_t logitsStride;
  /// Ints reserved for the split's page indices.
  uint32_t pageSlots;
  /// Bytes from the start of shared memory to the stages' barriers: "full"
  /// ones, then "empty" ones, kMaxStages each.
  uint32_t barrierOffset;
  /// Null, or (H2O) where each split leaves its weights: entry i of query
  /// row r at weights[r * weightsStride + i], 2^(score - the split's
  /// maximum), divided by the sum where the row has one split.
  float *weights;
  uint32_t weightsStride;
};

/// The split kernels' instances, each from its own .cu file, or null when
/// none matches: on the CUDA cores (SplitKernel.cuh), for a group size
/// rounded up to 1, 2, 4 or 8, and on the tensor cores (SplitMmaKernel.cuh,
/// SplitGroupMmaKernel.cuh).
const void *splitKernelBf16(uint32_t headDim, uint32_t groupCapacity);
const void *splitKernelFp8E4M3(uint32_t headDim, uint32_t groupCapacity);
const void *splitMmaKernelBf16(uint32_t headDim);
const void *splitMmaKernelFp8E4M3(uint32_t headDim);
/// bf16 keys with latent values of `rank` coordinates (SplitMmaLatent.cu):
/// the value pass sums the latents, rank rounded up to 64 or 128, read in
/// 4-byte pairs where `pairs` (even ranks only); null where no instance fits.
const void *splitMmaKernelLatent(uint32_t headDim, uint32_t rank, bool pairs);
/// GroupMma: `folded` for groups of at most kFoldedGroup heads.
const void *splitGroupMmaKernelFp8E4M3(uint32_t headDim, bool folded);
const void *splitGroupMmaKernelPolar(uint32_t headDim, uint32_t bits,
                                     bool folded);
const void *splitGroupMmaKernelNvfp4(uint32_t headDim, bool folded);
const void *splitGroupMmaKernelKivi(uint32_t headDim, uint32_t bits,
                                    bool folded);
/// Low-rank keys beside bf16 values or (`latentValues`) bf16 latents of
/// rank up to 64, for groups of at most kFoldedGroup heads; `rankSteps` as
/// DecodeAttentionPlan::keyRankSteps.
const void *splitGroupMmaKernelLatentKeys(uint32_t headDim, uint32_t rankSteps,
                                          bool latentValues);

/// The largest group whose heads' hi and lo halves share one MMA's 8
/// columns (SplitGroupMmaKernel.cuh).
inline constexpr uint32_t kFoldedGroup = 4;

/// Tokens of a tile of exact tokens (ExactAttention.cu).
inline constexpr uint32_t kExactTileTokens = 64;

/// Where sparse selection listed each decode row's entries
/// (SparseSelection: row b's KV head h at r = b * kvHeads + h, ascending):
/// beside it a sink whose codes the row could read is attended only where
/// it is listed, as the CPU backend attends the selected ones.
struct ListedEntries {
  const uint32_t *counts = nullptr;
  const int32_t *entries = nullptr;
  uint32_t stride = 0;
};

/// The exact tokens' partials of each row and KV head, written as the
/// row's last `exactSplits` of `splits` (ExactAttention.cu): split j takes
/// tiles j, j + exactSplits, ... of the row's exact tokens. `q` unrotated;
/// `valueSigns` (or null) rotates the partial outputs into polar's rotated
/// value domain. With `listed` (a sparse layer's decode rows), the sinks
/// are read where it lists them.
bool launchExactAttention(const PagedKvView &cache, const float *q,
                          const int32_t *queryPositions, uint32_t batch,
                          uint32_t qHeads, float scaleLog2,
                          int32_t slidingWindow, float *partialOut,
                          float *partialMaxSum, uint32_t splits,
                          uint32_t exactSplits, const uint32_t *valueSigns,
                          const ListedEntries &listed, cudaStream_t stream);

/// H2O: adds to `mass` ([pages][kvHeads][pageSize] floats) each entry's
/// attention, the weights the splits left (SplitKernelParams::weights)
/// normalised by the merged maxima and sums and summed over the group's
/// query heads (AttentionMass.cu). `batch` rows read the first lengths[b]
/// entries of page table row tableRows[b] (or b).
struct AttentionMassArgs {
  const float *weights = nullptr;
  uint32_t weightsStride = 0;
  const float *partialMaxSum = nullptr;
  const int32_t *pageTables = nullptr;
  const int32_t *tableRows = nullptr;
  const int32_t *lengths = nullptr;
  float *mass = nullptr;
  uint32_t pageTableStride = 0, pageSize = 0;
  uint32_t batch = 0, qHeads = 0, kvHeads = 0;
  uint32_t splits = 0, splitTokens = 0;
};
bool launchAttentionMass(const AttentionMassArgs &args, cudaStream_t stream);

/// Merges the splits' partials into out (SplitReduce.cu) and, given
/// polar's rotation signs, turns each row back from the rotated domain
/// (launchRotateRows' inverse, fused).
bool launchSplitReduce(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t headDim, const uint32_t *inverseSigns,
                       cudaStream_t stream);

/// Merges the splits' partials of latent values into out and maps them
/// back (SplitReduce.cu): the first `codedSplits` of each row hold sums of
/// `rank` latent coordinates, the rest (exact tokens) of headDim values;
/// row r (query head r % qHeads, of KV head r % qHeads / group) gets exact
/// + mu * (the latents' weight) + B * (their sum), `basis` being
/// PagedKvView::valueBasis.
bool launchLatentMerge(const float *partialOut, const float *partialMaxSum,
                       float *out, uint32_t rows, uint32_t splits,
                       uint32_t codedSplits, uint32_t headDim, uint32_t rank,
                       const float *basis, uint32_t qHeads, uint32_t group,
                       cudaStream_t stream);

/// out[r] = R in[r] for `rows` rows of `headDim` floats, R = H D / sqrt(d)
/// with D's signs from `signs` (bit i: D[i][i] = -1), or R^T in[r] when
/// `inverse`; `in` may be `out`. The same operations, in the same order, as
/// the CPU codecs' RandomizedHadamard (RotateRows.cu).
bool launchRotateRows(const float *in, float *out, uint32_t rows,
                      uint32_t headDim, const uint32_t (&signs)[4],
                      bool inverse, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DECODEKERNELS_H
