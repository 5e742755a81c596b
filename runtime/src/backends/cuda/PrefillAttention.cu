//===- PrefillAttention.cu - A prefill's attention on tensor cores --------===//
//
// One block: 128 query rows of one head, four warps of 32 rows (two
// m-tiles of 16, so that every key and value fragment read from shared
// memory feeds two MMAs). The rows' queries wait in shared memory as bf16.
// Key and value tiles of 64 tokens are gathered from the pages (earlier
// tokens) and the run's bf16 copy (its own) into shared memory by
// cp.async (16-byte chunks, zero-filled past the sequence), two tiles in
// flight, rows swizzled (TensorCoreOps.cuh) so that ldmatrix reads eight
// rows' chunks from distinct banks.
//
// mma.sync.m16n8k16 (bf16 in, fp32 accumulators), with the lane map of
// the PTX ISA (g = lane / 4, t = lane % 4): S = Q K^T takes Q's fragments
// from ldmatrix of query rows and K^T's from ldmatrix of key rows; P V
// takes P straight from S's accumulators (the C layout of two n8 tiles is
// the A layout of one k16 step) and V's fragments from ldmatrix.trans of
// value rows. Tiles wholly before a warp's first row skip the causal mask,
// and the output is rescaled only when some row's maximum moved.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/PrefillAttention.h"
#include "runtime/src/backends/cuda/TensorCoreOps.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

namespace kvrt::cuda {
namespace {

constexpr int kWarps = 4, kThreads = 32 * kWarps;
/// Query rows a warp takes (two m-tiles) and a block; key and value
/// tokens a tile.
constexpr int kRowTiles = 2, kWarpRows = 16 * kRowTiles,
              kRows = kWarps * kWarpRows, kTile = 64;

struct Params {
  const uint8_t *keys, *values;
  uint64_t keyArea, valueArea, keyPage, valuePage;
  const int32_t *pageTable;
  const uint8_t *ownKeys, *ownValues;
  uint32_t pageSize, before, rows, qHeads, kvHeads, group;
  const float *q;
  float *out;
  float scaleLog2;
};

__device__ __forceinline__ void copy16(void *dst, const void *src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                   sharedAddress(dst)),
               "l"(src), "r"(valid ? 16 : 0));
}

