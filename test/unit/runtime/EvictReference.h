//===- EvictReference.h - float64 definitions of the eviction scores -*- C++
//-*-===//
//
// What the eviction tests compare with: TriAttention's score by its
// definition (docs/eviction.md), summed over the distance grid term by term
// on keys un-rotated in double, and the random inputs it is checked on.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TEST_EVICTREFERENCE_H
#define KVRT_TEST_EVICTREFERENCE_H

#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/evict/Scores.h"

#include <cstdint>
#include <vector>

namespace kvrt::test {

/// n normal samples of deviation `sigma`.
std::vector<float> gaussians(size_t n, uint32_t seed, double sigma = 1.0);

/// RoPE frequencies of theta 10000 with `scaling` (factor 4, Llama 3's and
/// YaRN's usual settings over 2048 positions).
cpu::RopeFrequencies frequencies(schema::RopeScalingKind scaling,
                                 bool interleaved, int64_t headDim);

/// Centres with non-zero means and E|q_f| >= |E q_f|.
std::vector<evict::QueryCentre> randomCentres(int64_t heads, int64_t half,
                                              uint32_t seed);

/// TriAttention by its definition, in float64: un-rotates the cached key
/// stored at `p`, then sums over the grid and the frequencies for a query
/// at `t`, aggregated over `centres`.
double referenceTriAttention(const cpu::RopeFrequencies &freqs, int64_t d,
                             const std::vector<evict::QueryCentre> &centres,
                             int64_t t, const std::vector<double> &grid,
                             const float *cached, int32_t p,
                             evict::HeadAggregation aggregation);

} // namespace kvrt::test

#endif // KVRT_TEST_EVICTREFERENCE_H
