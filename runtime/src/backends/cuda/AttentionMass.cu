//===- AttentionMass.cu - H2O's sums from the decode attention's weights --===//
//
// H2O scores an entry by the attention it has received. The split kernels
// already hold each split's weights 2^(s - m_split) (SplitBlock::softmax()
// leaves them in global memory on request); a row's softmax weight of an
// entry is that times 2^(m_split - M) / S, with M and S the maximum and
// sum the merge combines from every split's (m, sum). One block per
// (split, KV head, row) computes the group's factors once and adds, per
// entry, the group's normalised weights to the entry's mass, so the
// attention is never computed twice. atomicAdd: rows of one sequence may
// share a launch.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/DecodeKernels.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    attentionMassKernel(const AttentionMassArgs p) {
  const int split = blockIdx.x, kvHead = blockIdx.y, b = blockIdx.z;
  const int group = int(p.qHeads / p.kvHeads);
  const int start = split * int(p.splitTokens);
  const int end = min(start + int(p.splitTokens), p.lengths[b]);
  if (start >= end)
    return;
  const size_t firstRow = size_t(b) * p.qHeads + size_t(kvHead) * group;
  // factor[g]: what turns head g's split weights into softmax weights.
  __shared__ float factor[8];
  if (threadIdx.x < group) {
    float f = 1.0f;
    if (p.splits > 1) {
      const float *maxSum =
          p.partialMaxSum + (firstRow + threadIdx.x) * p.splits * 2;
      float most = -INFINITY;
      for (uint32_t s = 0; s < p.splits; ++s)
        most = fmaxf(most, maxSum[2 * s]);
      float sum = 0.0f;
      for (uint32_t s = 0; s < p.splits; ++s)
        if (maxSum[2 * s] != -INFINITY)
          sum += maxSum[2 * s + 1] * exp2f(maxSum[2 * s] - most);
      const float own = maxSum[2 * split];
      f = sum > 0.0f && own != -INFINITY ? exp2f(own - most) / sum : 0.0f;
    }
    factor[threadIdx.x] = f;
  }
  __syncthreads();
  const int32_t *table =
      p.pageTables +
      size_t(p.tableRows ? p.tableRows[b] : b) * p.pageTableStride;
  const int pageSize = int(p.pageSize);
  for (int i = start + threadIdx.x; i < end; i += kThreads) {
    float sum = 0.0f;
    for (int g = 0; g < group; ++g)
      sum += p.weights[(firstRow + g) * p.weightsStride + i] * factor[g];
    const int page = i / pageSize;
    if (sum > 0.0f)
      atomicAdd(p.mass + (size_t(table[page]) * p.kvHeads + kvHead) * pageSize +
                    (i - page * pageSize),
                sum);
  }
}

} // namespace

bool launchAttentionMass(const AttentionMassArgs &args, cudaStream_t stream) {
  if (!args.batch)
    return true;
  attentionMassKernel<<<dim3(args.splits, args.kvHeads, args.batch), kThreads,
                        0, stream>>>(args);
  return cudaPeekAtLastError() == cudaSuccess;
}

} // namespace kvrt::cuda
