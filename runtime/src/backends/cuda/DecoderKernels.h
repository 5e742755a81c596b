//===- DecoderKernels.h - The decoder's kernels besides attention -*- C++
//-*-===//
//
// What the CPU kernels of the same names compute (backends/cpu/Kernels.h),
// on fp32 activations in device memory: embedding rows from a bf16 table,
// RMSNorm, RoPE, SwiGLU, residual additions, the conversion of
// activations to bf16 for the projections (cuBLASLt, Gemm.h), greedy
// tokens from logits, and a synthetic model's weights. Each returns
// whether its launch was accepted, and leaves a refused launch's error for
// the caller's cudaGetLastError(), which names it.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_DECODERKERNELS_H
#define KVRT_BACKENDS_CUDA_DECODERKERNELS_H

#include <cstdint>

typedef struct CUstream_st *cudaStream_t;

namespace kvrt::cuda {

/// out[r] = table[tokens[r]] for rows r; table [vocab][width] bf16.
bool launchEmbedding(const uint16_t *table, int64_t width,
                     const int32_t *tokens, int64_t rows, float *out,
                     cudaStream_t stream);

/// y = x / rms(x) * weight per row of `dim` values; the mean square in
/// double, as the CPU kernel. With `yBf16`, y rounded to bf16 there too
/// (for the projections that read it). With `residual`, x + residual
/// first, written to `added` (a residual add and the norm that reads its
/// sum, in one pass). A row is held in one block's registers: `dim` at
/// most kNormMaxDim.
constexpr int64_t kNormMaxDim = 8 * 1024;
bool launchRmsNorm(const float *x, const float *residual, float *added,
                   int64_t rows, int64_t dim, const float *weight,
                   float epsilon, float *y, uint16_t *yBf16,
                   cudaStream_t stream);

/// Rotates each head of x [rows][heads][headDim] (rows `xStride` values
/// apart: a fused projection's columns) by positions[row] into y (rows
/// heads * headDim apart), pairs (p, p + half) or (2p, 2p + 1) when
/// `interleaved`; inverse frequencies [headDim / 2] in double, cos and sin
/// times `attentionFactor`.
bool launchRope(const float *x, int64_t xStride, int64_t rows, int64_t heads,
                int64_t headDim, const int32_t *positions,
                const double *inverseFrequencies, double attentionFactor,
                bool interleaved, float *y, cudaStream_t stream);

/// out = gate * sigmoid(gate) * up for [rows][width] values, gate's and
/// up's rows `gateStride` and `upStride` values apart, out's `width`; with
/// `outBf16`, rounded to bf16 there too.
bool launchSwiglu(const float *gate, int64_t gateStride, const float *up,
                  int64_t upStride, int64_t rows, int64_t width, float *out,
                  uint16_t *outBf16, cudaStream_t stream);

/// out = a + b, elementwise.
bool launchAdd(const float *a, const float *b, int64_t n, float *out,
               cudaStream_t stream);

/// out[i] = bf16(x[rows[i]]) for i < count, rows of `width` values; rows
/// null: out = bf16(x) for `count` rows.
bool launchRowsToBf16(const float *x, const uint32_t *rows, int64_t count,
                      int64_t width, uint16_t *out, cudaStream_t stream);

/// out[r] = kvrt::greedyToken() of row r's `width` values, for `rows`
/// rows: greedy decoding's tokens without the logits leaving the device.
bool launchRowArgmax(const float *x, int64_t rows, int64_t width, int32_t *out,
                     cudaStream_t stream);

/// The values of a synthetic tensor (artifact/Synthetic.h): `count`
/// elements as bf16 (`bf16`) or f32; `step` is bound * 2^-23, or 0 for the
/// constant.
bool launchSynthetic(uint64_t seed, float step, float constant, uint64_t count,
                     bool bf16, void *out, cudaStream_t stream);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_DECODERKERNELS_H
