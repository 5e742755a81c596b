//===- Elementwise.cpp - SwiGLU and residual additions --------------------===//
#include "runtime/src/backends/cpu/Exp.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <algorithm>

namespace kvrt::cpu {
namespace {
/// Below this many values a thread hand-off costs more than the work.
constexpr int64_t kGrain = 1 << 14;
/// SwiGLU's exponentials taken together (Exp.h), on the stack.
constexpr int64_t kExpChunk = 256;
} // namespace

void swiglu(ThreadPool &pool, const float *gate, const float *up, int64_t n,
            float *out) {
  pool.parallelFor(n, kGrain, [&](int64_t begin, int64_t end, unsigned) {
    float e[kExpChunk];
    for (int64_t first = begin; first < end; first += kExpChunk) {
      const int64_t count = std::min(kExpChunk, end - first);
      for (int64_t i = 0; i < count; ++i)
        e[i] = -gate[first + i];
      // e^(-g - 0) is e^-g: subtracting zero changes no value.
      expShifted(e, count, 0.0f, e);
      for (int64_t i = 0; i < count; ++i)
        out[first + i] = gate[first + i] / (1.0f + e[i]) * up[first + i];
    }
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
