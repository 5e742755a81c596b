//===- SplitBlock.cuh - What every split kernel shares ---------*- CUDA -*-===//
//
// One block takes tokens [start, end) of sequence b for KV head h and the
// `group` query heads that read it. Tiles of Tile tokens (32 or 64) stream
// through a shared-memory pipeline of 4 to 8 stages, first every key tile
// (with its positions), then every value tile, ValueTiles of them to a
// stage where they are small (latents: the next tile's segments follow
// the first's). A tile holds segments of min(pageSize, 32) slots, each a
// contiguous run of one page area's bytes moved by one bulk copy
// (cp.async.bulk).
//
// The block is warp-specialised: a producer warp issues the copies of each
// stage once the four consumer warps have released it (the stage's "empty"
// mbarrier) and announces the bytes on its "full" mbarrier; each consumer
// warp waits for "full", computes, and releases. No
// block-wide barrier sits in the loops, so warps drift apart by up to the
// pipeline's depth instead of waiting for the slowest at every tile.
// Between the two passes the consumers turn the split's scores into exp2
// weights (softmax(), behind a barrier of the consumers only).
//
// Shared memory: the stages, the scores [group][logitsStride] (in log2
// units), the split's page indices, per-head maxima and sums, and the
// stages' barriers (offsets from DecodeAttention.cpp's sharedLayout()).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SPLITBLOCK_CUH
#define KVRT_BACKENDS_CUDA_SPLITBLOCK_CUH

#include "runtime/src/backends/cuda/AsyncCopy.cuh"
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/WarpReduce.cuh"

#include <cuda_runtime.h>

namespace kvrt::cuda {

/// x, kept in a register: ptxas would otherwise recompute loop-invariant
/// shared-memory offsets inside the loops from kernel parameters.
__device__ __forceinline__ int pinned(int x) {
  asm volatile("" : "+r"(x));
  return x;
}

/// ProducerLanes: the producer warp's lanes that issue copies, a segment
/// each in turn (1 or 32). Measured on an H200 (B = 8, L = 32K,
/// 2026-12-03): GroupMma's polar-4 takes 174 us with 32 and 184 with one,
/// where one lane issuing a tile's segments after another took 12% of its
/// instructions; Mma's bf16 takes 271 us with one and 291 with 32 (ptxas
/// then needs 98 registers: three blocks an SM; bounded to four, 277 us
/// with a spill, and B = 32 still 3% slower).
template <int Tile = int(kTileTokens), int ValueTiles = 1,
          int ProducerLanes = 1>
struct SplitBlock {
  static_assert(ProducerLanes == 1 || ProducerLanes == 32,
                "a producer lane or the whole warp");
  /// Shared-memory bytes at the end of a stage that hold the tile's
  /// positions.
  static constexpr uint32_t kPositionBytes = Tile * 4;

  const SplitKernelParams &p;
  int kvHead, b, tid;
  int group, pageSize, start, end, tiles, firstPage, queryPosition;
  /// Query head g of the group is row firstRow + g of q and out.
  size_t firstRow;
  uint8_t *stages;
  float *logits;
  int32_t *pages;
  float *rowMax, *rowSum;
  uint64_t *full, *empty;
  /// The stage acquire() returns next and the parity of its barrier's phase.
  int slot = 0;
  uint32_t phase = 0;

  __device__ SplitBlock(const SplitKernelParams &params, uint8_t *shared)
      : p(params), kvHead(blockIdx.y), b(blockIdx.z), tid(threadIdx.x) {
    group = int(p.group);
    pageSize = int(p.pageSize);
    start = blockIdx.x * int(p.splitTokens);
    end = min(start + int(p.splitTokens), codedLength());
    tiles = (end - start + Tile - 1) / Tile;
    firstPage = start / pageSize;
    firstRow = size_t(b) * p.qHeads + size_t(kvHead) * group;
    queryPosition = p.queryPositions[b];
    stages = shared;
    logits = reinterpret_cast<float *>(shared + p.logitsOffset);
    pages = reinterpret_cast<int32_t *>(logits + group * p.logitsStride);
    rowMax = reinterpret_cast<float *>(pages + p.pageSlots);
    rowSum = rowMax + 8;
    full = reinterpret_cast<uint64_t *>(shared + p.barrierOffset);
    empty = full + kMaxStages;
  }