template <int D>
__global__ void __launch_bounds__(kThreads, 2) prefillKernel(Params p) {
  constexpr int kChunks = D / 8, kTileBytes = kTile * D * 2;
  extern __shared__ __align__(128) uint8_t shared[];
  // The block's queries, then [stage][keys, values].
  uint8_t *queries = shared, *tiles = shared + kRows * D * 2;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int head = blockIdx.y, kvHead = head / int(p.group);
  const int firstRow = blockIdx.x * kRows;
  const int warpRow = firstRow + warp * kWarpRows;
  const int total = int(p.before + p.rows);
  // The last token any row of the block sees, and of this warp.
  const int blockLast = int(p.before) + min(firstRow + kRows, int(p.rows)) - 1;
  const int warpLast =
      int(p.before) + min(warpRow + kWarpRows, int(p.rows)) - 1;
  const int tileCount = blockLast / kTile + 1;

  auto load = [&](int tile, int stage) {
    uint8_t *k = tiles + stage * 2 * kTileBytes, *v = k + kTileBytes;
    for (int i = threadIdx.x; i < kTile * kChunks; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks;
      const int token = tile * kTile + r;
      const bool valid = token < total;
      const uint8_t *key, *value;
      if (token >= int(p.before)) {
        // The run's own tokens, from the bf16 copy its append left.
        const uint64_t at =
            (uint64_t(token - int(p.before)) * p.kvHeads + kvHead) * D * 2 +
            c * 16;
        key = p.ownKeys + at;
        value = p.ownValues + at;
      } else {
        const int page = p.pageTable[token / int(p.pageSize)];
        const uint64_t slot =
            uint64_t(token % int(p.pageSize)) * D * 2 + c * 16;
        key = p.keys + page * p.keyPage + kvHead * p.keyArea + slot;
        value = p.values + page * p.valuePage + kvHead * p.valueArea + slot;
      }
      copy16(k + swizzled<D>(r, c), valid ? key : p.ownKeys, valid);
      copy16(v + swizzled<D>(r, c), valid ? value : p.ownValues, valid);
    }
    asm volatile("cp.async.commit_group;\n" ::);
  };

  // Q as bf16 rows in shared memory, scaled so that scores come out in
  // log2 units; rows past the run are zeros.
  for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks, row = firstRow + r;
    uint4 packed = make_uint4(0, 0, 0, 0);
    if (row < int(p.rows)) {
      const float4 *x = reinterpret_cast<const float4 *>(
          p.q + (size_t(row) * p.qHeads + head) * D + 8 * c);
      const float4 x0 = x[0], x1 = x[1];
      packed = make_uint4(packBf16(x0.x * p.scaleLog2, x0.y * p.scaleLog2),
                          packBf16(x0.z * p.scaleLog2, x0.w * p.scaleLog2),
                          packBf16(x1.x * p.scaleLog2, x1.y * p.scaleLog2),
                          packBf16(x1.z * p.scaleLog2, x1.w * p.scaleLog2));
    }
    *reinterpret_cast<uint4 *>(queries + swizzled<D>(r, c)) = packed;
  }

  // Per m-tile m of the warp: rows warpRow + 16 m + g and + 8.
  float o[kRowTiles][D / 8][4] = {};
  float rowMax[kRowTiles][2], rowSum[kRowTiles][2];
  int query[kRowTiles][2];
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      rowMax[m][h] = -INFINITY;
      rowSum[m][h] = 0.f;
      query[m][h] = int(p.before) + warpRow + 16 * m + g + 8 * h;
    }
  const int warpFirst = int(p.before) + warpRow;

  load(0, 0);
  for (int tile = 0; tile < tileCount; ++tile) {
    if (tile + 1 < tileCount) {
      load(tile + 1, (tile + 1) & 1);
      asm volatile("cp.async.wait_group 1;\n" ::);
    } else {
      asm volatile("cp.async.wait_group 0;\n" ::);
    }
    __syncthreads();
    const uint8_t *k = tiles + (tile & 1) * 2 * kTileBytes, *v = k + kTileBytes;
    if (tile * kTile <= warpLast) {
      // S = Q K^T, two k-steps at a time: each key fragment serves both
      // m-tiles.
      float s[kRowTiles][kTile / 8][4] = {};
#pragma unroll
      for (int c = 0; c < kChunks; c += 4) {
        uint32_t qa[kRowTiles][2][4];
#pragma unroll
        for (int m = 0; m < kRowTiles; ++m)
#pragma unroll
          for (int j = 0; j < 2; ++j)
            ldmatrix4(qa[m][j], queries + swizzled<D>(warp * kWarpRows +
                                                          16 * m + lane % 16,
                                                      c + 2 * j + lane / 16));
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n) {
          uint32_t b[4];
          ldmatrix4(b, k + swizzled<D>(n * 8 + lane % 8, c + lane / 8));
#pragma unroll
          for (int m = 0; m < kRowTiles; ++m) {
            mmaBf16(s[m][n], qa[m][0], b[0], b[1]);
            mmaBf16(s[m][n], qa[m][1], b[2], b[3]);
          }
        }
      }
      // Causal mask where the tile reaches past the warp's first row,
      // then the online softmax of each m-tile's rows g and g + 8.
      const bool masks = tile * kTile + kTile - 1 > warpFirst;
      float rescale[kRowTiles][2];
#pragma unroll
      for (int m = 0; m < kRowTiles; ++m) {
        float tileMax[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = tile * kTile + n * 8 + 2 * t + (e & 1);
            if (masks && key > query[m][e / 2])
              s[m][n][e] = -INFINITY;
            tileMax[e / 2] = fmaxf(tileMax[e / 2], s[m][n][e]);
          }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          tileMax[h] = fmaxf(tileMax[h], __shfl_xor_sync(~0u, tileMax[h], 1));
          tileMax[h] = fmaxf(tileMax[h], __shfl_xor_sync(~0u, tileMax[h], 2));
          const float next = fmaxf(rowMax[m][h], tileMax[h]);
          // A row that has seen nothing yet keeps -inf and weighs nothing.
          rescale[m][h] = next == -INFINITY ? 1.f : exp2f(rowMax[m][h] - next);
          rowMax[m][h] = next;
          rowSum[m][h] *= rescale[m][h];
        }
#pragma unroll
        for (int n = 0; n < kTile / 8; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float mx = rowMax[m][e / 2];
            s[m][n][e] = mx == -INFINITY ? 0.f : exp2f(s[m][n][e] - mx);
            rowSum[m][e / 2] += s[m][n][e];
          }
      }
      // Once the rows' maxima settle, most tiles change none.
      bool changed = false;
#pragma unroll
      for (int m = 0; m < kRowTiles; ++m)
        changed |= rescale[m][0] != 1.f || rescale[m][1] != 1.f;
      if (__any_sync(~0u, changed)) {
#pragma unroll
        for (int m = 0; m < kRowTiles; ++m)
#pragma unroll
          for (int d = 0; d < D / 8; ++d)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              o[m][d][e] *= rescale[m][e / 2];
      }
      // O += P V, 16 tokens a k-step; each value fragment serves both
      // m-tiles.
