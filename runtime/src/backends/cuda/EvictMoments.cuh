//===- EvictMoments.cuh - Scores standardised as the CPU does -*- CUDA -*-===//
//
// TriAttention's scores are standardised per row (evict::standardise():
// mean 0, deviation 1 over the row's finite scores) before heads combine.
// The kernel that writes a row's scores also writes, per tile, the double
// sum, sum of squares and count of its finite scores; whoever standardises
// adds the tiles' moments in a fixed order, so every block gets the same
// mean and deviation, and does the CPU's arithmetic on them.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_EVICTMOMENTS_CUH
#define KVRT_BACKENDS_CUDA_EVICTMOMENTS_CUH

#include <cstdint>

namespace kvrt::cuda {

struct Moments {
  double sum = 0, squares = 0, finite = 0;
};
struct AddMoments {
  __device__ Moments operator()(const Moments &a, const Moments &b) const {
    return {a.sum + b.sum, a.squares + b.squares, a.finite + b.finite};
  }
};

/// Adds a finite score to `m`.
__device__ __forceinline__ void addScore(Moments &m, float score) {
  const double v = score;
  if (isfinite(v))
    m = {m.sum + v, m.squares + v * v, m.finite + 1};
}

/// A row's mean and deviation; a deviation of 0 leaves scores unchanged
/// (fewer than two finite scores, or no spread). An aggregate, so that
/// shared memory may hold it.
struct Standardisation {
  double mean, deviation;
  __device__ float operator()(float v) const {
    return deviation > 0 ? float((double(v) - mean) / deviation) : v;
  }
};

/// The standardisation of a row from `tiles` tiles' moments ([tiles][3]),
/// without fused multiply-adds, as evict::standardise().
__device__ inline Standardisation standardisationOf(const double *moments,
                                                    uint32_t tiles) {
  double sum = 0, squares = 0, finite = 0;
  for (uint32_t t = 0; t < tiles; ++t) {
    sum += moments[3 * t];
    squares += moments[3 * t + 1];
    finite += moments[3 * t + 2];
  }
  Standardisation s{0, 0};
  if (finite >= 2) {
    s.mean = sum / finite;
    s.deviation =
        sqrt(fmax(0.0, __dsub_rn(squares / finite, __dmul_rn(s.mean, s.mean))));
  }
  return s;
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_EVICTMOMENTS_CUH