  /// The row reads the codes of tokens [0, codedLength()): all it stores
  /// or, where the layer keeps tokens exact, those older than the window
  /// (KIVI: its groups that have left it) before the call (none when the sinks
  /// cover them; visible() leaves the sinks out).
  __device__ int codedLength() const {
    if (!p.exactCalls)
      return p.lengths[b];
    const int tableRow = p.tableRows ? p.tableRows[b] : b;
    const int coded = codedTokens(p.exactCalls[3 * tableRow + 1],
                                  int(p.exactRecent), int(p.exactGroup));
    return coded > int(p.exactSinks) ? coded : 0;
  }

  /// When the split holds no token, writes its result (zeros, or a partial
  /// that weighs nothing) and returns true: the block is done.
  template <int D> __device__ bool finishEmpty() {
    if (start < end)
      return false;
    if (tid >= int(kBlockThreads))
      return true;
    if (p.splits == 1) {
      for (int e = tid; e < group * D; e += kBlockThreads)
        p.out[firstRow * D + e] = 0.0f;
    } else if (tid < group) {
      float *maxSum =
          p.partialMaxSum + ((firstRow + tid) * p.splits + blockIdx.x) * 2;
      maxSum[0] = -INFINITY;
      maxSum[1] = 0.0f;
    }
    return true;
  }

  /// Loads the split's page indices and sets up the barriers; all threads
  /// take part.
  __device__ void begin() {
    const int pageCount = (end - 1) / pageSize - firstPage + 1;
    for (int i = tid; i < pageCount; i += kLaunchThreads)
      pages[i] = p.pageTables[size_t(p.tableRows ? p.tableRows[b] : b) *
                                  p.pageTableStride +
                              firstPage + i];
    if (tid == 0) {
      for (int s = 0; s < int(p.stages); ++s) {
        initBarrier(&full[s], 1);
        initBarrier(&empty[s], kBlockThreads / 32);
      }
      fenceBarrierInit();
    }
    __syncthreads();
  }

  /// Sets up the pipeline (begin()), then runs the producer warp to its
  /// end (produce()); returns whether the calling thread is a consumer.
  __device__ bool consume() {
    begin();
    return !produce();
  }

  /// In the producer warp, issues every tile's copies and returns true (the
  /// warp is then done); in the consumers, returns false.
  __device__ bool produce() {
    if (tid < int(kBlockThreads))
      return false;
    const int lane = tid - int(kBlockThreads);
    if (lane >= ProducerLanes)
      return true;
    const int stageCount = int(p.stages);
    const int positions = tiles + (tiles + ValueTiles - 1) / ValueTiles;
    for (int j = 0, into = 0, use = 0; j < positions; ++j) {
      if (use > 0)
        waitBarrier(&empty[into], (use - 1) & 1);
      issue(j, into, lane);
      if (++into == stageCount) {
        into = 0;
        ++use;
      }
    }
    return true;
  }

