//===- NormCheck.cpp - RMSNorm on the device ------------------------------===//
//
// launchRmsNorm against cpu::rmsNorm on random rows of every width class
// the kernel instantiates (one to eight values a thread, and each class's
// edges), with and without the residual add it folds in and the bf16 copy
// it writes for the projections; every output poisoned before each run.
// The sum, the norm and its bf16 copy are compared in full, every row.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "test/cuda/Harness.h"

#include <cmath>
#include <random>

namespace kvrt::cuda::test {
namespace {

DeviceBuffer upload(const std::vector<float> &values) {
  DeviceBuffer device = orDie(DeviceBuffer::allocate(values.size() * 4));
  orDie(device.upload(values.data(), values.size() * 4));
  return device;
}

template <typename T> std::vector<T> download(const DeviceBuffer &b, size_t n) {
  std::vector<T> values(n);
  CUDA_OK(cudaMemcpy(values.data(), b.get(), n * sizeof(T),
                     cudaMemcpyDeviceToHost));
  return values;
}

} // namespace

int runNormChecks() {
  cpu::ThreadPool pool(2);
  std::mt19937 rng(23);
  std::normal_distribution<float> normal;
  int failures = 0, cases = 0;
  struct Shape {
    int64_t rows, dim;
  };
  // A head's q/k norm over many rows; the default model's and Llama-8B's
  // hidden sizes; the first and last width of the 2-, 4- and 8-value
  // instances; the widest the kernel takes.
  for (Shape shape : {Shape{33, 64}, Shape{3, 576}, Shape{2, 1025},
                      Shape{5, 1500}, Shape{1, 2048}, Shape{2, 2049},
                      Shape{4, 4096}, Shape{2, 4097}, Shape{2, kNormMaxDim}}) {
    for (bool withResidual : {false, true}) {
      ++cases;
      const int64_t n = shape.rows * shape.dim;
      std::vector<float> x(static_cast<size_t>(n)), residual(x.size()),
          weight(static_cast<size_t>(shape.dim));
      for (float &v : x)
        v = 3.0f * normal(rng);
      for (float &v : residual)
        v = normal(rng);
      for (float &v : weight)
        v = 1.0f + 0.25f * normal(rng);
      const float epsilon = 1e-5f;
      std::vector<float> sum = x;
      if (withResidual)
        for (size_t i = 0; i < sum.size(); ++i)
          sum[i] = x[i] + residual[i];
      std::vector<float> want(x.size());
      cpu::rmsNorm(pool, sum.data(), shape.rows, shape.dim, weight.data(),
                   epsilon, want.data());

      DeviceBuffer dx = upload(x), dResidual = upload(residual),
                   dWeight = upload(weight);
      DeviceBuffer added = orDie(DeviceBuffer::allocate(size_t(n) * 4));
      DeviceBuffer y = orDie(DeviceBuffer::allocate(size_t(n) * 4));
      DeviceBuffer yBf16 = orDie(DeviceBuffer::allocate(size_t(n) * 2));
      CUDA_OK(cudaMemset(added.get(), 0xff, size_t(n) * 4));
      CUDA_OK(cudaMemset(y.get(), 0xff, size_t(n) * 4));
      CUDA_OK(cudaMemset(yBf16.get(), 0xff, size_t(n) * 2));
      const bool launched = launchRmsNorm(
          dx.as<float>(), withResidual ? dResidual.as<float>() : nullptr,
          withResidual ? added.as<float>() : nullptr, shape.rows, shape.dim,
          dWeight.as<float>(), epsilon, y.as<float>(), yBf16.as<uint16_t>(),
          nullptr);
      CUDA_OK(cudaDeviceSynchronize());
      const std::string where = "norm " + std::to_string(shape.rows) + "x" +
                                std::to_string(shape.dim) +
                                (withResidual ? " with residual" : "");
      if (!launched) {
        std::printf("FAIL %s: the launch failed\n", where.c_str());
        ++failures;
        continue;
      }
      const std::vector<float> gotY = download<float>(y, size_t(n));
      const std::vector<uint16_t> gotBf16 =
          download<uint16_t>(yBf16, size_t(n));
      const std::vector<float> gotAdded = download<float>(added, size_t(n));
      // The mean square is summed in double in another order: the scale
      // may differ by an ulp of float: y by a few ulps, no more.
      double worst = 0;
      int64_t wrongSum = 0, wrongBf16 = 0;
      for (size_t i = 0; i < size_t(n); ++i) {
        const double error = std::fabs(double(gotY[i]) - want[i]) /
                             std::max(1e-30, std::fabs(double(want[i])));
        worst = std::isnan(error) ? INFINITY : std::max(worst, error);
        wrongBf16 += gotBf16[i] != cpu::floatToBf16(gotY[i]);
        wrongSum += withResidual && gotAdded[i] != sum[i];
      }
      if (worst > 4e-7 || wrongBf16 || wrongSum) {
        std::printf("FAIL %s: relative error %.3g (bound 4e-7), %lld bf16 "
                    "values not y rounded, %lld sums wrong\n",
                    where.c_str(), worst, (long long)wrongBf16,
                    (long long)wrongSum);
        ++failures;
      }
    }
  }
  // Wider rows are refused, not run.
  ++cases;
  if (launchRmsNorm(nullptr, nullptr, nullptr, 1, kNormMaxDim + 1, nullptr,
                    1e-5f, nullptr, nullptr, nullptr)) {
    std::printf("FAIL norm of %lld values: launched, expected a refusal\n",
                (long long)(kNormMaxDim + 1));
    ++failures;
  }
  std::printf("norm checks: %d of %d failed\n", failures, cases);
  return failures;
}

} // namespace kvrt::cuda::test
