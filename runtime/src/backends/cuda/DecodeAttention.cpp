//===- DecodeAttention.cpp - Planning and launching decode attention ------===//
//
// Every launch parameter is chosen here. Splits: about eight blocks per SM
// in all (two waves at four resident blocks), each split a whole number of
// the kernel's tiles, at least 128 tokens (so a block's fixed costs stay
// small against its loads) and at most 4096 / groupCapacity (its scores
// take at most 16 KB of shared memory).
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/LatentKeyOperands.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace kvrt::cuda {
namespace {

constexpr uint32_t kMinSplitTokens = 128;
constexpr uint32_t kGroupMinSplitTokens = 256;
constexpr uint32_t kBlocksPerMultiprocessor = 8;
constexpr uint32_t kGroupBlocksPerMultiprocessor = 4;
constexpr uint32_t kMaxSharedBytes = 227 * 1024;

uint32_t ceilDiv(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }

/// 16-byte chunks that copy `tokens` consecutive slots of `side`, from the
/// 16-byte boundary at or before the first slot's codes.
uint32_t segmentChunks(const DeviceSideLayout &side, uint32_t tokens) {
  return ceilDiv(side.codesOffset % 16 + uint64_t(tokens) * side.entryBytes,
                 16);
}

/// Where the split kernel's shared memory holds what: the pipeline stages
/// (reused for the CUDA-core kernel's final sums), the split's scores, its
/// page indices, per-head maxima and sums (8 each), latent keys' operands,
/// then the stages' barriers.
struct SharedLayout {
  uint32_t logitsOffset = 0;
  uint32_t logitsStride = 0;
  uint32_t pageSlots = 0;
  uint32_t keyOperandOffset = 0;
  uint32_t barrierOffset = 0;
  uint32_t bytes = 0;
};

/// Whether GroupMma folds each head's hi and lo halves into one MMA.
bool foldedGroup(const DecodeAttentionPlan &plan) {
  return plan.groupCapacity <= kFoldedGroup;
}

SharedLayout sharedLayout(const DecodeAttentionPlan &plan, uint32_t headDim,
                          uint32_t pageSize) {
  SharedLayout layout;
  layout.logitsOffset =
      std::max<uint32_t>(plan.stages * plan.stageBytes,
                         kBlockThreads / 32 * plan.groupCapacity * headDim * 4);
  // GroupMma's lanes store head 2t (or 2t + 1) of tokens g, or when
  // folded head t: a stride of 4 (or 8) banks modulo 32 puts the warp's 32
  // stores in 32 banks.
  layout.logitsStride =
      plan.splitTokens +
      (plan.kernel == SplitKernel::GroupMma && !foldedGroup(plan) ? 4 : 8);
  layout.pageSlots = ceilDiv(plan.splitTokens, pageSize) + 1;
  uint32_t end = layout.logitsOffset +
                 plan.groupCapacity * layout.logitsStride * 4 +
                 layout.pageSlots * 4 + 2 * 8 * 4;
  layout.keyOperandOffset = (end + 15) / 16 * 16;
  end = layout.keyOperandOffset + plan.keyOperandBytes;
  layout.barrierOffset = (end + 7) / 8 * 8;
  layout.bytes = layout.barrierOffset + 2 * kMaxStages * 8;
  return layout;
}

uint32_t expectedEntryBytes(const DeviceSideLayout &side, uint32_t headDim) {
  switch (side.kind) {
  case DeviceSideLayout::Kind::Bf16:
    return 2 * headDim;
  case DeviceSideLayout::Kind::Fp8E4M3:
    return headDim + (side.slotScales ? 4 : 0);
  case DeviceSideLayout::Kind::Polar:
    return headDim * side.bits / 8 + 2;
  case DeviceSideLayout::Kind::Nvfp4:
    return headDim / 2 + headDim / 16;
  case DeviceSideLayout::Kind::Kivi:
    return side.group ? headDim * side.bits / 8 + 4 * headDim / side.group : 0;
  case DeviceSideLayout::Kind::Latent:
  case DeviceSideLayout::Kind::LatentKey:
    return 2 * side.rank;
  }
  return 0;
}

Status checkSide(const DeviceSideLayout &side, const char *name,
                 const DecodeAttentionShape &shape) {
  const std::string what = std::string("decode attention's ") + name;
  const uint32_t expected = expectedEntryBytes(side, shape.headDim);
  if (side.entryBytes != expected)
    return Status::error(what + " entries take " +
                         std::to_string(side.entryBytes) + " bytes, not the " +
                         std::to_string(expected) + " of their encoding");
  // GroupMma reads an entry's own scale at a constant offset (its
  // fragments' kScaleOffset): right after the codes.
  const bool ownScale =
      side.kind == DeviceSideLayout::Kind::Polar ||
      (side.kind == DeviceSideLayout::Kind::Fp8E4M3 && side.slotScales);
  const uint32_t codeBytes = side.kind == DeviceSideLayout::Kind::Polar
                                 ? shape.headDim * side.bits / 8
                                 : shape.headDim;
  if (ownScale && side.scaleOffset != codeBytes)
    return Status::error(what + " entries keep their scale at byte " +
                         std::to_string(side.scaleOffset) + ", not at " +
                         std::to_string(codeBytes) + " after the codes");
  if (side.areaStride % 16 || side.areaStride < side.headBytes ||
      side.codesOffset + uint64_t(shape.pageSize) * side.entryBytes >
          side.headBytes)
    return Status::error(what + " areas do not hold a page of entries at "
                                "16-byte aligned strides");
  if (side.kind == DeviceSideLayout::Kind::Bf16 && side.codesOffset % 16)
    return Status::error(what + " bf16 entries must start 16-byte aligned");
  if ((side.kind == DeviceSideLayout::Kind::Latent ||
       side.kind == DeviceSideLayout::Kind::LatentKey) &&
      (side.rank == 0 || side.rank >= shape.headDim || side.codesOffset))
    return Status::error(
        what + " latents must have 1 to " + std::to_string(shape.headDim - 1) +
        " coordinates from the area's start, not " + std::to_string(side.rank));
  if (side.kind == DeviceSideLayout::Kind::Polar &&
      (side.bits < 2 || side.bits > 4 || side.codesOffset || !side.slotScales))
    return Status::error(what + " polar entries must be 2, 3 or 4 bits of "
                                "codes from the area's start, each with its "
                                "scale");
  if (side.kind == DeviceSideLayout::Kind::Nvfp4 &&
      (side.codesOffset || side.slotScales))
    return Status::error(what + " nvfp4 entries must start at the area's "
                                "start, their block scales inside them");
  // A 64-token tile holds whole key blocks, and its 32-token segments
  // whole 16-byte chunks.
  if (side.kind == DeviceSideLayout::Kind::Kivi &&
      ((side.bits != 2 && side.bits != 4) ||
       (side.group != 32 && side.group != 64) || side.codesOffset ||
       side.slotScales || shape.pageSize % side.group))
    return Status::error(what + " kivi entries must be 2 or 4 bits in groups "
                                "of 32 or 64, from the area's start, in "
                                "pages of whole groups");
  return Status::ok();
}

const char *kernelName(SplitKernel kernel) {
  return kernel == SplitKernel::GroupMma ? "GroupMma"
         : kernel == SplitKernel::Mma    ? "Mma"
                                         : "Fma";
}

const char *kindName(DeviceSideLayout::Kind kind) {
  return kind == DeviceSideLayout::Kind::Bf16      ? "bf16"
         : kind == DeviceSideLayout::Kind::Fp8E4M3 ? "fp8 e4m3"
         : kind == DeviceSideLayout::Kind::Polar   ? "polar"
         : kind == DeviceSideLayout::Kind::Nvfp4   ? "nvfp4"
         : kind == DeviceSideLayout::Kind::Kivi    ? "kivi"
         : kind == DeviceSideLayout::Kind::Latent  ? "latent"
                                                   : "low-rank latent";
}

} // namespace

bool splitKernelReads(SplitKernel kernel, const DeviceSideLayout &key,
                      const DeviceSideLayout &value) {
  using Kind = DeviceSideLayout::Kind;
  if (key.kind == Kind::LatentKey)
    return kernel == SplitKernel::GroupMma &&
           (value.kind == Kind::Bf16 ||
            (value.kind == Kind::Latent && value.rank <= 64));
  if (value.kind == Kind::Latent)
    return kernel == SplitKernel::Mma && key.kind == Kind::Bf16;
  if (key.kind != value.kind || key.bits != value.bits)
    return false;
  if (kernel == SplitKernel::GroupMma)
    return key.kind != Kind::Bf16;
  return key.kind == Kind::Bf16 || key.kind == Kind::Fp8E4M3;
}

StatusOr<DecodeAttentionPlan>
planDecodeAttention(const DecodeAttentionShape &shape,
                    uint32_t multiprocessors) {
  return planDecodeAttention(shape, multiprocessors,
                             shape.key.kind == DeviceSideLayout::Kind::Bf16
                                 ? SplitKernel::Mma
                                 : SplitKernel::GroupMma);
}

StatusOr<DecodeAttentionPlan>
planDecodeAttention(const DecodeAttentionShape &shape, uint32_t multiprocessors,
                    SplitKernel kernel) {
  if (shape.headDim != 64 && shape.headDim != 128)
    return Status::error("decode attention on CUDA takes head dimensions 64 "
                         "and 128, not " +
                         std::to_string(shape.headDim));
  if (!shape.kvHeads || !shape.qHeads || shape.qHeads % shape.kvHeads ||
      shape.qHeads / shape.kvHeads > 8)
    return Status::error("decode attention on CUDA needs query heads that "
                         "are 1 to 8 times the KV heads, not " +
                         std::to_string(shape.qHeads) + " for " +
                         std::to_string(shape.kvHeads));
  const uint32_t pageSize = shape.pageSize;
  if (!(pageSize % kTileTokens == 0 || pageSize == 4 || pageSize == 8 ||
        pageSize == 16) ||
      pageSize == 0)
    return Status::error("decode attention on CUDA needs a page size of 4, "
                         "8, 16 or a multiple of 32, not " +
                         std::to_string(pageSize));
  const bool latent = shape.value.kind == DeviceSideLayout::Kind::Latent;
  const bool latentKeys = shape.key.kind == DeviceSideLayout::Kind::LatentKey;
  if (latentKeys
          ? !splitKernelReads(SplitKernel::GroupMma, shape.key, shape.value)
      : latent ? shape.key.kind != DeviceSideLayout::Kind::Bf16
               : shape.key.kind != shape.value.kind ||
                     shape.key.bits != shape.value.bits)
    return Status::error("decode attention on CUDA needs keys and values in "
                         "one encoding (bf16, fp8 e4m3, nvfp4, or polar or "
                         "kivi of one width), bf16 keys with low-rank "
                         "values, or low-rank keys with bf16 values or "
                         "low-rank values of rank up to 64");
  if (latentKeys && shape.qHeads / shape.kvHeads > kFoldedGroup)
    return Status::error("decode attention on CUDA reads low-rank keys for "
                         "groups of up to " +
                         std::to_string(kFoldedGroup) +
                         " query heads per KV head, not " +
                         std::to_string(shape.qHeads / shape.kvHeads));
  KVRT_RETURN_IF_ERROR(checkSide(shape.key, "keys", shape));
  KVRT_RETURN_IF_ERROR(checkSide(shape.value, "values", shape));
  const bool codeTable = kernel == SplitKernel::GroupMma &&
                         shape.key.kind == DeviceSideLayout::Kind::Polar;
  if (codeTable && !std::equal(std::begin(shape.key.levelHalves),
                               std::end(shape.key.levelHalves),
                               std::begin(shape.value.levelHalves)))
    return Status::error("decode attention on CUDA reads " +
                         std::to_string(shape.key.bits) +
                         "-bit polar keys and values through one codebook, "
                         "and theirs differ");
  if (shape.addsMass &&
      (shape.exactTokens || shape.value.kind == DeviceSideLayout::Kind::Latent))
    return Status::error("decode attention on CUDA adds H2O's attention "
                         "mass over codes alone, not beside exact tokens or "
                         "latent values");
  if (!splitKernelReads(kernel, shape.key, shape.value))
    return Status::error(std::string("the ") + kernelName(kernel) +
                         " split kernel does not read " +
                         kindName(shape.key.kind) + " keys with " +
                         kindName(shape.value.kind) + " values");

  DecodeAttentionPlan plan;
  plan.kernel = kernel;
  plan.tileTokens =
      kernel == SplitKernel::GroupMma ? kGroupTileTokens : kTileTokens;
  const uint32_t group = shape.qHeads / shape.kvHeads;
  plan.groupCapacity = group <= 2 ? group : group <= 4 ? 4 : 8;
  plan.segmentTokens = std::min(pageSize, kTileTokens);
  plan.stageBytes =
      plan.tileTokens / plan.segmentTokens * 16 *
          std::max(segmentChunks(shape.key, plan.segmentTokens),
                   segmentChunks(shape.value, plan.segmentTokens)) +
      plan.tileTokens * 4;

  // Latents: coordinates in 4-byte pairs where every entry starts 4-byte
  // aligned (an even rank: entries are 2 rank bytes from the area's
  // start), and two value tiles to a stage where the kernel's value
  // dimension is half the keys' (ranks up to 64 of 128: a tile of latents
  // takes at most half a key tile's bytes at any page size), so the value
  // pass keeps a key pass's bytes in flight (one latent tile of rank 64
  // to a stage left it at half the bandwidth, latency-bound).
  if (latent && !latentKeys) {
    plan.latentPairs = shape.value.rank % 2 == 0;
    if (shape.headDim == 128 && shape.value.rank <= 64)
      plan.valueTilesPerStage = 2;
  }

  // About 32 KB of copies per block: fp8 tiles are half the bytes of bf16
  // ones, and four stages of them leave too few bytes in flight to cover
  // the memory latency at full bandwidth. Beside polar's code table
  // (polarCodeTableBytes(), 16 KB of static memory, 8 KB at 3 bits) 40 KB
  // less the table, so that four blocks still fit an SM. Latent keys' blocks
  // hold their KV head's axes (8 to 32 KB) beside 64-token tiles of bf16 values
  // (16 KB a stage at d = 128): three stages, and splits of at most 256 tokens
  // per head of the group (4 KB of scores), so that three blocks fit an SM up
  // to rank 64 of 128.
  plan.stages =
      latentKeys ? 3
                 : std::clamp<uint32_t>(
                       (codeTable ? 40960 - polarCodeTableBytes(shape.key.bits)
                                  : 32768) /
                           plan.stageBytes,
                       4, kMaxStages);
  if (latentKeys) {
    plan.keyRankSteps = latentKeyRankSteps(shape.headDim, shape.key.rank);
    plan.keyOperandBytes =
        latentKeyOperandBytes(shape.headDim, plan.keyRankSteps);
  }

  const uint32_t maxSplit = (latentKeys ? 1024 : 4096) / plan.groupCapacity;
  const uint32_t rows = std::max(1u, shape.batch * shape.kvHeads);
  // GroupMma's blocks fit four an SM (kMinBlocks, and their shared
  // memory): as many splits as one wave of them holds, where the rows leave
  // room. A second wave of shorter splits paid each block's fixed cost
  // (tables, pipeline fill, final sums) twice: polar-4 at B = 1, L = 32K
  // took 49.1 us in 128 splits and takes 37.2 in 64 (H200, 2026-12-03).
  const uint32_t slots = std::max(1u, multiprocessors);
  const uint32_t groupBlocks = latentKeys ? 3 : kGroupBlocksPerMultiprocessor;
  const uint32_t wanted = kernel == SplitKernel::GroupMma
                              ? std::max(1u, groupBlocks * slots / rows)
                              : ceilDiv(kBlocksPerMultiprocessor * slots, rows);
  uint32_t split = ceilDiv(ceilDiv(shape.maxLength, wanted), plan.tileTokens) *
                   plan.tileTokens;
  // GroupMma's block has more to do before its first tile and after its
  // last (the pair table, polar's query rotation, the softmax between the
  // passes): four of its tiles a split at least, before the tokens are
  // spread evenly below (which keeps a split above half of that). B = 1,
  // L = 8K: polar-4 24.8 us in 64 splits of 128, 21.2 in 32 of 256 (H200,
  // 2026-12-03).
  const uint32_t minSplit =
      kernel == SplitKernel::GroupMma ? kGroupMinSplitTokens : kMinSplitTokens;
  split = std::clamp(split, minSplit, maxSplit);
  // Where the clamp left a short last split, the same number of splits
  // share the tokens evenly: at B = 32, 4129 tokens (a 4K context and a
  // bench's decode steps) in five GroupMma splits of 1024 left a fifth
  // wave-filling block of 33 tokens, and polar-4's decode step took 8.91
  // ms against 8.51 with splits of 832 (H200, 2026-12-03).
  const uint32_t count = std::max(1u, ceilDiv(shape.maxLength, split));
  plan.splitTokens =
      std::max(kMinSplitTokens,
               ceilDiv(ceilDiv(shape.maxLength, count), plan.tileTokens) *
                   plan.tileTokens);
  // A decode row's exact tokens: the sinks, the window and its own.
  plan.exactSplits =
      shape.exactTokens ? ceilDiv(shape.exactTokens + 1, kExactTileTokens) : 0;
  plan.splits = std::max(1u, ceilDiv(shape.maxLength, plan.splitTokens)) +
                plan.exactSplits;
  // A latent's sums always reach the merge, which maps them back.
  if (latent)
    plan.splits = std::max(plan.splits, 2u);

  plan.sharedBytes = sharedLayout(plan, shape.headDim, pageSize).bytes;
  plan.staticSharedBytes = codeTable ? polarCodeTableBytes(shape.key.bits) : 0;
  if (plan.sharedBytes + plan.staticSharedBytes > kMaxSharedBytes)
    return Status::error(
        "decode attention on CUDA would need " +
        std::to_string(plan.sharedBytes + plan.staticSharedBytes) +
        " bytes of shared memory per block");
  const size_t queries = size_t(shape.batch) * shape.qHeads;
  plan.workspaceBytes =
      plan.splits > 1 ? queries * plan.splits * (shape.headDim + 2) * 4 : 0;
  plan.addsMass = shape.addsMass;
  if (plan.addsMass)
    plan.workspaceBytes += queries * plan.splits * plan.splitTokens * 4;
  return plan;
}

Status decodeAttention(const DecodeAttentionArgs &args,
                       const DecodeAttentionPlan &plan, cudaStream_t stream) {
  const PagedKvView &cache = args.cache;
  const uint32_t headDim = cache.headDim;
  auto geometry = [&](const DeviceSideLayout &side) {
    SideGeometry g;
    g.areaStride = side.areaStride;
    g.pageStride = side.areaStride * cache.kvHeads;
    g.entryBytes = side.entryBytes;
    g.copyBase = side.codesOffset / 16 * 16;
    g.copySkew = side.codesOffset % 16;
    g.segmentChunks = segmentChunks(side, plan.segmentTokens);
    g.slotScales = side.slotScales;
    g.scaleOffset = side.scaleOffset;
    g.group = side.group;
    std::copy(std::begin(side.levelHalves), std::end(side.levelHalves),
              std::begin(g.levelHalves));
    g.codeScale = std::ldexp(side.tensorScale, -side.levelShift);
    return g;
  };

  // The workspace: the splits' partials, then (H2O) their weights.
  const bool rotates = cache.key.kind == DeviceSideLayout::Kind::Polar;
  const size_t rows = size_t(args.batch) * args.qHeads;
  float *partials = static_cast<float *>(args.workspace);

  SplitKernelParams p;
  p.q = args.q;
  std::copy(std::begin(cache.key.rotationSigns),
            std::end(cache.key.rotationSigns), std::begin(p.rotationSigns));
  p.queryPositions = args.queryPositions;
  p.out = args.out;
  p.partialOut = partials;
  p.partialMaxSum =
      p.partialOut ? p.partialOut + rows * plan.splits * headDim : nullptr;
  p.weights = nullptr;
  p.weightsStride = plan.splits * plan.splitTokens;
  if (plan.addsMass && partials)
    p.weights =
        partials + (plan.splits > 1 ? rows * plan.splits * (headDim + 2) : 0);
  p.keys = cache.keys;
  p.values = cache.values;
  p.positions = cache.positions;
  p.pageTables = cache.pageTables;
  p.tableRows = cache.tableRows;
  p.lengths = cache.lengths;
  const bool exact = cache.exact.active();
  p.exactCalls = exact ? cache.exact.calls : nullptr;
  p.exactSinks = exact ? cache.exact.sinks : 0;
  p.exactRecent = exact ? cache.exact.recent : 0;
  p.exactGroup = exact ? cache.exact.flushGroup : 1;
  p.key = geometry(cache.key);
  p.value = geometry(cache.value);
  p.pageTableStride = cache.pageTableStride;
  p.pageSize = cache.pageSize;
  p.qHeads = args.qHeads;
  p.group = args.qHeads / cache.kvHeads;
  p.scaleLog2 = args.scale * 1.4426950408889634f;
  p.slidingWindow = args.slidingWindow;
  p.splitTokens = plan.splitTokens;
  p.splits = plan.splits;
  p.segmentShift = 0;
  while ((1u << p.segmentShift) < plan.segmentTokens)
    ++p.segmentShift;
  p.stages = plan.stages;
  p.stageBytes = plan.stageBytes;
  p.valueTileBytes =
      (plan.tileTokens >> p.segmentShift) * p.value.segmentChunks * 16;
  const SharedLayout shared = sharedLayout(plan, headDim, cache.pageSize);
  p.logitsOffset = shared.logitsOffset;
  p.logitsStride = shared.logitsStride;
  p.pageSlots = shared.pageSlots;
  p.keyOperandOffset = shared.keyOperandOffset;
  p.barrierOffset = shared.barrierOffset;

  if (plan.workspaceBytes && !args.workspace)
    return Status::error("decode attention on CUDA needs a workspace of " +
                         std::to_string(plan.workspaceBytes) + " bytes");
  if (plan.addsMass != (args.mass != nullptr))
    return Status::error(std::string("decode attention's plan was made ") +
                         (plan.addsMass ? "to add" : "not to add") +
                         " H2O's attention mass");
  if (exact != (plan.exactSplits > 0))
    return Status::error(
        std::string("decode attention's plan was made for ") +
        (plan.exactSplits ? "a cache with" : "a cache without") +
        " exact tokens");
  const bool bf16 = cache.key.kind == DeviceSideLayout::Kind::Bf16;
  const bool latent = cache.value.kind == DeviceSideLayout::Kind::Latent;
  const bool latentKeys = cache.key.kind == DeviceSideLayout::Kind::LatentKey;
  if (latent && !cache.valueBasis)
    return Status::error("decode attention over latent values needs their "
                         "basis on the device");
  if (latentKeys && (!cache.keyAxes || !cache.keyFrequencies))
    return Status::error("decode attention over low-rank keys needs their "
                         "axes and RoPE's frequencies on the device");
  p.keyAxes = cache.keyAxes;
  p.keyFrequencies = cache.keyFrequencies;
  p.keyRank = cache.key.rank;
  p.ropeInterleaved = cache.key.ropeInterleaved;
  const void *kernel = nullptr;
  const bool folded = foldedGroup(plan);
  switch (plan.kernel) {
  case SplitKernel::GroupMma:
    kernel =
        latentKeys
            ? splitGroupMmaKernelLatentKeys(headDim, plan.keyRankSteps, latent)
        : rotates ? splitGroupMmaKernelPolar(headDim, cache.key.bits, folded)
        : cache.key.kind == DeviceSideLayout::Kind::Nvfp4
            ? splitGroupMmaKernelNvfp4(headDim, folded)
        : cache.key.kind == DeviceSideLayout::Kind::Kivi
            ? splitGroupMmaKernelKivi(headDim, cache.key.bits, folded)
            : splitGroupMmaKernelFp8E4M3(headDim, folded);
    break;
  case SplitKernel::Mma:
    kernel = latent ? splitMmaKernelLatent(headDim, cache.value.rank,
                                           plan.latentPairs)
             : bf16 ? splitMmaKernelBf16(headDim)
                    : splitMmaKernelFp8E4M3(headDim);
    break;
  case SplitKernel::Fma:
    kernel = bf16 ? splitKernelBf16(headDim, plan.groupCapacity)
                  : splitKernelFp8E4M3(headDim, plan.groupCapacity);
    break;
  }
  if (!kernel)
    return Status::error("decode attention on CUDA has no split kernel for " +
                         std::string(kindName(cache.key.kind)) + " keys of " +
                         std::to_string(headDim) + " coordinates");
  // Each launch in turn until one fails: its name and its CUDA error (the
  // launchers leave theirs for cudaGetLastError()), or that it refused its
  // arguments.
  const char *failed = nullptr;
  cudaError_t error = cudaSuccess;
  auto step = [&](const char *what, auto &&launch) {
    if (!failed && !launch())
      failed = what;
  };
  auto call = [&](cudaError_t e) {
    error = e;
    return e == cudaSuccess;
  };
  // The exact splits read only the queries and the exact tokens: forked
  // first, joined before the reduction.
  const SideStream &side = args.exactSide;
  const bool forks = exact && side.stream;
  if (forks)
    step("fork to the exact tokens' stream", [&] {
      return call(cudaEventRecord(side.fork, stream)) &&
             call(cudaStreamWaitEvent(side.stream, side.fork, 0));
    });
  if (exact)
    step("exact tokens' splits", [&] {
      return launchExactAttention(
          cache, args.q, args.queryPositions, args.batch, args.qHeads,
          p.scaleLog2, args.slidingWindow, p.partialOut, p.partialMaxSum,
          plan.splits, plan.exactSplits,
          rotates ? cache.value.rotationSigns : nullptr, {},
          forks ? side.stream : stream);
    });
  if (forks)
    step("exact tokens' join",
         [&] { return call(cudaEventRecord(side.join, side.stream)); });
  // Past 48 KB in all, a block's dynamic shared memory must be allowed.
  if (plan.sharedBytes + plan.staticSharedBytes > 48 * 1024)
    step("shared memory of the split kernel", [&] {
      return call(cudaFuncSetAttribute(
          kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
          int(plan.sharedBytes)));
    });
  // With exact tokens the last splits are theirs.
  const uint32_t codedSplits = plan.splits - plan.exactSplits;
  step("split kernel", [&] {
    void *kernelArgs[] = {&p};
    return call(cudaLaunchKernel(
        kernel, dim3(codedSplits, cache.kvHeads, args.batch),
        dim3(kLaunchThreads), kernelArgs, plan.sharedBytes, stream));
  });
  if (forks)
    step("wait for the exact tokens' splits",
         [&] { return call(cudaStreamWaitEvent(stream, side.join, 0)); });
  if (latent)
    step("merge of the latent splits", [&] {
      return launchLatentMerge(p.partialOut, p.partialMaxSum, args.out,
                               uint32_t(rows), plan.splits, codedSplits,
                               headDim, cache.value.rank, cache.valueBasis,
                               args.qHeads, p.group, stream);
    });
  else if (plan.splits > 1)
    step("split reduce", [&] {
      return launchSplitReduce(
          p.partialOut, p.partialMaxSum, args.out, uint32_t(rows), plan.splits,
          headDim, rotates ? cache.value.rotationSigns : nullptr, stream);
    });
  if (rotates && plan.splits == 1)
    step("rotation of the output", [&] {
      return launchRotateRows(args.out, args.out, uint32_t(rows), headDim,
                              cache.value.rotationSigns, true, stream);
    });
  if (plan.addsMass)
    step("attention mass", [&] {
      AttentionMassArgs mass;
      mass.weights = p.weights;
      mass.weightsStride = p.weightsStride;
      mass.partialMaxSum = p.partialMaxSum;
      mass.pageTables = cache.pageTables;
      mass.tableRows = cache.tableRows;
      mass.lengths = cache.lengths;
      mass.mass = args.mass;
      mass.pageTableStride = cache.pageTableStride;
      mass.pageSize = cache.pageSize;
      mass.batch = args.batch;
      mass.qHeads = args.qHeads;
      mass.kvHeads = cache.kvHeads;
      mass.splits = plan.splits;
      mass.splitTokens = plan.splitTokens;
      return launchAttentionMass(mass, stream);
    });
  // Read (and clear) the pending error either way.
  const cudaError_t pending = cudaGetLastError();
  if (error == cudaSuccess)
    error = pending;
  if (failed || error != cudaSuccess)
    return Status::error(std::string("decode attention's ") +
                         (failed ? failed : "launches") + " failed: " +
                         (error != cudaSuccess
                              ? cudaGetErrorString(error)
                              : "the launcher refused its arguments"));
  return Status::ok();
}

} // namespace kvrt::cuda