  /// Stream position j: key tile j, then value tiles (j - tiles) *
  /// ValueTiles on (their tokens consecutive, so their segments follow one
  /// another), into stage `into`: one bulk copy per segment and, for keys,
  /// one for its positions, their bytes announced on the stage's "full"
  /// barrier by lane 0, the segments shared by the producer lanes.
  __device__ void issue(int j, int into, int lane) {
    const bool keys = j < tiles;
    const SideGeometry &side = keys ? p.key : p.value;
    const uint8_t *pool = (keys ? p.keys : p.values) +
                          uint64_t(kvHead) * side.areaStride + side.copyBase;
    uint8_t *stage = stages + into * p.stageBytes;
    uint64_t *barrier = &full[into];
    const int span = keys ? Tile : ValueTiles * Tile;
    const int tile = keys ? j : (j - tiles) * ValueTiles;
    const int tileStart = start + tile * Tile;
    const int segmentTokens = 1 << p.segmentShift;
    const int segments =
        min(span >> p.segmentShift,
            (end - tileStart + segmentTokens - 1) >> p.segmentShift);
    const uint32_t bytes = side.segmentChunks * 16;
    const uint32_t positionBytes = keys ? segmentTokens * 4 : 0;
    if (lane == 0)
      arriveExpecting(barrier, segments * (bytes + positionBytes));
    __syncwarp(ProducerLanes == 32 ? 0xffffffffu : 1u);
    // The lane's first segment's page (relative to the split's) and slot:
    // pages of at most 32 tokens are whole segments (the split starts on a
    // page boundary), larger ones (multiples of 32) hold whole segments.
    // Stepped, not recomputed, per segment: two registers fewer in bf16's
    // Mma kernel, which keeps it at four blocks an SM.
    int page, slot = 0;
    if (pageSize <= 32) {
      page = ((tile * Tile) >> p.segmentShift) + lane;
    } else {
      const int into =
          tileStart - firstPage * pageSize + (lane << p.segmentShift);
      page = into / pageSize;
      slot = into - page * pageSize;
    }
    for (int segment = lane; segment < segments;) {
      const uint64_t index = uint64_t(pages[page]);
      copyBulk(stage + segment * bytes,
               pool + index * side.pageStride +
                   uint64_t(slot) * side.entryBytes,
               bytes, barrier);
      if (keys)
        copyBulk(stage + p.stageBytes - kPositionBytes +
                     segment * positionBytes,
                 p.positions + index * pageSize + slot, positionBytes, barrier);
      // The lane's next segment, if any (32 lanes rarely have one).
      if ((segment += ProducerLanes) >= segments)
        break;
      if (pageSize <= 32) {
        page += ProducerLanes;
      } else {
        slot += ProducerLanes * segmentTokens;
        page += slot / pageSize;
        slot %= pageSize;
      }
    }
  }

  /// The next tile's stage once its bytes have landed (consumers, in
  /// stream order).
  __device__ const uint8_t *acquire() {
    waitBarrier(&full[slot], phase);
    return stages + slot * p.stageBytes;
  }

  /// Hands the stage acquire() returned back to the producer, once every
  /// lane of the calling warp is done with it.
  __device__ void release() {
    __syncwarp();
    if (tid % 32 == 0)
      arrive(&empty[slot]);
    if (++slot == int(p.stages)) {
      slot = 0;
      phase ^= 1;
    }
  }

  /// A barrier of the four consumer warps (the producer may have exited).
  __device__ void consumerSync() const {
    asm volatile("bar.sync 1, %0;" ::"n"(kBlockThreads) : "memory");
  }

  /// Where row `row` of a tile of `side` starts in its stage (the same for
  /// every tile: loops compute it once).
  __device__ int entryOffset(const SideGeometry &side, int row) const {
    const int segment = row >> p.segmentShift;
    const int slot = row - (segment << p.segmentShift);
    return segment * side.segmentChunks * 16 + side.copySkew +
           slot * side.entryBytes;
  }
  __device__ const uint8_t *entry(const uint8_t *stage,
                                  const SideGeometry &side, int row) const {
    return stage + entryOffset(side, row);
  }

  __device__ const int32_t *positions(const uint8_t *stage) const {
    return reinterpret_cast<const int32_t *>(stage + p.stageBytes -
                                             kPositionBytes);
  }

