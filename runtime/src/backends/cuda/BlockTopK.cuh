//===- BlockTopK.cuh - The k best of n keys, one thread block --*- CUDA -*-===//
//
// The selection kernels rank up to tens of thousands of items and keep up
// to a few thousand, once per (row, KV head), in one thread block. Ranks
// become 32-bit keys whose unsigned order is the float order (rankKey());
// a radix select (up to four passes of 8 bits over the keys in shared
// memory, each a 256-bin histogram counted with one shared-memory atomic a
// key) finds the k-th largest key T and how many keys equal to T to keep;
// one more pass keeps the keys above T and the first of those equal to T,
// in index order, so ties go to the lower index as in sparse/TwoLevel.cpp.
// Where the k-th largest key's bin holds exactly the keys still wanted, the
// passes end there and the whole bin is kept: the same keys (equal keys
// share every bin, so the bin holds no tie), usually a pass or two fewer
// once the bins hold a key each.
//
// The atomics go straight to the one histogram, conflicts and all: on an
// H100 that ranked 8192 candidates a row in 6 us less than aggregating a
// warp's equal digits first (__match_any_sync, then one atomic a digit),
// and neither a histogram per warp summed after each pass nor eight
// copies spread over the lanes (lane l counting into copy l % 8) was
// faster; nor was one barrier a pass, every warp finding the digit itself
// (docs/benchmarks.md, 2026-12-06).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_BLOCKTOPK_CUH
#define KVRT_BACKENDS_CUDA_BLOCKTOPK_CUH

#include <cstdint>

namespace kvrt::cuda {

/// A key whose unsigned order is the order of `x`; NaN gets the lowest key
/// (it ranks last, as on the CPU) and -0 the key of +0.
__device__ __forceinline__ uint32_t rankKey(float x) {
  if (x != x)
    return 0u;
  if (x == 0.0f)
    x = 0.0f;
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/// What keepBest() needs in shared memory.
struct TopKShared {
  uint32_t histogram[256];
  uint32_t warpTotals[33];
  uint32_t prefix;
  uint32_t want;
  /// Whether the bin of the k-th largest key holds exactly the keys still
  /// wanted: then every key with its prefix is kept, and the passes end.
  uint32_t settled;
};

/// Exclusive prefix sum of `x` over the block's Threads threads (a multiple
/// of 32); `total` gets the sum of all. Every thread takes part.
template <int Threads>
__device__ __forceinline__ uint32_t blockExclusiveSum(uint32_t x, TopKShared &s,
                                                      uint32_t &total) {
  constexpr int kWarps = Threads / 32;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  uint32_t inclusive = x;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const uint32_t y = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset)
      inclusive += y;
  }
  if (lane == 31)
    s.warpTotals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    const uint32_t own = lane < kWarps ? s.warpTotals[lane] : 0u;
    uint32_t sum = own;
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const uint32_t y = __shfl_up_sync(0xffffffffu, sum, offset);
      if (lane >= offset)
        sum += y;
    }
    if (lane < kWarps)
      s.warpTotals[lane] = sum - own;
    if (lane == kWarps - 1)
      s.warpTotals[32] = sum;
  }
  __syncthreads();
  const uint32_t result = s.warpTotals[warp] + inclusive - x;
  total = s.warpTotals[32];
  __syncthreads();
  return result;
}

