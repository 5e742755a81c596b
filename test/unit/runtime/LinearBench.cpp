//===- LinearBench.cpp - The CPU linear kernel in each weight format ------===//
//
// Prints the time of one cpu::linear() call at the default model's shapes
// (SmolLM2-135M) for f32 weights and each block format, at several rows of
// x: once on a matrix that stays in cache, once streamed (each call reads
// another copy, from at least 256 MB of copies, as a decode step reads
// every weight from memory). A measurement for the kernel's comments and
// docs/measurements.md, not a test. Usage: kvrt-linear-bench [threads].
//
//===----------------------------------------------------------------------===//
#include "kvrt/Artifact.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace kvrt;

namespace {

struct Shape {
  const char *name;
  int64_t in, out;
};

/// Random blocks whose f16 scales are small normal numbers, or random f32.
std::vector<uint8_t> randomWeights(schema::DType dtype, int64_t elements,
                                   std::mt19937 &rng) {
  std::vector<uint8_t> bytes(tensorBytes(dtype, uint64_t(elements)));
  if (dtype == schema::DTYPE_F32) {
    std::normal_distribution<float> normal(0.0f, 0.05f);
    for (int64_t i = 0; i < elements; ++i) {
      const float v = normal(rng);
      std::memcpy(&bytes[size_t(i) * 4], &v, 4);
    }
    return bytes;
  }
  for (uint8_t &b : bytes)
    b = uint8_t(rng());
  // Each block starts with f16 scales: make them about 2^-7.
  const uint64_t blockBytes = dtypeBlockBytes(dtype);
  const int scales = dtype == schema::DTYPE_Q4_1 ? 2 : 1;
  for (size_t b = 0; b < bytes.size(); b += blockBytes)
    for (int s = 0; s < scales; ++s) {
      bytes[b + 2 * s] = uint8_t(rng());
      bytes[b + 2 * s + 1] = 0x20; // exponent 8: 2^-7
    }
  return bytes;
}

/// Best of five runs of `calls` calls, in microseconds per call; the
/// calls are numbered across the runs.
template <typename Fn> double bestMicroseconds(int calls, const Fn &call) {
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c)
      call(run * calls + c);
    const double us = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    best = std::min(best, us / calls);
  }
  return best;
}

} // namespace

int main(int argc, char **argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 0;
  cpu::ThreadPool pool(threads);
  const Shape shapes[] = {{"attention q/o 576x576", 576, 576},
                          {"mlp gate/up 576x1536", 576, 1536},
                          {"mlp down 1536x576", 1536, 576},
                          {"lm_head 576x49152", 576, 49152}};
  const schema::DType dtypes[] = {schema::DTYPE_F32, schema::DTYPE_Q8_0,
                                  schema::DTYPE_Q4_0, schema::DTYPE_Q4_1};
  const int64_t rowCounts[] = {1, 2, 4, 16, 256};
  constexpr uint64_t kStreamedBytes = uint64_t(256) << 20;
  std::mt19937 rng(7);
  std::printf("| shape | format | rows | cached us | streamed us | streamed "
              "GB/s of weights |\n| --- | --- | --- | --- | --- | --- |\n");
  for (const Shape &shape : shapes)
    for (schema::DType dtype : dtypes) {
      const uint64_t matrixBytes =
          tensorBytes(dtype, uint64_t(shape.in * shape.out));
      const size_t copies =
          size_t(std::max<uint64_t>(1, kStreamedBytes / matrixBytes));
      const std::vector<uint8_t> one =
          randomWeights(dtype, shape.in * shape.out, rng);
      std::vector<uint8_t> streamed(one.size() * copies);
      for (size_t c = 0; c < copies; ++c)
        std::copy(one.begin(), one.end(), streamed.begin() + c * one.size());
      for (int64_t rows : rowCounts) {
        std::vector<float> x(size_t(rows * shape.in), 0.25f),
            y(size_t(rows * shape.out));
        const double multiplyAdds = double(rows * shape.in * shape.out);
        const int calls = std::max(2, int(2e8 / multiplyAdds));
        const double cached = bestMicroseconds(calls, [&](int) {
          cpu::linear(pool, x.data(), rows, shape.in,
                      cpu::WeightView{one.data(), dtype}, shape.out, nullptr,
                      y.data());
        });
        const double fromMemory = bestMicroseconds(calls, [&](int c) {
          cpu::linear(
              pool, x.data(), rows, shape.in,
              cpu::WeightView{streamed.data() + size_t(c) % copies * one.size(),
                              dtype},
              shape.out, nullptr, y.data());
        });
        std::printf("| %s | %s | %lld | %.1f | %.1f | %.2f |\n", shape.name,
                    dtypeName(dtype), (long long)rows, cached, fromMemory,
                    double(matrixBytes) / fromMemory * 1e-3);
      }
    }
  return 0;
}