  /// The side's scale of a per_head fp8 cache times its codeScale, or the
  /// codeScale alone where entries carry their own scale (or none).
  template <bool Scaled> __device__ float sideScale(bool keys) const {
    const SideGeometry &side = keys ? p.key : p.value;
    return headScale<Scaled>(keys) * side.codeScale;
  }

  /// The head scale of a per_head fp8 side (the same in every page's
  /// area); 1 where entries carry their own scale or none.
  template <bool Scaled> __device__ float headScale(bool keys) const {
    const SideGeometry &side = keys ? p.key : p.value;
    if (!Scaled || side.slotScales)
      return 1.0f;
    const uint8_t *area = (keys ? p.keys : p.values) +
                          uint64_t(pages[0]) * side.pageStride +
                          uint64_t(kvHead) * side.areaStride;
    return *reinterpret_cast<const float *>(area + side.scaleOffset);
  }

  /// Whether the row reads the codes of token `token`, stored at
  /// `position`.
  __device__ bool visible(int position, int token) const {
    return token >= int(p.exactSinks) && position <= queryPosition &&
           (p.slidingWindow == 0 || queryPosition - position < p.slidingWindow);
  }

  __device__ float *scores(int head) const {
    return logits + head * p.logitsStride;
  }

  /// Turns each head's scores into 2^(score - max) in place and records
  /// the maximum and the sum, and (H2O) leaves the weights in
  /// p.weights; all consumers take part.
  __device__ void softmax() {
    consumerSync();
    const int warp = tid / 32, lane = tid % 32, count = end - start;
    for (int g = warp; g < group; g += kBlockThreads / 32) {
      const WarpExp2 row = warpExp2(scores(g), count);
      if (lane == 0) {
        rowMax[g] = row.max;
        rowSum[g] = row.sum;
      }
    }
    consumerSync();
    if (p.weights)
      writeWeights(count);
  }

  /// The split's weights of each head into p.weights: as they are, or
  /// normalised where the row has no other split (and so no merge that
  /// knows its sum).
  __device__ void writeWeights(int count) const {
    for (int g = 0; g < group; ++g) {
      const float *weight = scores(g);
      const float inverse = p.splits > 1       ? 1.0f
                            : rowSum[g] > 0.0f ? 1.0f / rowSum[g]
                                               : 0.0f;
      float *to = p.weights + (firstRow + g) * p.weightsStride + start;
      for (int i = tid; i < count; i += kBlockThreads)
        to[i] = weight[i] * inverse;
    }
  }

  /// Writes coordinate d of query head g's unnormalised output.
  __device__ void write(int g, int d, int D, float value) const {
    const size_t row = firstRow + g;
    if (p.splits == 1) {
      const float total = rowSum[g];
      p.out[row * D + d] = total > 0.0f ? value / total : 0.0f;
    } else {
      p.partialOut[(row * p.splits + blockIdx.x) * D + d] = value;
    }
  }

  /// Sums the consumer warps' partial outputs, perWarp[(w * groupStride +
  /// g) * D + d] for warp w, times `scale`, and writes them as the first D
  /// coordinates of output rows of Row (latent values: D < Row); all
  /// consumers take part, after a consumerSync() that follows the last
  /// writes to perWarp.
  template <int D, int Row = D>
  __device__ void writeWarpSums(const float *perWarp, int groupStride,
                                float scale) const {
    for (int e = tid; e < group * D; e += kBlockThreads) {
      const int g = e / D, d = e % D;
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < int(kBlockThreads / 32); ++w)
        sum += perWarp[(w * groupStride + g) * D + d];
      write(g, d, Row, sum * scale);
    }
  }

  /// Records the split's maxima and sums for SplitReduce.cu.
  __device__ void writeMaxSum() const {
    if (p.splits > 1 && tid < group) {
      float *maxSum =
          p.partialMaxSum + ((firstRow + tid) * p.splits + blockIdx.x) * 2;
      maxSum[0] = rowMax[tid];
      maxSum[1] = rowSum[tid];
    }
  }
};

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SPLITBLOCK_CUH
