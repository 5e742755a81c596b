//===- EvictSelect.cu - The budget's best entries, on the device ----------===//
//
// One block of 1024 threads per (selection row, sequence): TriAttention's
// scores standardised per KV head as cpu::LayerEviction does (mean and
// deviation of the finite scores in double), combined over the heads for a
// shared selection as evict::selectKept() does (the mean in double, NaN as
// -inf), written to the workspace; then the k-th largest evict::rankKey()
// of the candidates by a radix select, eight bits a pass from the top, and
// the kept indices (sinks, the k best candidates, the recent window)
// written ascending by a block-wide scan. EvictKernels.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/evict/RankKey.h"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 1024;
/// KV heads a standardised selection holds statistics for.
constexpr uint32_t kMaxHeads = 64;

struct Workspace {
  float *scores, *combined;
  int32_t *kept;
};

Workspace workspaceOf(const EvictLaunch &p) {
  const size_t rows = size_t(p.count) * p.cache.kvHeads;
  char *base = static_cast<char *>(p.workspace);
  float *scores = reinterpret_cast<float *>(base);
  float *combined = scores + rows * p.maxLength;
  return {scores, combined,
          reinterpret_cast<int32_t *>(combined + rows * p.maxLength)};
}

struct Moments {
  double sum = 0, squares = 0, finite = 0;
};
struct AddMoments {
  __device__ Moments operator()(const Moments &a, const Moments &b) const {
    return {a.sum + b.sum, a.squares + b.squares, a.finite + b.finite};
  }
};

__global__ void __launch_bounds__(kThreads)
    selectKernel(EvictLaunch p, Workspace w, bool standardise) {
  using Reduce = cub::BlockReduce<Moments, kThreads>;
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ union {
    typename Reduce::TempStorage reduce;
    typename Scan::TempStorage scan;
  } temp;
  __shared__ double mean[kMaxHeads], deviation[kMaxHeads];
  __shared__ unsigned histogram[256];
  __shared__ uint64_t prefix;
  __shared__ unsigned remaining;
  __shared__ int written;
  const EvictSequence s = p.sequences[blockIdx.y];
  const int heads = int(p.cache.kvHeads), row = blockIdx.x;
  const int n = s.length, tid = threadIdx.x;
  const float *scores = w.scores + size_t(blockIdx.y) * heads * p.maxLength;
  float *combined =
      w.combined + (size_t(blockIdx.y) * heads + row) * p.maxLength;
  const int firstHead = p.shared ? 0 : row;
  const int lastHead = p.shared ? heads : row + 1;
  for (int h = firstHead; h < lastHead; ++h) {
    // Unchanged (deviation 0) unless two finite scores spread.
    if (!standardise) {
      if (tid == 0)
        deviation[h] = 0;
      continue;
    }
    Moments local;
    for (int i = tid; i < n; i += kThreads) {
      const double v = scores[size_t(h) * p.maxLength + i];
      if (isfinite(v))
        local = {local.sum + v, local.squares + v * v, local.finite + 1};
    }
    const Moments total = Reduce(temp.reduce).Reduce(local, AddMoments());
    if (tid == 0) {
      deviation[h] = 0;
      if (total.finite >= 2) {
        // As the CPU has it, without fused multiply-adds.
        mean[h] = total.sum / total.finite;
        deviation[h] = sqrt(fmax(0.0, __dsub_rn(total.squares / total.finite,
                                                __dmul_rn(mean[h], mean[h]))));
      }
    }
    __syncthreads();
  }
  __syncthreads();
  auto value = [&](int h, int i) {
    const float v = scores[size_t(h) * p.maxLength + i];
    return deviation[h] > 0 ? float((double(v) - mean[h]) / deviation[h]) : v;
  };
  for (int i = tid; i < n; i += kThreads) {
    if (!p.shared) {
      combined[i] = value(row, i);
      continue;
    }
    double sum = 0;
    for (int h = 0; h < heads; ++h) {
      const float v = value(h, i);
      sum += isnan(v) ? -double(INFINITY) : double(v);
    }
    combined[i] = float(sum / double(heads));
  }
  if (tid == 0) {
    prefix = 0;
    remaining = unsigned(s.free);
    written = 0;
  }
  __syncthreads();
  // The k-th largest key of the candidates [sinks, recentStart).
  uint64_t mask = 0;
  for (int shift = 56; s.free > 0 && shift >= 0; shift -= 8) {
    for (int b = tid; b < 256; b += kThreads)
      histogram[b] = 0;
    __syncthreads();
    const uint64_t want = prefix;
    for (int i = s.sinks + tid; i < s.recentStart; i += kThreads) {
      const uint64_t key = evict::rankKey(combined[i], uint32_t(i));
      if ((key & mask) == want)
        atomicAdd(&histogram[(key >> shift) & 255], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      unsigned need = remaining;
      for (int digit = 255; digit >= 0; --digit) {
        if (histogram[digit] >= need) {
          prefix = want | uint64_t(digit) << shift;
          remaining = need;
          break;
        }
        need -= histogram[digit];
      }
    }
    mask |= uint64_t(255) << shift;
    __syncthreads();
  }
  const uint64_t threshold = prefix;
  int32_t *kept = w.kept + (size_t(blockIdx.y) * heads + row) * p.maxKept;
  for (int base = 0; base < n; base += kThreads) {
    const int i = base + tid;
    const bool keep =
        i < n &&
        (i < s.sinks || i >= s.recentStart ||
         (s.free > 0 && evict::rankKey(combined[i], uint32_t(i)) >= threshold));
    int at = 0, total = 0;
    Scan(temp.scan).ExclusiveSum(int(keep), at, total);
    if (keep)
      kept[written + at] = i;
    __syncthreads();
    if (tid == 0)
      written += total;
    __syncthreads();
  }
}

} // namespace

size_t evictWorkspaceBytes(uint32_t count, uint32_t kvHeads, uint32_t maxLength,
                           uint32_t maxKept) {
  const size_t rows = size_t(count) * kvHeads;
  return rows * (2 * size_t(maxLength) * sizeof(float) +
                 size_t(maxKept) * sizeof(int32_t));
}

const int32_t *keptIndices(const EvictLaunch &launch) {
  return workspaceOf(launch).kept;
}

Status selectEntries(const EvictLaunch &p, cudaStream_t stream) {
  if (!p.count)
    return Status::ok();
  if (p.cache.kvHeads > kMaxHeads)
    return Status::error("the GPU's eviction selects over at most " +
                         std::to_string(kMaxHeads) + " KV heads a layer");
  const dim3 grid(p.shared ? 1 : p.cache.kvHeads, p.count);
  selectKernel<<<grid, kThreads, 0, stream>>>(
      p, workspaceOf(p), p.scoring == EvictScoring::TriAttention);
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the eviction selection", e);
  return Status::ok();
}

} // namespace kvrt::cuda
