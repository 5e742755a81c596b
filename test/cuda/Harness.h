//===- Harness.h - kvrt-cuda-attention's parts ------------------*- C++ -*-===//
//
// kvrt-cuda-attention checks decode attention on the GPU against
// cpu::attention (AttentionCheck.cpp), and prefill, appends, greedy
// tokens, norms and eviction against the CPU's (one *Check.cpp each), then
// times decode attention at the Llama-3-8B attention shape against the
// device's copy bandwidth (AttentionBench.cpp).
// It runs on the GPU machine (scripts/gpu-bench.sh).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TEST_CUDA_HARNESS_H
#define KVRT_TEST_CUDA_HARNESS_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/EvictKernels.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

/// Exits with the failing call and its error.
#define CUDA_OK(call)                                                          \
  do {                                                                         \
    cudaError_t error_ = (call);                                               \
    if (error_ != cudaSuccess) {                                               \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,       \
                   #call, cudaGetErrorString(error_));                         \
      std::exit(2);                                                            \
    }                                                                          \
  } while (false)

namespace kvrt::cuda::test {

/// The value, or exits with the error's sentence.
template <typename T> T orDie(StatusOr<T> value) {
  if (!value) {
    std::fprintf(stderr, "%s\n", value.status().message().c_str());
    std::exit(2);
  }
  return std::move(*value);
}

inline void orDie(const Status &status) {
  if (!status) {
    std::fprintf(stderr, "%s\n", status.message().c_str());
    std::exit(2);
  }
}

/// The median of `v` (the upper one of an even count).
float median(std::vector<float> v);

/// GB/s of a device-to-device copy of 1 GiB, counting reads and writes.
double copyBandwidth();

/// An encoding of `kind` as the checks use it: fp8 E4M3 with `mode`,
/// polar of `bits` with a Hadamard rotation (seed 7), KIVI of `bits` in
/// groups of 32 tokens (4 bits) or 64 (2).
schema::Encoding
testEncoding(schema::EncodingKind kind, uint32_t bits = 0,
             schema::ScaleMode mode = schema::SCALE_MODE_DYNAMIC);

/// Returns the number of failed checks.
int runChecks(uint32_t multiprocessors);
/// Prefill attention against cpu::attention; the number of failed checks.
int runPrefillChecks();
/// Quantize-on-append against the CPU codecs; the number of failed checks.
int runAppendChecks();
/// Greedy tokens on the device against kvrt::greedyToken; the number of
/// failed checks.
int runArgmaxChecks();
/// RMSNorm (and the residual add it folds in) against cpu::rmsNorm; the
/// number of failed checks.
int runNormChecks();
/// Eviction's scores, selection and compaction against the CPU's on the
/// same cached bytes (EvictCheck.cpp); the number of failed checks.
int runEvictChecks();
/// Prints the timing table, of the encoding named `only` if not empty.
/// Times decode attention in pages of `pageSize` tokens (KIVI's: a
/// multiple of its group of 32).
void runBench(uint32_t multiprocessors, int reps, const std::string &only,
              uint32_t pageSize);

/// Times eviction's kernels (scores, selection, compaction) of one layer
/// at B = 8, L = 32K, the Llama-3-8B shape, beside one decode step's
/// attention over the same bf16 cache.
void runEvictBench(uint32_t multiprocessors, int reps);

/// H2O's run of `rows` rows from one upload: `ints` holds their lengths,
/// then their positions, then their page table rows (device memory).
inline H2oRows h2oRun(const float *queries, uint64_t queryStride,
                      const int32_t *ints, uint32_t rows, uint32_t maxLength) {
  H2oRows run;
  run.queries = queries;
  run.queryStride = queryStride;
  run.rowLengths = ints;
  run.rowPositions = ints + rows;
  run.rowTables = ints + 2 * rows;
  run.rows = rows;
  run.maxLength = maxLength;
  return run;
}

/// Fills device memory with bf16 values in [-2, 2) (FillPool.cu).
void fillBf16(void *pool, uint64_t bytes, uint64_t seed);
/// Fills one side's pool of `pages` pages, `kvHeads` areas of `side` each,
/// with valid random entries (FillPool.cu): bf16 values (also KIVI's and
/// low-rank latents' areas: every two bytes a finite f16 or bf16 below 2
/// in magnitude); fp8 codes other than NaN (nvfp4's block scales too, and
/// any nibble is a code); polar's codes any bytes; then positive scales,
/// f32 for fp8 and `half` for polar, where the layout keeps them. Codes
/// draw on `seed`, scales on seed + 2.
void fillSide(void *pool, const DeviceSideLayout &side, uint64_t pages,
              uint32_t kvHeads, uint32_t pageSize, uint64_t seed);

/// A benchmark's decode batch: `batch` rows of `length` tokens on a random
/// draw of a pool's `poolPages` pages of `pageSize` tokens, each row's page
/// table (tables[b * length / pageSize + i]) and normal random queries
/// ([batch][qHeads][headDim]) kept here and on the device beside the rows'
/// lengths, their query positions (length - 1) and an output the size of
/// the queries. benchRows() also writes the position each slot of the
/// pool holds (-1 where none) to `positions` ([poolPages][pageSize]).
struct BenchRows {
  std::vector<int32_t> tables;
  std::vector<float> q;
  DeviceBuffer tablesDevice, lengths, queryPositions, qDevice, out;
};
BenchRows benchRows(std::mt19937 &rng, DeviceBuffer &positions,
                    uint64_t poolPages, uint32_t pageSize, uint32_t batch,
                    uint32_t length, uint32_t qHeads, uint32_t headDim);

} // namespace kvrt::cuda::test

#endif // KVRT_TEST_CUDA_HARNESS_H
