//===- Kernels.h - The CPU reference kernels --------------------*- C++ -*-===//
//
// fp32 kernels over row-major activations. Each output element is computed
// by one thread in an order that does not depend on the number of rows, the
// thread count or the page size, so a token's results do not depend on
// what else is in the batch.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_KERNELS_H
#define KVRT_BACKENDS_CPU_KERNELS_H

#include "runtime/schema/kvpkg.pb.h"

#include <cstdint>
#include <vector>

namespace kvrt {
class PagedCache;
}

namespace kvrt::cpu {

class ThreadPool;

/// y[r, o] = bias[o] + sum_i x[r, i] w[o, i]; `bias` may be null.
void linear(ThreadPool &pool, const float *x, int64_t rows, int64_t in,
            const float *w, int64_t out, const float *bias, float *y);

/// Normalises each of `rows` vectors of `dim` values by its RMS, then scales
/// by `weight`.
void rmsNorm(ThreadPool &pool, const float *x, int64_t rows, int64_t dim,
             const float *weight, float epsilon, float *y);

/// Per-pair rotation frequencies of one RoPE configuration.
struct RopeFrequencies {
  std::vector<double> inverse;
  /// YaRN's factor on cos and sin; 1 otherwise.
  double attentionFactor = 1.0;
  bool interleaved = false;
};

/// The frequencies of `rope` for heads of `headDim` values, with its
/// scaling applied as Hugging Face's modeling_rope_utils computes them.
RopeFrequencies ropeFrequencies(const schema::Rope &rope, int64_t headDim);

/// Rotates each head of x [rows, heads, headDim] by positions[row].
void rope(ThreadPool &pool, const RopeFrequencies &freqs, const float *x,
          int64_t rows, int64_t heads, int64_t headDim,
          const int32_t *positions, float *y);

/// How a cache layer stores keys or values.
enum class CacheElement { F32, BF16 };

/// Bytes of one element stored as `element`.
inline uint32_t cacheElementBytes(CacheElement element) {
  return element == CacheElement::F32 ? 4 : 2;
}

/// Stores keys and values [rows, kvHeads, headDim] of each row's sequence
/// and position into `layer` of `cache`; room must have been reserved.
void append(PagedCache &cache, uint32_t layer, CacheElement keyElement,
            CacheElement valueElement, const float *keys, const float *values,
            int64_t rows, int64_t headDim, const uint64_t *sequences,
            const int32_t *positions);

/// Parameters of attention() besides its operands.
struct AttentionParams {
  uint32_t layer = 0;
  CacheElement keyElement = CacheElement::F32;
  CacheElement valueElement = CacheElement::F32;
  float scale = 1.0f;
  /// 0: unbounded.
  int64_t slidingWindow = 0;
};

/// Causal grouped-query attention of q [rows, qHeads, headDim] over the
/// cached entries of each row's sequence whose stored position is at most
/// the row's position (and within the window). `scratch` holds one buffer
/// per pool thread.
void attention(ThreadPool &pool, const PagedCache &cache,
               const AttentionParams &params, const float *q, int64_t rows,
               int64_t qHeads, int64_t headDim, const uint64_t *sequences,
               const int32_t *positions, float *out,
               std::vector<std::vector<float>> &scratch);

/// out = silu(gate) * up over n values.
void swiglu(ThreadPool &pool, const float *gate, const float *up, int64_t n,
            float *out);

/// out = a + b over n values.
void add(ThreadPool &pool, const float *a, const float *b, int64_t n,
         float *out);

/// Copies row tokens[r] of table [vocab, hidden] to out[r]; token ids must
/// be in range.
void embedding(ThreadPool &pool, const float *table, int64_t hidden,
               const int32_t *tokens, int64_t rows, float *out);

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_KERNELS_H
