//===- F32Runs.h - Runs of f32 entries scored and accumulated ---*- C++ -*-===//
//
// A cache's tail holds each KV head's newest entries as f32, one after
// another; a prefill's rows attend to hundreds or thousands of them. These
// kernels take a run of such entries at once, with the bits that the f32
// codec's score() and accumulate() give entry by entry (EntryLoops.h): the
// same products and sums in the same order, eight entries' lane sums
// reduced together, and accumulators held in registers across entries.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_F32RUNS_H
#define KVRT_CACHE_CODECS_F32RUNS_H

#include <cstdint>

namespace kvrt::codecs {

/// scores[h * scoreStride + t] = scale * (q_h . entries[t]) for `heads`
/// queries of n floats one after another and `count` entries of n floats
/// one after another.
void f32RunScores(const float *queries, int64_t heads, uint32_t n,
                  const float *entries, int64_t count, float scale,
                  float *scores, int64_t scoreStride);

/// acc[h * n + d] += weights[h * weightStride + t] * entries[t][d] for
/// `heads` rows, t from 0 to count - 1 in that order.
void f32RunAccumulate(const float *weights, int64_t weightStride, int64_t heads,
                      const float *entries, int64_t count, uint32_t n,
                      float *acc);

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_F32RUNS_H
