//===- Main.cpp - kvrt-cuda-attention: check, then time -------------------===//
//
//   kvrt-cuda-attention [--check] [--bench] [--evict] [--reps N]
//                       [--encoding NAME]
//
// With neither --check, --bench nor --evict it does the first two;
// --encoding times only the encoding of that name (bf16, fp8-dyn,
// fp8-head, polar4, ...), e.g. under a profiler; --evict times eviction's
// kernels beside attention (EvictBench.cpp). Exits non-zero when a check
// fails.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include <cstring>
#include <string>

int main(int argc, char **argv) {
  bool check = false, bench = false, evict = false;
  int reps = 100, pageSize = 16;
  std::string encoding;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--check") {
      check = true;
    } else if (arg == "--bench") {
      bench = true;
    } else if (arg == "--evict") {
      evict = true;
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else if (arg == "--encoding" && i + 1 < argc) {
      encoding = argv[++i];
    } else if (arg == "--page-size" && i + 1 < argc) {
      pageSize = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--check] [--bench] [--evict] [--reps N] "
                   "[--encoding NAME] [--page-size P]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!check && !bench && !evict)
    check = bench = true;

  cudaDeviceProp props;
  CUDA_OK(cudaGetDeviceProperties(&props, 0));
  int driver = 0, runtime = 0;
  CUDA_OK(cudaDriverGetVersion(&driver));
  CUDA_OK(cudaRuntimeGetVersion(&runtime));
  std::printf("device: %s, sm_%d%d, %d SMs, %.0f MB L2, %.1f GB; driver %d, "
              "runtime %d\n",
              props.name, props.major, props.minor, props.multiProcessorCount,
              props.l2CacheSize / 1e6, props.totalGlobalMem / 1e9, driver,
              runtime);
  const uint32_t sms = uint32_t(props.multiProcessorCount);
  int failures = 0;
  if (check)
    failures = kvrt::cuda::test::runChecks(sms) +
               kvrt::cuda::test::runPrefillChecks() +
               kvrt::cuda::test::runAppendChecks() +
               kvrt::cuda::test::runArgmaxChecks() +
               kvrt::cuda::test::runNormChecks() +
               kvrt::cuda::test::runEvictChecks();
  if (bench)
    kvrt::cuda::test::runBench(sms, reps, encoding, uint32_t(pageSize));
  if (evict)
    kvrt::cuda::test::runEvictBench(sms, reps);
  return failures ? 1 : 0;
}
