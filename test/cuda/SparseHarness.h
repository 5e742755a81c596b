//===- SparseHarness.h - kvrt-cuda-sparse's parts ---------------*- C++ -*-===//
//
// kvrt-cuda-sparse checks two-level sparse selection and attention on the
// GPU (runtime/src/backends/cuda/SparseSelect.h) against the CPU backend
// (SparseCheck.cpp), then times them at the Llama-3-8B attention shape
// against dense decode attention on the same cache (SparseBench.cpp). It
// runs on the GPU machine (scripts/gpu-bench.sh sparse); Harness.h's
// helpers (CUDA_OK, orDie, median, copyBandwidth, fillBf16) serve it too.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TEST_CUDA_SPARSEHARNESS_H
#define KVRT_TEST_CUDA_SPARSEHARNESS_H

#include "Harness.h"

#include <string>
#include <vector>

namespace kvrt::cuda::test {

/// Returns the number of failed cases.
int runSparseChecks(uint32_t multiprocessors);
/// What the benchmark times: caches by name (bf16, fp8, polar4) and points
/// as "BxL"; empty: all of them.
struct SparseBenchOnly {
  std::vector<std::string> caches, points;
};
/// Prints the timing table.
void runSparseBench(uint32_t multiprocessors, int reps,
                    const SparseBenchOnly &only);

} // namespace kvrt::cuda::test

#endif // KVRT_TEST_CUDA_SPARSEHARNESS_H
