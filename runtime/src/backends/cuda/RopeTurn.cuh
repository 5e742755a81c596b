//===- RopeTurn.cuh - RoPE's rotation of one pair, as every kernel does it ===//
//
// The rope kernel and an append that rotates its keys itself (a folded rope
// step, Append.h) share this arithmetic, so that a key is rotated to the
// same float whichever kernel did it: the angle in double, as the CPU
// kernel, then cos and sin times the attention factor rounded to float.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_ROPETURN_CUH
#define KVRT_BACKENDS_CUDA_ROPETURN_CUH

#include <cstdint>

namespace kvrt::cuda {

struct RopeTurn {
  float cos, sin;
};

/// Pair p's turn at `position`.
__device__ inline RopeTurn ropeTurn(int32_t position, const double *inverse,
                                    uint32_t p, double factor) {
  double s, c;
  sincos(double(position) * inverse[p], &s, &c);
  return {float(c * factor), float(s * factor)};
}

/// The rotated pair (x1, x2): its first and its second coordinate.
__device__ inline float ropeFirst(float x1, float x2, RopeTurn t) {
  return x1 * t.cos - x2 * t.sin;
}
__device__ inline float ropeSecond(float x1, float x2, RopeTurn t) {
  return x2 * t.cos + x1 * t.sin;
}

/// Coordinate i of a head of `headDim` values at `head`, rotated: pairs
/// (p, p + half), or (2p, 2p + 1) when `interleaved`.
__device__ inline float ropedCoordinate(const float *head, uint32_t i,
                                        uint32_t headDim, int32_t position,
                                        const double *inverse, double factor,
                                        bool interleaved) {
  const uint32_t half = headDim / 2;
  const uint32_t p = interleaved ? i / 2 : i % half;
  const uint32_t first = interleaved ? 2 * p : p;
  const uint32_t second = first + (interleaved ? 1 : half);
  const RopeTurn t = ropeTurn(position, inverse, p, factor);
  const float x1 = head[first], x2 = head[second];
  return i == first ? ropeFirst(x1, x2, t) : ropeSecond(x1, x2, t);
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_ROPETURN_CUH
