//===- Elementwise.cpp - SwiGLU and residual additions --------------------===//
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <cmath>

namespace kvrt::cpu {
namespace {
/// Below this many values a thread hand-off costs more than the work.
constexpr int64_t kGrain = 1 << 14;
} // namespace

void swiglu(ThreadPool &pool, const float *gate, const float *up, int64_t n,
            float *out) {
  pool.parallelFor(n, kGrain, [&](int64_t begin, int64_t end, unsigned) {
    for (int64_t i = begin; i < end; ++i)
      out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  });
}

void add(ThreadPool &pool, const float *a, const float *b, int64_t n,
         float *out) {
  pool.parallelFor(n, kGrain, [&](int64_t begin, int64_t end, unsigned) {
    for (int64_t i = begin; i < end; ++i)
      out[i] = a[i] + b[i];
  });
}

} // namespace kvrt::cpu
