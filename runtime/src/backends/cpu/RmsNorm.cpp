//===- RmsNorm.cpp - RMSNorm ----------------------------------------------===//
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <cmath>

namespace kvrt::cpu {

void rmsNorm(ThreadPool &pool, const float *x, int64_t rows, int64_t dim,
             const float *weight, float epsilon, float *y) {
  pool.parallelFor(rows, std::max<int64_t>(1, 4096 / dim),
                   [&](int64_t begin, int64_t end, unsigned) {
                     for (int64_t r = begin; r < end; ++r) {
                       const float *xr = x + r * dim;
                       // The mean square in double: it costs nothing next to
                       // the projections and keeps wide rows exact.
                       double sum = 0;
                       for (int64_t i = 0; i < dim; ++i)
                         sum += double(xr[i]) * xr[i];
                       float inv =
                           float(1.0 / std::sqrt(sum / double(dim) + epsilon));
                       float *yr = y + r * dim;
                       for (int64_t i = 0; i < dim; ++i)
                         yr[i] = xr[i] * inv * weight[i];
                     }
                   });
}

} // namespace kvrt::cpu
