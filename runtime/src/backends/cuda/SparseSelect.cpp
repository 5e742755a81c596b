//===- SparseSelect.cpp - Planning and launching sparse decode ------------===//
//
// Every launch parameter of SparseSelect.h is chosen here. The selection
// kernels cut each row's items into chunks, and the attention each row's
// list into splits, so that the batch fills the SMs in one wave of the
// thread blocks each SM holds (SparseKernels.h): a long row's summaries
// and candidate keys are read by many SMs at once, and no second wave of a
// few blocks doubles the time. (Aiming at more blocks than fit, four and
// eight an SM where two and four fit, took 182 us for a B = 8, L = 128K
// fp8 step on an H100 against 173 in one wave, 2026-12-06.) Chunks of at
// least 64 blocks or 128 entries keep a block's fixed costs small; splits
// take multiples of 64 entries up to kMaxSplitEntries.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/SparseKernels.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

namespace kvrt::cuda {
namespace {

/// Dynamic shared memory a ranking kernel may take beside its static
/// arrays (about 2.2 KB).
constexpr size_t kMaxDynamicSharedBytes = 220 * 1024;

uint32_t ceilDiv(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }
uint32_t roundUp(uint32_t a, uint32_t b) { return ceilDiv(a, b) * b; }
size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

Status checkCache(uint32_t headDim, uint32_t pageSize, uint32_t block,
                  const DeviceSideLayout &key, const DeviceSideLayout &value) {
  if (headDim != 64 && headDim != 128)
    return Status::error("sparse attention on CUDA takes head dimensions 64 "
                         "and 128, not " +
                         std::to_string(headDim));
  using Kind = DeviceSideLayout::Kind;
  const bool polar = key.kind == Kind::Polar && key.bits >= 2 &&
                     key.bits <= 4 && value.bits == key.bits;
  if (key.kind != value.kind ||
      (key.kind != Kind::Bf16 && key.kind != Kind::Fp8E4M3 &&
       key.kind != Kind::Nvfp4 && !polar))
    return Status::error("sparse attention on CUDA reads caches whose keys "
                         "and values are both bf16, both fp8 e4m3, both "
                         "nvfp4 or both polar of 2, 3 or 4 bits alike");
  for (const DeviceSideLayout *side : {&key, &value}) {
    // The gathers' widest loads: 16 bytes of bf16, 4 of fp8 or nvfp4
    // codes, 2 of polar codes.
    const uint32_t alignment =
        side->kind == Kind::Bf16                                   ? 16
        : side->kind == Kind::Fp8E4M3 || side->kind == Kind::Nvfp4 ? 4
                                                                   : 2;
    const uint32_t bytes =
        side->kind == Kind::Bf16      ? 2 * headDim
        : side->kind == Kind::Fp8E4M3 ? headDim + (side->slotScales ? 4 : 0)
        : side->kind == Kind::Nvfp4   ? headDim / 2 + headDim / 16
                                      : headDim * side->bits / 8 + 2;
    if (side->entryBytes != bytes || side->codesOffset % alignment ||
        side->entryBytes % alignment || side->areaStride % 16)
      return Status::error("sparse attention on CUDA needs entries of 2 "
                           "bytes a channel (bf16), 1 and a 4-byte scale "
                           "(fp8), 4 bits and a scale byte a 16 (nvfp4) or "
                           "2 to 4 bits and a 2-byte scale (polar), aligned "
                           "to their loads");
  }
  if (block == 0 || pageSize % block)
    return Status::error(
        "sparse selection's block of " + std::to_string(block) +
        " entries must divide the page size " + std::to_string(pageSize));
  return Status::ok();
}

EntryForm entryForm(const DeviceSideLayout &side) {
  EntryForm form = {};
  form.entryBytes = side.entryBytes;
  // A head's scale leads its area, before slot 0's codes.
  form.scaleOffset =
      side.slotScales ? int32_t(side.scaleOffset)
                      : int32_t(side.scaleOffset) - int32_t(side.codesOffset);
  form.slotScales = side.slotScales;
  std::copy(std::begin(side.levels), std::end(side.levels), form.levels);
  if (side.kind == DeviceSideLayout::Kind::Nvfp4) {
    // E2M1: sign, two exponent bits, one mantissa bit.
    constexpr float kMagnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f,
                                      2.0f, 3.0f, 4.0f, 6.0f};
    for (int code = 0; code < 16; ++code)
      form.levels[code] = code & 8 ? -kMagnitudes[code & 7] : kMagnitudes[code];
    form.tensorScale = side.tensorScale;
  }
  return form;
}

/// The form the sparse kernels read entries of (checkCache() passed).
SparseEntries sparseEntries(const DeviceSideLayout &key) {
  switch (key.kind) {
  case DeviceSideLayout::Kind::Fp8E4M3:
    return SparseEntries::Fp8E4M3;
  case DeviceSideLayout::Kind::Polar:
    return key.bits == 2   ? SparseEntries::Polar2
           : key.bits == 3 ? SparseEntries::Polar3
                           : SparseEntries::Polar4;
  case DeviceSideLayout::Kind::Nvfp4:
    return SparseEntries::Nvfp4;
  default:
    return SparseEntries::Bf16;
  }
}

bool rotates(const PagedKvView &cache) {
  return cache.key.kind == DeviceSideLayout::Kind::Polar;
}

/// Where polar keys' rotated queries sit in the workspace.
float *rotatedQueries(const SparseDecodeArgs &args,
                      const SparseDecodePlan &plan) {
  return reinterpret_cast<float *>(static_cast<uint8_t *>(args.workspace) +
                                   plan.rotatedQueriesOffset);
}

/// The parameters every sparse kernel reads of the cache.
SparseKernelParams cacheParams(const PagedKvView &cache,
                               const BlockSummaries &summaries,
                               uint32_t block) {
  SparseKernelParams p = {};
  p.entries = sparseEntries(cache.key);
  p.keyForm = entryForm(cache.key);
  p.valueForm = entryForm(cache.value);
  p.keys = cache.keys + cache.key.codesOffset;
  p.values = cache.values + cache.value.codesOffset;
  p.keyAreaStride = cache.key.areaStride;
  p.keyPageStride = cache.key.areaStride * cache.kvHeads;
  p.valueAreaStride = cache.value.areaStride;
  p.valuePageStride = cache.value.areaStride * cache.kvHeads;
  p.positions = cache.positions;
  p.pageTables = cache.pageTables;
  p.lengths = cache.lengths;
  p.summaries = summaries;
  p.pageTableStride = cache.pageTableStride;
  p.pageSize = cache.pageSize;
  p.kvHeads = cache.kvHeads;
  p.block = block;
  p.blocksPerPage = block ? cache.pageSize / block : 0;
  return p;
}

/// An offloaded layer's device slots, where `resident` has them.
void addResident(SparseKernelParams &p, const PagedKvView &cache,
                 const ResidentPages &resident) {
  if (!resident.slotOf)
    return;
  p.slotOf = resident.slotOf;
  p.slotKeys = resident.keys + cache.key.codesOffset;
  p.slotValues = resident.values + cache.value.codesOffset;
}

StatusOr<SparseKernelParams> decodeParams(const SparseDecodeArgs &args,
                                          const SparseDecodePlan &plan) {
  const PagedKvView &cache = args.cache;
  KVRT_RETURN_IF_ERROR(checkCache(cache.headDim, cache.pageSize,
                                  plan.policy.block, cache.key, cache.value));
  if (cache.tableRows)
    return Status::error("sparse attention on CUDA serves decode rows, one "
                         "page table each");
  if (!args.workspace)
    return Status::error("sparse attention on CUDA needs a workspace of " +
                         std::to_string(plan.workspaceBytes) + " bytes");
  SparseKernelParams p = cacheParams(cache, args.summaries, plan.policy.block);
  addResident(p, cache, args.resident);
  p.hostBlockCounts = args.hostBlockCounts;
  p.hostBlocks = args.hostBlocks;
  p.hostSignal = args.hostSignal;
  p.signalEnd = args.signalEnd;
  p.qHeads = args.qHeads;
  p.group = args.qHeads / cache.kvHeads;
  p.topBlocks = plan.policy.topBlocks;
  p.topTokens = plan.policy.topTokens;
  p.maxBlocks = plan.maxBlocks;
  p.maxCandidates = plan.maxCandidates;
  p.boundChunkBlocks = plan.boundChunkBlocks;
  p.scoreChunkSlots = plan.scoreChunkSlots;
  p.splitEntries = plan.splitEntries;
  p.splits = plan.splits;
  p.mergesInCluster = plan.mergesInCluster;
  p.rotatesOutput = rotates(cache);
  if (p.rotatesOutput)
    std::copy(cache.value.rotationSigns, cache.value.rotationSigns + 4,
              p.outputSigns);
  p.q = args.q;
  p.queryPositions = args.queryPositions;
  p.out = args.out;
  p.scaleLog2 = args.scale * 1.4426950408889634f;
  p.slidingWindow = args.slidingWindow;
  const ExactTokensView &exact = cache.exact;
  if (exact.active() != (plan.exactSplits > 0))
    return Status::error(std::string("sparse attention on CUDA was planned "
                                     "for a cache ") +
                         (plan.exactSplits ? "with" : "without") +
                         " exact tokens and given one " +
                         (exact.active() ? "with" : "without"));
  if (exact.active()) {
    if (exact.flushGroup != 1)
      return Status::error("sparse attention on CUDA reads exact tokens "
                           "kept one at a time, not in groups");
    if (exact.recent && !args.codedLengths)
      return Status::error("sparse attention on CUDA over a cache that keeps "
                           "its newest tokens exact was given no lengths of "
                           "its coded tokens");
    if (exact.recent)
      p.lengths = args.codedLengths;
    p.exactSinks = exact.sinks;
    p.exactSplits = plan.exactSplits;
  }
  uint8_t *base = static_cast<uint8_t *>(args.workspace);
  if (rotates(cache)) {
    p.queries = args.q;
    p.rotatedQueries = rotatedQueries(args, plan);
    p.q = p.rotatedQueries;
    std::copy(cache.key.rotationSigns, cache.key.rotationSigns + 4,
              p.querySigns);
  }
  p.selection = sparseSelection(args.workspace, plan);
  p.bounds = reinterpret_cast<float *>(base + plan.boundsOffset);
  p.scores = reinterpret_cast<float *>(base + plan.scoresOffset);
  p.partialOut = reinterpret_cast<float *>(base + plan.partialsOffset);
  p.partialMaxSum = p.partialOut + size_t(args.batch) * args.qHeads *
                                       plan.splits * cache.headDim;
  return p;
}

Status launched(bool ok, const char *what) {
  const cudaError_t error = cudaGetLastError();
  if (ok && error == cudaSuccess)
    return Status::ok();
  return Status::error(std::string(what) +
                       "'s launch failed: " + cudaGetErrorString(error));
}

} // namespace

