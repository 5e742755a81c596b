//===- SparseMain.cpp - kvrt-cuda-sparse: check, then time ----------------===//
//
//   kvrt-cuda-sparse [--check] [--bench] [--reps N]
//
// With neither --check nor --bench it does both. Exits non-zero when a
// check fails.
//
//===----------------------------------------------------------------------===//
#include "SparseHarness.h"

#include <string>

int main(int argc, char **argv) {
  bool check = false, bench = false;
  int reps = 50;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--check") {
      check = true;
    } else if (arg == "--bench") {
      bench = true;
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--check] [--bench] [--reps N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!check && !bench)
    check = bench = true;

  cudaDeviceProp props;
  CUDA_OK(cudaGetDeviceProperties(&props, 0));
  std::printf("device: %s, sm_%d%d, %d SMs, %.0f MB L2, %.1f GB\n", props.name,
              props.major, props.minor, props.multiProcessorCount,
              props.l2CacheSize / 1e6, props.totalGlobalMem / 1e9);
  const uint32_t sms = uint32_t(props.multiProcessorCount);
  int failures = 0;
  if (check)
    failures = kvrt::cuda::test::runSparseChecks(sms);
  if (bench)
    kvrt::cuda::test::runSparseBench(sms, reps);
  return failures ? 1 : 0;
}
