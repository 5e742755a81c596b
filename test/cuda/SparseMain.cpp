//===- SparseMain.cpp - kvrt-cuda-sparse: check, then time ----------------===//
//
//   kvrt-cuda-sparse [--check] [--bench] [--reps N] [--caches LIST]
//                    [--points LIST]
//
// With neither --check nor --bench it does both. --caches (bf16, fp8,
// nvfp4, polar4, polar3, polar2) and --points (BxL: 1x32768, ... 8x131072),
// comma-separated, time only those (one point alone, e.g. under ncu). Exits
// non-zero when a check fails.
//
//===----------------------------------------------------------------------===//
#include "SparseHarness.h"

#include <algorithm>
#include <string>
#include <vector>

namespace {

std::vector<std::string> splitList(const std::string &list) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start)
      items.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

} // namespace

int main(int argc, char **argv) {
  bool check = false, bench = false;
  int reps = 50;
  kvrt::cuda::test::SparseBenchOnly only;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--check") {
      check = true;
    } else if (arg == "--bench") {
      bench = true;
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else if (arg == "--caches" && i + 1 < argc) {
      only.caches = splitList(argv[++i]);
    } else if (arg == "--points" && i + 1 < argc) {
      only.points = splitList(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--check] [--bench] [--reps N] [--caches "
                   "LIST] [--points LIST]\n",
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
    kvrt::cuda::test::runSparseBench(sms, reps, only);
  return failures ? 1 : 0;
}
