//===- Simd.h - Portable eight-lane vectors for the CPU kernels -*- C++ -*-===//
//
// GCC and Clang vector extensions: one source that compiles to SSE on
// baseline x86-64, to AVX2 + FMA in the clones KVRT_MULTIVERSION asks for
// (chosen at load time from the host's CPU), and to NEON on Arm. Lanes are
// computed independently, so a kernel that always puts a value in the same
// lane gets the same bits whatever else it computes.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_SIMD_H
#define KVRT_BACKENDS_CPU_SIMD_H

#include <cstring>

// Vec8 values are passed only between inlined functions of one kernel: no
// ABI crosses a boundary, whatever a clone's instruction set.
#pragma GCC diagnostic ignored "-Wpsabi"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KVRT_MULTIVERSION                                                      \
  __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KVRT_MULTIVERSION
#endif

// Helpers a KVRT_MULTIVERSION function calls must be inlined into each of
// its clones, to run in the clone's instruction set.
#define KVRT_INLINE __attribute__((always_inline)) inline

namespace kvrt::cpu {

typedef float Vec8 __attribute__((vector_size(32)));
constexpr int kLanes = 8;

inline Vec8 load8(const float *p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

/// Four doubles: where each lane sums its own item term by term in the
/// order a scalar loop would, the sums keep a float64 evaluation's bits.
typedef double Vec4d __attribute__((vector_size(32)));
constexpr int kDoubleLanes = 4;

inline Vec4d load4d(const double *p) {
  Vec4d v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

/// Sums the lanes in a fixed order.
inline float reduce8(Vec8 a) {
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_SIMD_H