#pragma unroll
      for (int ks = 0; ks < kTile / 16; ++ks) {
        uint32_t a[kRowTiles][4];
#pragma unroll
        for (int m = 0; m < kRowTiles; ++m) {
          a[m][0] = packBf16(s[m][2 * ks][0], s[m][2 * ks][1]);
          a[m][1] = packBf16(s[m][2 * ks][2], s[m][2 * ks][3]);
          a[m][2] = packBf16(s[m][2 * ks + 1][0], s[m][2 * ks + 1][1]);
          a[m][3] = packBf16(s[m][2 * ks + 1][2], s[m][2 * ks + 1][3]);
        }
#pragma unroll
        for (int dt = 0; dt < D / 16; ++dt) {
          uint32_t b[4];
          const int mi = lane / 8;
          ldmatrix4Trans(b, v + swizzled<D>(ks * 16 + (mi % 2) * 8 + lane % 8,
                                            2 * dt + mi / 2));
#pragma unroll
          for (int m = 0; m < kRowTiles; ++m) {
            mmaBf16(o[m][2 * dt], a[m], b[0], b[1]);
            mmaBf16(o[m][2 * dt + 1], a[m], b[2], b[3]);
          }
        }
      }
    }
    // The stage just read is refilled by the next iteration's load.
    __syncthreads();
  }

  // Row sums over the four lanes of each row, then the rows out.
#pragma unroll
  for (int m = 0; m < kRowTiles; ++m)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = rowSum[m][h];
      sum += __shfl_xor_sync(~0u, sum, 1);
      sum += __shfl_xor_sync(~0u, sum, 2);
      const int r = warpRow + 16 * m + g + 8 * h;
      if (r >= int(p.rows))
        continue;
      const float inv = sum > 0 ? 1.f / sum : 0.f;
      float *row = p.out + (size_t(r) * p.qHeads + head) * D;
#pragma unroll
      for (int d = 0; d < D / 8; ++d)
        *reinterpret_cast<float2 *>(row + d * 8 + 2 * t) =
            make_float2(o[m][d][2 * h] * inv, o[m][d][2 * h + 1] * inv);
    }
}

} // namespace

bool prefillAttentionReads(const PagedKvView &view, uint32_t qHeads,
                           uint32_t before) {
  const bool pages =
      before == 0 || (view.key.kind == DeviceSideLayout::Kind::Bf16 &&
                      view.value.kind == DeviceSideLayout::Kind::Bf16 &&
                      view.key.codesOffset == 0 && view.value.codesOffset == 0);
  return pages && (view.headDim == 64 || view.headDim == 128) && view.kvHeads &&
         qHeads % view.kvHeads == 0;
}

Status prefillAttention(const PrefillAttentionArgs &a, cudaStream_t stream) {
  const PagedKvView &c = a.cache;
  if (!prefillAttentionReads(c, a.qHeads, a.before))
    return Status::error("prefill attention on CUDA reads bf16 pages of "
                         "head dimension 64 or 128");
  if (a.rows == 0)
    return Status::ok();
  Params p{c.keys,
           c.values,
           c.key.areaStride,
           c.value.areaStride,
           c.key.areaStride * c.kvHeads,
           c.value.areaStride * c.kvHeads,
           a.pageTable,
           reinterpret_cast<const uint8_t *>(a.ownKeys),
           reinterpret_cast<const uint8_t *>(a.ownValues),
           c.pageSize,
           a.before,
           a.rows,
           a.qHeads,
           c.kvHeads,
           a.qHeads / c.kvHeads,
           a.q,
           a.out,
           a.scale * 1.4426950408889634f};
  const dim3 grid((a.rows + kRows - 1) / kRows, a.qHeads);
  // The queries, then two stages of a key and a value tile.
  const size_t bytes = (size_t(kRows) + 2 * 2 * kTile) * c.headDim * 2;
  const void *kernel = c.headDim == 64
                           ? reinterpret_cast<const void *>(prefillKernel<64>)
                           : reinterpret_cast<const void *>(prefillKernel<128>);
  cudaError_t error = cudaSuccess;
  if (bytes > 48 * 1024)
    error = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (error == cudaSuccess) {
    void *args[] = {&p};
    error = cudaLaunchKernel(kernel, grid, dim3(kThreads), args, bytes, stream);
  }
  if (error != cudaSuccess)
    return Status::error(std::string("prefill attention's launch failed: ") +
                         cudaGetErrorString(error));
  return Status::ok();
}

} // namespace kvrt::cuda
