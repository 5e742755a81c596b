//===- SparseKernels.h - The sparse kernels' parameters ---------*- C++ -*-===//
//
// Internal to the CUDA backend: the sparse kernels' parameters, flattened
// from SparseDecodeArgs and SparseDecodePlan, and one launcher per kernel
// family (BlockSummaries.cu, TwoLevelSelect.cu, SparseAttention.cu).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPARSEKERNELS_H
#define KVRT_BACKENDS_CUDA_SPARSEKERNELS_H

#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/support/HostDevice.h"

#include <cuda_runtime.h>
#include <type_traits>

namespace kvrt::cuda {

/// The instance `pick(G)` returns (a kernel's address, G as
/// std::integral_constant) for group capacity 1, 2, 4 or 8; null for any
/// other.
template <typename Pick>
const void *groupInstance(uint32_t groupCapacity, const Pick &pick) {
  switch (groupCapacity) {
  case 1:
    return reinterpret_cast<const void *>(
        pick(std::integral_constant<int, 1>{}));
  case 2:
    return reinterpret_cast<const void *>(
        pick(std::integral_constant<int, 2>{}));
  case 4:
    return reinterpret_cast<const void *>(
        pick(std::integral_constant<int, 4>{}));
  case 8:
    return reinterpret_cast<const void *>(
        pick(std::integral_constant<int, 8>{}));
  }
  return nullptr;
}

/// The instance `pick(D, G)` returns (D and G as std::integral_constant)
/// for head dimension 64 or 128 and group capacity 1, 2, 4 or 8; null for
/// any other. (The launchers pick the entries' form, GatherEntries.cuh,
/// first.)
template <typename Pick>
const void *kernelInstance(uint32_t headDim, uint32_t groupCapacity,
                           const Pick &pick) {
  auto forHead = [&](auto d) {
    return groupInstance(groupCapacity, [&](auto g) { return pick(d, g); });
  };
  return headDim == 64    ? forHead(std::integral_constant<int, 64>{})
         : headDim == 128 ? forHead(std::integral_constant<int, 128>{})
                          : nullptr;
}

/// Threads of the summary and selection kernels, of level 2's ranking, and
/// of a sparse split.
inline constexpr uint32_t kSummaryThreads = 128;
inline constexpr uint32_t kSelectThreads = 256;
inline constexpr uint32_t kRankThreads = 1024;
inline constexpr uint32_t kSparseSplitThreads = 128;
/// Thread blocks an SM holds of the selection's scoring kernels and of a
/// sparse split at the Llama-3 shape (head dimension 128, groups of 4:
/// about 128 registers a thread), which the plan assumes where the runtime
/// cannot say (boundBlocksPerMultiprocessor() and the others).
inline constexpr uint32_t kSelectBlocksPerMultiprocessor = 2;
inline constexpr uint32_t kSparseSplitBlocksPerMultiprocessor = 4;
/// The most blocks level 1 bounds, and candidates level 2 scores, in one
/// thread block (4 and 8 bytes of dynamic shared memory each).
inline constexpr uint32_t kMaxBoundChunkBlocks = 4096;
inline constexpr uint32_t kMaxScoreChunkSlots = 2048;
/// At most this many listed entries per split (its scores sit in static
/// shared memory).
inline constexpr uint32_t kMaxSplitEntries = 512;
/// The most splits of a row merged in their cluster (a portable cluster:
/// at most 8 blocks).
inline constexpr uint32_t kMaxMergedSplits = 8;

/// The encodings the sparse kernels read: both sides of a cache in one.
enum class SparseEntries : uint8_t {
  Bf16,
  Fp8E4M3,
  Polar2,
  Polar3,
  Polar4,
  Nvfp4
};

/// Level 2's scoring of fp8, polar and nvfp4 keys (TwoLevelSelect.cu): warps of
/// a block, and the bulk copies each warp keeps in flight, one run of up
/// to kRunEntries consecutive candidates each.
inline constexpr uint32_t kRunScoreWarps = 4;
inline constexpr uint32_t kRunScoreStages = 2;
inline constexpr uint32_t kRunEntries = 64;
/// Whether level 2 scores `entries` in runs (else on CUDA cores).
KVRT_HOST_DEVICE inline constexpr bool scoresRuns(SparseEntries entries) {
  return entries != SparseEntries::Bf16;
}
/// A stage: a run of the largest entries of the encoding (fp8: D codes and
/// a 4-byte scale; polar: D * bits / 8 bytes of codes and a 2-byte scale;
/// nvfp4: D / 2 bytes of codes and D / 16 block scales),
/// copied from the 16-byte boundaries around it. Sized per encoding, so
/// that polar's smaller runs leave room for more blocks an SM.
KVRT_HOST_DEVICE inline constexpr uint32_t runStageBytes(SparseEntries entries,
                                                         uint32_t headDim) {
  const uint32_t entryBytes =
      entries == SparseEntries::Polar2   ? headDim / 4 + 2
      : entries == SparseEntries::Polar3 ? headDim * 3 / 8 + 2
      : entries == SparseEntries::Polar4 ? headDim / 2 + 2
      : entries == SparseEntries::Nvfp4  ? headDim / 2 + headDim / 16
                                         : headDim + 4;
  return (kRunEntries * entryBytes + 32 + 15) / 16 * 16;
}

/// Level 2's scoring launch for entries of the form `entries`: threads a
/// block, and dynamic shared memory for chunks of `chunkSlots` candidates.
struct ScoreLaunch {
  uint32_t threads;
  size_t sharedBytes;
};
inline ScoreLaunch scoreLaunch(SparseEntries entries, uint32_t headDim,
                               uint32_t chunkSlots) {
  if (scoresRuns(entries))
    return {kRunScoreWarps * 32, size_t(kRunScoreWarps) * kRunScoreStages *
                                     runStageBytes(entries, headDim)};
  // The CUDA-core kernels list each candidate's (page, slot).
  return {kSelectThreads, size_t(chunkSlots) * 8};
}

/// Where one side's entries and scales sit (DeviceSideLayout's fields),
/// relative to the codes of slot 0 of an area.
struct EntryForm {
  /// Bytes from one slot's codes to the next slot's.
  uint32_t entryBytes;
  /// With slotScales, each slot's scale (fp8: f32, polar: f16) this many
  /// bytes after its codes; otherwise (fp8 per head) the head's scale this
  /// many bytes from slot 0's codes (negative: it leads the area).
  int32_t scaleOffset;
  bool slotScales;
  /// polar: DeviceSideLayout::levels; nvfp4: the 16 E2M1 values.
  float levels[16];
  /// nvfp4: the artifact's per-tensor scale.
  float tensorScale;
};

struct SparseKernelParams {
  SparseEntries entries;
  EntryForm keyForm, valueForm;
  /// Slot 0's codes of KV head 0's key (value) area of page 0; page p's
  /// head h at p * pageStride + h * areaStride bytes from there.
  const uint8_t *keys;
  const uint8_t *values;
  uint64_t keyAreaStride, keyPageStride;
  uint64_t valueAreaStride, valuePageStride;
  /// An offloaded layer (SparseDecodeArgs::resident): its pages' device
  /// slots and the slots' key and value areas; null otherwise.
  const int32_t *slotOf;
  const uint8_t *slotKeys;
  const uint8_t *slotValues;
  const int32_t *positions;
  const int32_t *pageTables;
  /// Row b's tokens, its own included; where the cache keeps its most
  /// recent ones exact, those before them (SparseDecodeArgs::codedLengths):
  /// the selection ranks the codes older than the window, and the summary
  /// each step adds is of the token the window lets go.
  const int32_t *lengths;
  BlockSummaries summaries;
  uint32_t pageTableStride;
  uint32_t pageSize;
  uint32_t kvHeads;
  uint32_t qHeads;
  uint32_t group;
  uint32_t block;
  uint32_t blocksPerPage;
  uint32_t topBlocks;
  uint32_t topTokens;
  uint32_t maxBlocks;
  uint32_t maxCandidates;
  uint32_t boundChunkBlocks;
  uint32_t scoreChunkSlots;
  uint32_t splitEntries;
  uint32_t splits;
  /// The queries as the kernels read them: for polar keys rotated into
  /// their domain (SparseDecodePlan::rotatedQueriesOffset), else
  /// SparseDecodeArgs::q.
  const float *q;
  /// Polar keys: SparseDecodeArgs::q, and where level 1 leaves them rotated
  /// (q), by D's signs querySigns (RotateRows.cuh); null otherwise.
  const float *queries;
  float *rotatedQueries;
  uint32_t querySigns[4];
  const int32_t *queryPositions;
  float *out;
  /// Polar values: the output is turned back from their domain, by D's
  /// signs outputSigns (RotateRows.cuh), where the splits merge in their
  /// cluster (else by the merge launch).
  bool rotatesOutput;
  uint32_t outputSigns[4];
  /// SparseDecodePlan::mergesInCluster.
  bool mergesInCluster;
  /// scale * log2(e): attention uses exp2.
  float scaleLog2;
  int32_t slidingWindow;
  /// A cache that keeps tokens exact beside their codes (ExactTokens.h):
  /// a listed entry below exactSinks is read exact, and each row's own
  /// token too, both by the last exactSplits of its splits
  /// (ExactAttention.cu), not by the sparse splits. 0 otherwise.
  uint32_t exactSinks;
  uint32_t exactSplits;
  /// The workspace (SparseDecodePlan's offsets): the selection,
  /// [r][group][maxBlocks] bounds, [r][group][maxCandidates] scores, the
  /// splits' partials as SplitReduce.cu reads them.
  SparseSelection selection;
  /// SparseDecodeArgs::hostBlockCounts and hostBlocks.
  uint32_t *hostBlockCounts;
  int32_t *hostBlocks;
  /// SparseDecodeArgs::hostSignal and signalEnd.
  uint32_t *hostSignal;
  uint32_t signalEnd;
  float *bounds;
  float *scores;
  float *partialOut;
  float *partialMaxSum;
};

/// BlockSummaries.cu: every listed page (blockIdx.x) and KV head.
bool launchBuildSummaries(const SparseKernelParams &p, uint32_t headDim,
                          const int32_t *pages, const int32_t *slots,
                          uint32_t count, cudaStream_t stream);

/// TwoLevelSelect.cu: levels 1 and 2, grids (chunks, kvHeads, batch);
/// level 2 then ranks in a second launch, grid (kvHeads, batch).
bool launchSelectBlocks(const SparseKernelParams &p, uint32_t headDim,
                        uint32_t groupCapacity, uint32_t chunks, uint32_t batch,
                        size_t boundSharedBytes, size_t rankSharedBytes,
                        cudaStream_t stream);
bool launchSelectEntries(const SparseKernelParams &p, uint32_t headDim,
                         uint32_t groupCapacity, uint32_t chunks,
                         uint32_t batch, const ScoreLaunch &score,
                         size_t rankSharedBytes, cudaStream_t stream);

/// SparseAttention.cu: grid (1 + splits - exactSplits, kvHeads, batch):
/// each row's newest block's summary, then the splits over its list; or,
/// where they merge in clusters, (splits, kvHeads, batch) in clusters of a
/// row's splits.
bool launchSparseSplits(const SparseKernelParams &p, uint32_t headDim,
                        uint32_t groupCapacity, uint32_t batch,
                        cudaStream_t stream);

/// Thread blocks an SM holds of `kernel` with `threads` threads and
/// `sharedBytes` of dynamic shared memory, asked of the runtime once per
/// kernel (the plans ask at every step); 0 where it cannot tell.
uint32_t blocksPerMultiprocessor(const void *kernel, uint32_t threads,
                                 size_t sharedBytes);
/// A launch of `grid` blocks of `threads` threads on `stream` in clusters
/// of `width` along x, the cluster's shape in `attribute`: what a
/// clustered launch and the occupancy it is planned by both describe.
inline cudaLaunchConfig_t clusterLaunch(dim3 grid, uint32_t threads,
                                        uint32_t width, cudaStream_t stream,
                                        cudaLaunchAttribute &attribute) {
  attribute = {};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim = {width, 1, 1};
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = dim3(threads);
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return config;
}
/// Clusters of `width` blocks (along x) of `kernel`, with `threads`
/// threads and no dynamic shared memory, the device holds at once; asked
/// once per kernel and width, 0 where the runtime cannot tell.
uint32_t clustersAtOnce(const void *kernel, uint32_t threads, uint32_t width);

/// blocksPerMultiprocessor() of the instances for these entries: level
/// 1's bounds and level 2's scores (TwoLevelSelect.cu), and the splits
/// (SparseAttention.cu).
uint32_t boundBlocksPerMultiprocessor(uint32_t headDim, uint32_t groupCapacity);
uint32_t scoreBlocksPerMultiprocessor(SparseEntries entries, uint32_t headDim,
                                      uint32_t groupCapacity);
uint32_t sparseSplitBlocksPerMultiprocessor(SparseEntries entries,
                                            uint32_t headDim,
                                            uint32_t groupCapacity);
/// Clusters of `width` sparse split blocks the device holds at once (0
/// where the runtime cannot tell).
uint32_t sparseSplitClustersAtOnce(SparseEntries entries, uint32_t headDim,
                                   uint32_t groupCapacity, uint32_t width);
/// Lets `kernel` take `sharedBytes` of dynamic shared memory: past 48 KB
/// together with its static arrays a kernel must ask. False where the
/// device refuses.
bool allowDynamicShared(const void *kernel, size_t sharedBytes);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPARSEKERNELS_H