Status buildBlockSummaries(const PagedKvView &cache,
                           const BlockSummaries &summaries, uint32_t block,
                           const int32_t *pages, const int32_t *slots,
                           uint32_t count, cudaStream_t stream) {
  KVRT_RETURN_IF_ERROR(
      checkCache(cache.headDim, cache.pageSize, block, cache.key, cache.value));
  return launched(launchBuildSummaries(cacheParams(cache, summaries, block),
                                       cache.headDim, pages, slots, count,
                                       stream),
                  "building block summaries");
}

bool allowDynamicShared(const void *kernel, size_t sharedBytes) {
  // Asked even where the dynamic bytes alone stay under 48 KB (the static
  // arrays count too), but once per kernel and larger size: the launches
  // come every decode step.
  struct Allowed {
    const void *kernel;
    size_t sharedBytes;
  };
  static std::mutex mutex;
  static std::vector<Allowed> allowed;
  if (sharedBytes == 0)
    return true;
  std::lock_guard<std::mutex> lock(mutex);
  auto known =
      std::find_if(allowed.begin(), allowed.end(),
                   [&](const Allowed &a) { return a.kernel == kernel; });
  if (known != allowed.end() && known->sharedBytes >= sharedBytes)
    return true;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(sharedBytes)) != cudaSuccess)
    return false;
  if (known != allowed.end())
    known->sharedBytes = sharedBytes;
  else
    allowed.push_back({kernel, sharedBytes});
  return true;
}

