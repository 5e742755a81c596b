//===- SummariseBlock.cuh - A block's key bounds ---------------*- CUDA -*-===//
//
// The per-channel minimum and maximum of a block of stored keys, as the
// sparse kernels read them (GatherEntries.cuh): thread t of kSummaryThreads
// takes part t % 8 of every 16th entry, decodes its D / 8 channels and
// keeps their bounds; a warp's four entries of each part meet by shuffles,
// the warps in shared memory. The bounds are stored as the CPU stores them
// (sparse/BoundCodes.h): FP8 codes rounded outward, with the exponent the
// block's largest bound asks for. BlockSummaries.cu builds a prefill's
// pages with it; the sparse
// attention's first block of each (row, KV head) brings the block of its
// newest token up to date for the next step's level 1 (SparseAttention.cu).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_SUMMARISEBLOCK_CUH
#define KVRT_BACKENDS_CUDA_SUMMARISEBLOCK_CUH

#include "runtime/src/backends/cuda/GatherEntries.cuh"
#include "runtime/src/backends/cuda/SparseKernels.h"
#include "runtime/src/sparse/BoundCodes.h"

namespace kvrt::cuda {

/// Shared memory summariseBlock() meets the warps' bounds in.
template <int D> using SummaryScratch = float[kSummaryThreads / 32][2][D];

/// Writes the summary of entries [first, first + count) (count >= 1) of the
/// key area whose codes start at `codes` to `out`'s first block; the block's
/// kSummaryThreads threads all take part.
template <typename Rows, int D>
__device__ void summariseBlock(const uint8_t *codes, const EntryForm &form,
                               const float *levels, int first, int count,
                               BlockSummaries out, SummaryScratch<D> &scratch) {
  constexpr int kDims = D / 8, kRows = kSummaryThreads / 8, kUnroll = 4;
  const int tid = threadIdx.x, part = tid % 8, row = tid / 8, warp = tid / 32;
  float lo[kDims], hi[kDims];
#pragma unroll
  for (int i = 0; i < kDims; ++i) {
    lo[i] = INFINITY;
    hi[i] = -INFINITY;
  }
  for (int e = row; e < count; e += kUnroll * kRows) {
    // Four entries' loads in flight; past the end, the last entry again
    // (it changes no bound).
    typename Rows::Raw raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      Rows::load(codes, first + min(e + u * kRows, count - 1), form, part,
                 raw[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float x[kDims];
      Rows::decode(raw[u], levels, x);
#pragma unroll
      for (int i = 0; i < kDims; ++i) {
        lo[i] = fminf(lo[i], x[i]);
        hi[i] = fmaxf(hi[i], x[i]);
      }
    }
  }
  // Lanes 8 and 16 apart hold the same part.
#pragma unroll
  for (int i = 0; i < kDims; ++i)
#pragma unroll
    for (int offset = 8; offset < 32; offset *= 2) {
      lo[i] = fminf(lo[i], __shfl_xor_sync(0xffffffffu, lo[i], offset));
      hi[i] = fmaxf(hi[i], __shfl_xor_sync(0xffffffffu, hi[i], offset));
    }
  if (tid % 32 < 8)
#pragma unroll
    for (int i = 0; i < kDims; ++i) {
      scratch[warp][0][Rows::dim(part, i)] = lo[i];
      scratch[warp][1][Rows::dim(part, i)] = hi[i];
    }
  __syncthreads();
  // Thread tid's channels tid + i * kSummaryThreads of the 2D bounds, and
  // the largest magnitude among all of them.
  constexpr int kOwn = (2 * D + kSummaryThreads - 1) / kSummaryThreads;
  float bound[kOwn], largest = 0.0f;
#pragma unroll
  for (int i = 0; i < kOwn; ++i) {
    const int c = tid + i * kSummaryThreads, side = c / D, channel = c % D;
    if (c >= 2 * D)
      break;
    bound[i] = scratch[0][side][channel];
#pragma unroll
    for (int w = 1; w < kSummaryThreads / 32; ++w)
      bound[i] = side ? fmaxf(bound[i], scratch[w][side][channel])
                      : fminf(bound[i], scratch[w][side][channel]);
    largest = fmaxf(largest, fabsf(bound[i]));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2)
    largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
  __syncthreads(); // every read of the warps' bounds is done
  if (tid % 32 == 0)
    scratch[0][0][warp] = largest;
  __syncthreads();
#pragma unroll
  for (int w = 0; w < kSummaryThreads / 32; ++w)
    largest = fmaxf(largest, scratch[0][0][w]);
  const int exponent = sparse::boundExponent(largest);
#pragma unroll
  for (int i = 0; i < kOwn; ++i) {
    const int c = tid + i * kSummaryThreads;
    if (c < 2 * D)
      out.codes[c] = sparse::boundCode(bound[i], exponent, c >= D);
  }
  if (tid == 0)
    out.exponents[0] = int8_t(exponent);
  __syncthreads();
}

/// Where the summaries keep block `blockInPage` of `page`'s KV head `head`
/// (SparseSelect.h).
__device__ __forceinline__ BlockSummaries summaryOf(const SparseKernelParams &p,
                                                    int page, int head,
                                                    int blockInPage, int D) {
  const size_t n =
      (size_t(page) * p.kvHeads + head) * p.blocksPerPage + blockInPage;
  return {p.summaries.codes + n * 2 * D, p.summaries.exponents + n};
}

/// The summary of the block that holds row b's newest token (p.lengths:
/// beside a window of exact tokens, the one this step's token pushed out
/// of it, as the CPU encodes it), from its entries up to that token, for
/// KV head `head`: the next step's newest selectable block. Its page is
/// read from its device slot where an offloaded layer has one.
template <typename Rows, int D>
__device__ void summariseNewestBlock(const SparseKernelParams &p, int head,
                                     int b, const float *levels,
                                     SummaryScratch<D> &scratch) {
  const int stored = p.lengths[b], block = int(p.block);
  if (stored < 1)
    return;
  const int first = (stored - 1) / block * block;
  const int page =
      p.pageTables[size_t(b) * p.pageTableStride + first / int(p.pageSize)];
  const int slot = first % int(p.pageSize);
  const EntryAreas areas =
      entryAreas(p.keys, p.slotKeys, p.keyPageStride, p.keyAreaStride, head);
  const uint8_t *area =
      areaAt(areas, entryPage(p.slotOf, page, int(p.kvHeads), head));
  summariseBlock<Rows, D>(area, p.keyForm, levels, slot, stored - first,
                          summaryOf(p, page, head, slot / block, D), scratch);
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SUMMARISEBLOCK_CUH
