//===- Embedding.cpp - Token embedding lookup -----------------------------===//
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <cstring>

namespace kvrt::cpu {

void embedding(ThreadPool &pool, const float *table, int64_t hidden,
               const int32_t *tokens, int64_t rows, float *out) {
  pool.parallelFor(rows, std::max<int64_t>(1, (1 << 14) / hidden),
                   [&](int64_t begin, int64_t end, unsigned) {
                     for (int64_t r = begin; r < end; ++r)
                       std::memcpy(out + r * hidden,
                                   table + int64_t(tokens[r]) * hidden,
                                   size_t(hidden) * sizeof(float));
                   });
}

} // namespace kvrt::cpu