namespace {

/// What `ask(answer)` says of `kernel` with `threads` threads, `sharedBytes`
/// of dynamic shared memory and clusters `width` wide, asked once: the
/// plans ask at every step. 0, not remembered, where it fails (no device).
template <typename Ask>
uint32_t askedOnce(const void *kernel, uint32_t threads, size_t sharedBytes,
                   uint32_t width, const Ask &ask) {
  struct Asked {
    const void *kernel;
    uint32_t threads;
    size_t sharedBytes;
    uint32_t width;
    uint32_t answer;
  };
  static std::mutex mutex;
  static std::vector<Asked> asked;
  if (!kernel)
    return 0;
  std::lock_guard<std::mutex> lock(mutex);
  for (const Asked &a : asked)
    if (a.kernel == kernel && a.threads == threads &&
        a.sharedBytes == sharedBytes && a.width == width)
      return a.answer;
  int answer = 0;
  if (!allowDynamicShared(kernel, sharedBytes) || !ask(answer)) {
    cudaGetLastError(); // No device: nothing to remember.
    return 0;
  }
  asked.push_back({kernel, threads, sharedBytes, width, uint32_t(answer)});
  return uint32_t(answer);
}

} // namespace

uint32_t blocksPerMultiprocessor(const void *kernel, uint32_t threads,
                                 size_t sharedBytes) {
  return askedOnce(kernel, threads, sharedBytes, 1, [&](int &blocks) {
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
               &blocks, kernel, int(threads), sharedBytes) == cudaSuccess;
  });
}

