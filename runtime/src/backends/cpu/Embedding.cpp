//===- Embedding.cpp - Token embedding lookup -----------------------------===//
#include "kvrt/Artifact.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

namespace kvrt::cpu {

void embedding(ThreadPool &pool, WeightView table, int64_t hidden,
               const int32_t *tokens, int64_t rows, float *out) {
  // A row's bytes: validated artifacts hold whole blocks per row.
  const uint64_t rowBytes = tensorBytes(table.dtype, uint64_t(hidden));
  const uint8_t *bytes = static_cast<const uint8_t *>(table.data);
  pool.parallelFor(rows, std::max<int64_t>(1, (1 << 14) / hidden),
                   [&](int64_t begin, int64_t end, unsigned) {
                     for (int64_t r = begin; r < end; ++r)
                       decodeValues(table.dtype,
                                    bytes + int64_t(tokens[r]) * rowBytes,
                                    uint64_t(hidden), out + r * hidden);
                   });
}

} // namespace kvrt::cpu
