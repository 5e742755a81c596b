//===- TensorCoreOps.cuh - mma.sync and ldmatrix over bf16 tiles -*- CUDA
//-*-===//
//
// The primitives of the kernels that keep bf16 tiles of rows in shared
// memory and multiply them with mma.sync.m16n8k16 (fp32 accumulators),
// with the lane map of the PTX ISA (g = lane / 4, t = lane % 4): the
// prefill attention (PrefillAttention.cu) and SnapKV's scores
// (EvictSnapKv.cu).
//
// A tile row holds D bf16 values as D / 8 chunks of 16 bytes, chunk c of
// row r stored at c ^ (r % 8) within its row, so that ldmatrix's eight
// rows of one chunk meet eight distinct bank groups.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_TENSORCOREOPS_CUH
#define KVRT_BACKENDS_CUDA_TENSORCOREOPS_CUH

#include "runtime/src/backends/cuda/AsyncCopy.cuh"

#include <cuda_bf16.h>

#include <cstdint>

namespace kvrt::cuda {

/// (lo, hi) rounded to a bf16 pair, lo in the low half.
__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

/// c += A B: a[0..3] rows g and g + 8 at k 2t, 2t + 1, then the same rows
/// at k 2t + 8, 2t + 9; b0, b1 column g at k 2t, 2t + 1 and 2t + 8, 2t + 9.
__device__ __forceinline__ void mmaBf16(float (&c)[4], const uint32_t (&a)[4],
                                        uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Four 8x8 matrices of 16-bit values, matrix i from the rows whose
/// addresses lanes 8i .. 8i + 7 give.
__device__ __forceinline__ void ldmatrix4(uint32_t (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, "
               "[%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddress(p)));
}

__device__ __forceinline__ void ldmatrix4Trans(uint32_t (&r)[4],
                                               const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
               "{%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddress(p)));
}

/// Byte offset of chunk `c` (8 values) of row `r` in a tile of D-value rows.
template <int D> __device__ __forceinline__ int swizzled(int r, int c) {
  return r * D * 2 + ((c ^ (r & 7)) << 4);
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_TENSORCOREOPS_CUH