uint32_t clustersAtOnce(const void *kernel, uint32_t threads, uint32_t width) {
  return askedOnce(kernel, threads, 0, width, [&](int &clusters) {
    cudaLaunchAttribute attribute;
    const cudaLaunchConfig_t config =
        clusterLaunch(dim3(width), threads, width, nullptr, attribute);
    return cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) ==
           cudaSuccess;
  });
}

StatusOr<SparseDecodePlan> planSparseDecode(const SparseDecodeShape &shape,
                                            uint32_t multiprocessors) {
  const SparsePolicy &policy = shape.policy;
  KVRT_RETURN_IF_ERROR(checkCache(shape.headDim, shape.pageSize, policy.block,
                                  shape.key, shape.value));
  if (!shape.kvHeads || !shape.qHeads || shape.qHeads % shape.kvHeads ||
      shape.qHeads / shape.kvHeads > 8)
    return Status::error("sparse attention on CUDA needs query heads that "
                         "are 1 to 8 times the KV heads, not " +
                         std::to_string(shape.qHeads) + " for " +
                         std::to_string(shape.kvHeads));
  if (!policy.topBlocks || !policy.topTokens || policy.topTokens > 65536)
    return Status::error("sparse selection keeps 1 to 65536 entries in at "
                         "least one block, not " +
                         std::to_string(policy.topTokens) + " in " +
                         std::to_string(policy.topBlocks));

  SparseDecodePlan plan;
  plan.policy = policy;
  const uint32_t group = shape.qHeads / shape.kvHeads;
  plan.groupCapacity = group <= 2 ? group : group <= 4 ? 4 : 8;
  const uint32_t selectable = shape.maxLength ? shape.maxLength - 1 : 0;
  plan.maxBlocks = std::max(1u, ceilDiv(selectable, policy.block));
  plan.maxCandidates =
      uint32_t(std::min<uint64_t>(uint64_t(policy.topBlocks) * policy.block,
                                  uint64_t(plan.maxBlocks) * policy.block));

  // Thread blocks per row that fit one wave (at least one), from what an
  // SM holds of the instances the launches take (the Llama-3 shape's
  // where the runtime cannot tell: no device).
  const SparseEntries entries = sparseEntries(shape.key);
  const uint32_t rows = std::max(1u, shape.batch * shape.kvHeads);
  auto perRowInOneWave = [&](uint32_t held, uint32_t assumed) {
    return std::max(1u, (held ? held : assumed) * multiprocessors / rows);
  };
  const uint32_t boundsPerRow = perRowInOneWave(
      boundBlocksPerMultiprocessor(shape.headDim, plan.groupCapacity),
      kSelectBlocksPerMultiprocessor);
  const uint32_t scoresPerRow = perRowInOneWave(
      scoreBlocksPerMultiprocessor(entries, shape.headDim, plan.groupCapacity),
      kSelectBlocksPerMultiprocessor);
  plan.boundChunkBlocks =
      std::clamp(roundUp(ceilDiv(plan.maxBlocks, boundsPerRow), 64), 64u,
                 kMaxBoundChunkBlocks);
  plan.boundChunks = ceilDiv(plan.maxBlocks, plan.boundChunkBlocks);
  // Chunks of whole runs (kRunEntries), not of 128: at B = 8, L = 128K
  // polar-3's 8192 candidates a row make 12 chunks of 704 (768 blocks of
  // the 792 one wave holds) instead of 11 of 768 (704 blocks, 6 on a
  // third of the SMs and 5 on the rest).
  plan.scoreChunkSlots = std::clamp(
      roundUp(ceilDiv(plan.maxCandidates, scoresPerRow), kRunEntries), 128u,
      kMaxScoreChunkSlots);
  plan.scoreChunks = ceilDiv(plan.maxCandidates, plan.scoreChunkSlots);

  // The list and the newest token, which the exact splits read where the
  // cache keeps tokens exact.
  plan.exactSplits =
      shape.exactTokens ? ceilDiv(shape.exactTokens + 1, kExactTileTokens) : 0;
  const uint32_t listed = policy.topTokens + (plan.exactSplits ? 0 : 1);
  // The attention's blocks of a row: its newest block's summary, then the
  // splits.
  const uint32_t splitsPerRow = std::max(
      1u, perRowInOneWave(sparseSplitBlocksPerMultiprocessor(
                              entries, shape.headDim, plan.groupCapacity),
                          kSparseSplitBlocksPerMultiprocessor) -
              1);
  plan.splitEntries = std::clamp(roundUp(ceilDiv(listed, splitsPerRow), 64),
                                 64u, kMaxSplitEntries);
  plan.splits = ceilDiv(listed, plan.splitEntries) + plan.exactSplits;
  // Where a row's blocks fit one cluster and every row's cluster fits at
  // once (the one wave the splits are sized for), they merge among
  // themselves (the exact splits are a launch of their own).
  plan.mergesInCluster =
      !plan.exactSplits && plan.splits > 1 && plan.splits <= kMaxMergedSplits &&
      sparseSplitClustersAtOnce(entries, shape.headDim, plan.groupCapacity,
                                plan.splits) >= rows;

  plan.boundSharedBytes = size_t(plan.boundChunkBlocks) * 4;
  plan.blockRankSharedBytes = size_t(plan.maxBlocks) * 4;
  const ScoreLaunch score =
      scoreLaunch(entries, shape.headDim, plan.scoreChunkSlots);
  plan.scoreThreads = score.threads;
  plan.scoreSharedBytes = score.sharedBytes;
  // The keys, then the kept blocks.
  plan.entryRankSharedBytes =
      (size_t(plan.maxCandidates) + plan.policy.topBlocks) * 4;
  if (std::max(plan.blockRankSharedBytes, plan.entryRankSharedBytes) >
      kMaxDynamicSharedBytes)
    return Status::error(
        "sparse selection on CUDA ranks at most " +
        std::to_string(kMaxDynamicSharedBytes / 4) +
        " blocks, or candidates and their blocks, per row, not " +
        std::to_string(
            std::max(plan.maxBlocks, plan.maxCandidates + policy.topBlocks)));

  const size_t queries = size_t(shape.batch) * shape.qHeads;
  size_t at = 0;
  auto take = [&](size_t &offset, size_t bytes) {
    offset = at;
    at += aligned(bytes);
  };
  take(plan.blockCountsOffset, size_t(rows) * 4);
  take(plan.blocksOffset, size_t(rows) * policy.topBlocks * 4);
  take(plan.entryCountsOffset, size_t(rows) * 4);
  take(plan.entriesOffset, size_t(rows) * policy.topTokens * 4);
  take(plan.scoredOffset, size_t(rows) * 4);
  take(plan.candidatesOffset, size_t(rows) * policy.topTokens * 4);
  take(plan.boundsOffset, size_t(rows) * group * plan.maxBlocks * 4);
  take(plan.scoresOffset, size_t(rows) * group * plan.maxCandidates * 4);
  take(plan.partialsOffset,
       plan.splits > 1 && !plan.mergesInCluster
           ? queries * plan.splits * (shape.headDim + 2) * 4
           : 0);
  take(plan.rotatedQueriesOffset,
       shape.key.kind == DeviceSideLayout::Kind::Polar
           ? queries * shape.headDim * 4
           : 0);
  plan.workspaceBytes = at;
  return plan;
}

