//===- ArgmaxCheck.cpp - Greedy tokens on the device ----------------------===//
//
// launchRowArgmax (Engine::stepGreedy's tokens) against kvrt::greedyToken
// on the host: random rows of Llama-3's vocabulary and of odd widths, with
// the maximum repeated later and earlier in the row, NaNs (counted as
// -inf), rows all -inf and all NaN; the output poisoned before each run.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Sampling.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "test/cuda/Harness.h"

#include <cmath>
#include <limits>
#include <random>

namespace kvrt::cuda::test {

int runArgmaxChecks() {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  int failures = 0, cases = 0;
  for (int64_t width :
       {int64_t(128256), int64_t(1), int64_t(33), int64_t(1000)}) {
    const int64_t rows = 9;
    std::vector<float> x(size_t(rows * width));
    for (float &v : x)
      v = normal(rng);
    const float nan = std::numeric_limits<float>::quiet_NaN(),
                inf = std::numeric_limits<float>::infinity();
    float *r1 = x.data() + width, *r2 = x.data() + 2 * width,
          *r3 = x.data() + 3 * width, *r4 = x.data() + 4 * width,
          *r5 = x.data() + 5 * width;
    // Row 1: its maximum again at the end (the first must win); row 2: a
    // maximum equal to a NaN-free value earlier; row 3: NaNs everywhere but
    // one; row 4: all -inf; row 5: all NaN.
    r1[width - 1] = *std::max_element(r1, r1 + width);
    r2[0] = 9.0f;
    r2[width / 2] = 9.0f;
    for (int64_t i = 0; i < width; ++i) {
      r3[i] = i == width / 3 ? -5.0f : nan;
      r4[i] = -inf;
      r5[i] = nan;
    }
    DeviceBuffer device = orDie(DeviceBuffer::allocate(x.size() * 4));
    DeviceBuffer out = orDie(DeviceBuffer::allocate(size_t(rows) * 4));
    CUDA_OK(cudaMemcpy(device.get(), x.data(), x.size() * sizeof(float),
                       cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(out.get(), 0x7f, size_t(rows) * sizeof(int32_t)));
    if (!launchRowArgmax(device.as<float>(), rows, width, out.as<int32_t>(),
                         nullptr)) {
      std::printf("FAIL argmax width %lld: the launch failed\n",
                  (long long)width);
      ++failures;
    }
    std::vector<int32_t> got(static_cast<size_t>(rows));
    CUDA_OK(cudaMemcpy(got.data(), out.get(), got.size() * sizeof(int32_t),
                       cudaMemcpyDeviceToHost));
    for (int64_t r = 0; r < rows; ++r) {
      ++cases;
      const int32_t want = greedyToken(x.data() + r * width, size_t(width));
      if (got[size_t(r)] != want) {
        std::printf("FAIL argmax width %lld row %lld: %d, expected %d\n",
                    (long long)width, (long long)r, got[size_t(r)], want);
        ++failures;
      }
    }
  }
  std::printf("argmax checks: %d of %d failed\n", failures, cases);
  return failures;
}

} // namespace kvrt::cuda::test