/// Calls emit(position, i) for the min(k, n) best of keys[0, n) (larger
/// first, ties to the lower i), position counting them in index order.
/// keys in shared memory (16-byte aligned), k >= 1; every thread of the
/// block takes part. With `firstCounted`, s.histogram already counts
/// every key's top 8 bits (counted as the keys were made, visible after a
/// barrier): the first pass reads no key.
template <int Threads, typename Emit>
__device__ void keepBest(const uint32_t *keys, int n, int k, TopKShared &s,
                         const Emit &emit, bool firstCounted = false) {
  constexpr int kPerThread = 4;
  const int tid = threadIdx.x, lane = tid % 32;
  if (k >= n) {
    for (int i = tid; i < n; i += Threads)
      emit(i, i);
    return;
  }
  uint32_t prefix = 0, mask = 0, want = uint32_t(k);
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (!firstCounted || shift != 24) {
      for (int i = tid; i < 256; i += Threads)
        s.histogram[i] = 0;
      __syncthreads();
      // Four keys a thread in flight.
      for (int base = 0; base < n; base += kPerThread * Threads) {
        uint32_t key[kPerThread];
#pragma unroll
        for (int u = 0; u < kPerThread; ++u)
          key[u] = keys[min(base + u * Threads + tid, n - 1)];
#pragma unroll
        for (int u = 0; u < kPerThread; ++u) {
          const bool counts =
              base + u * Threads + tid < n && (key[u] & mask) == prefix;
          if (counts)
            atomicAdd(&s.histogram[(key[u] >> shift) & 0xffu], 1u);
        }
      }
    }
    __syncthreads();
    if (tid < 32) {
      // Lane l holds bins 255 - 8l down to 248 - 8l: the highest first.
      uint32_t bins[8], sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        bins[j] = s.histogram[255 - 8 * lane - j];
        sum += bins[j];
      }
      uint32_t inclusive = sum;
#pragma unroll
      for (int offset = 1; offset < 32; offset *= 2) {
        const uint32_t y = __shfl_up_sync(0xffffffffu, inclusive, offset);
        if (lane >= offset)
          inclusive += y;
      }
      uint32_t above = inclusive - sum;
      if (above < want && want <= inclusive) {
        // Exactly one lane: the k-th largest key's digit is in its bins.
        bool found = false;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (!found && above + bins[j] >= want) {
            s.prefix = prefix | (uint32_t(255 - 8 * lane - j) << shift);
            s.want = want - above;
            s.settled = above + bins[j] == want;
            found = true;
          }
          above += bins[j];
        }
      }
    }
    __syncthreads();
    prefix = s.prefix;
    want = s.want;
    mask |= 0xffu << shift;
    if (s.settled)
      break;
  }
  // The keys whose masked bits are above prefix are kept, and the first
  // `want` of those equal to it: with every bit masked, prefix is the k-th
  // largest key; where the passes ended early, all of its bin. Thread t
  // takes keys base + 4t .. base + 4t + 3, so a scan of the threads'
  // counts orders them by index; counts per pass fit 16 bits (4 Threads <=
  // 4096).
  const uint32_t threshold = prefix;
  uint32_t aboveSeen = 0, equalSeen = 0;
  for (int base = 0; base < n; base += kPerThread * Threads) {
    const int first = base + kPerThread * tid;
    uint32_t key[kPerThread];
    if (first + kPerThread <= n) {
      const uint4 four = *reinterpret_cast<const uint4 *>(keys + first);
      key[0] = four.x;
      key[1] = four.y;
      key[2] = four.z;
      key[3] = four.w;
    } else {
#pragma unroll
      for (int u = 0; u < kPerThread; ++u)
        key[u] = first + u < n ? keys[first + u] : 0u;
    }
    uint32_t above = 0, equal = 0;
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      key[u] &= mask;
      above += first + u < n && key[u] > threshold;
      equal += first + u < n && key[u] == threshold;
    }
    uint32_t total;
    const uint32_t before =
        blockExclusiveSum<Threads>(above << 16 | equal, s, total);
    uint32_t equalBefore = equalSeen + (before & 0xffffu);
    uint32_t aboveBefore = aboveSeen + (before >> 16);
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      if (first + u >= n)
        break;
      const bool isAbove = key[u] > threshold;
      const bool isEqual = key[u] == threshold;
      if (isAbove || (isEqual && equalBefore < want))
        emit(int(aboveBefore + min(equalBefore, want)), first + u);
      aboveBefore += isAbove;
      equalBefore += isEqual;
    }
    aboveSeen += total >> 16;
    equalSeen += total & 0xffffu;
  }
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_BLOCKTOPK_CUH