SparseSelection sparseSelection(void *workspace, const SparseDecodePlan &plan) {
  uint8_t *base = static_cast<uint8_t *>(workspace);
  SparseSelection s;
  s.blockCounts = reinterpret_cast<uint32_t *>(base + plan.blockCountsOffset);
  s.blocks = reinterpret_cast<int32_t *>(base + plan.blocksOffset);
  s.entryCounts = reinterpret_cast<uint32_t *>(base + plan.entryCountsOffset);
  s.entries = reinterpret_cast<int32_t *>(base + plan.entriesOffset);
  s.scored = reinterpret_cast<uint32_t *>(base + plan.scoredOffset);
  s.candidates = reinterpret_cast<int32_t *>(base + plan.candidatesOffset);
  return s;
}

Status selectSparseBlocks(const SparseDecodeArgs &args,
                          const SparseDecodePlan &plan, cudaStream_t stream) {
  StatusOr<SparseKernelParams> p = decodeParams(args, plan);
  if (!p)
    return p.status();
  return launched(launchSelectBlocks(*p, args.cache.headDim, plan.groupCapacity,
                                     plan.boundChunks, args.batch,
                                     plan.boundSharedBytes,
                                     plan.blockRankSharedBytes, stream),
                  "sparse selection of blocks");
}

Status selectSparseTokens(const SparseDecodeArgs &args,
                          const SparseDecodePlan &plan, cudaStream_t stream) {
  StatusOr<SparseKernelParams> p = decodeParams(args, plan);
  if (!p)
    return p.status();
  return launched(
      launchSelectEntries(*p, args.cache.headDim, plan.groupCapacity,
                          plan.scoreChunks, args.batch,
                          {plan.scoreThreads, plan.scoreSharedBytes},
                          plan.entryRankSharedBytes, stream),
      "sparse selection of entries");
}

Status selectSparseEntries(const SparseDecodeArgs &args,
                           const SparseDecodePlan &plan, cudaStream_t stream) {
  KVRT_RETURN_IF_ERROR(selectSparseBlocks(args, plan, stream));
  return selectSparseTokens(args, plan, stream);
}

Status sparseAttention(const SparseDecodeArgs &args,
                       const SparseDecodePlan &plan, cudaStream_t stream) {
  StatusOr<SparseKernelParams> p = decodeParams(args, plan);
  if (!p)
    return p.status();
  const uint32_t headDim = args.cache.headDim;
  // Polar values are summed in their rotated domain: the output is rotated
  // back, by the splits merging in their clusters, by the merge or alone.
  const uint32_t *inverseSigns =
      rotates(args.cache) ? args.cache.value.rotationSigns : nullptr;
  const uint32_t rows = args.batch * args.qHeads;
  // The exact splits read the selection (which sinks it lists), the
  // queries as they are and the exact tokens: forked once both levels
  // have run, joined before the merge.
  const SideStream &side = args.exactSide;
  const bool exact = plan.exactSplits > 0, forks = exact && side.stream;
  if (forks && (cudaEventRecord(side.fork, stream) != cudaSuccess ||
                cudaStreamWaitEvent(side.stream, side.fork, 0) != cudaSuccess))
    return launched(false, "the fork to the exact tokens' stream");
  if (exact &&
      !launchExactAttention(args.cache, args.q, args.queryPositions, args.batch,
                            args.qHeads, p->scaleLog2, args.slidingWindow,
                            p->partialOut, p->partialMaxSum, plan.splits,
                            plan.exactSplits, inverseSigns,
                            {p->selection.entryCounts, p->selection.entries,
                             plan.policy.topTokens},
                            forks ? side.stream : stream))
    return launched(false, "sparse attention's exact tokens");
  if (forks && cudaEventRecord(side.join, side.stream) != cudaSuccess)
    return launched(false, "the join of the exact tokens' stream");
  bool ok =
      launchSparseSplits(*p, headDim, plan.groupCapacity, args.batch, stream);
  if (ok && forks)
    ok = cudaStreamWaitEvent(stream, side.join, 0) == cudaSuccess;
  if (ok && !plan.mergesInCluster && plan.splits > 1)
    ok = launchSplitReduce(p->partialOut, p->partialMaxSum, args.out, rows,
                           plan.splits, headDim, inverseSigns, stream);
  else if (ok && !plan.mergesInCluster && inverseSigns)
    ok = launchRotateRows(args.out, args.out, rows, headDim,
                          args.cache.value.rotationSigns, true, stream);
  return launched(ok, "sparse attention");
}

} // namespace kvrt::cuda
