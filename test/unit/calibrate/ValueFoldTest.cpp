//===- ValueFoldTest.cpp - A value basis folded into v_proj and o_proj ----===//
//
// kv-lowrank{fold=true}: foldValueAxes rewrites v_proj (weight and bias)
// and o_proj so that the cache receives each head's values on its axes and
// o_proj reads attention's output on them. Checked here against a float64
// layer computed from the original weights: o_proj of attention over a
// cache where latent entries are projected on the first r axes and exact
// entries kept whole; the folded layer (latent = the first r coordinates,
// zeros after them; exact entries whole on the axes) must give the same
// output to float rounding, with GQA (three query heads a KV head).
//
//===----------------------------------------------------------------------===//
#include "passes/ValueFold.h"
#include "test/unit/RandomOrthonormal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace {

using mlir::kv::HeadAxes;

constexpr int64_t kKvHeads = 2, kQHeads = 6, kDim = 8, kInputs = 12,
                  kOutputs = 10, kRank = 3, kTokens = 9;

std::vector<float> normals(std::mt19937 &rng, size_t n) {
  std::normal_distribution<float> normal;
  std::vector<float> out(n);
  for (float &v : out)
    v = normal(rng);
  return out;
}

/// Random orthonormal axes per head, in the calibrated attributes' layout
/// with `stride` columns.
HeadAxes randomAxes(std::mt19937 &rng, int64_t stride) {
  HeadAxes axes{std::vector<float>(size_t(kKvHeads * kDim * stride), 0.5f),
                kKvHeads, kDim, stride};
  for (int64_t h = 0; h < kKvHeads; ++h) {
    const auto columns = kvopt::test::randomOrthonormal(rng, kDim, kDim);
    for (int64_t k = 0; k < kDim; ++k)
      for (int64_t i = 0; i < kDim; ++i)
        axes.values[size_t((h * kDim + i) * stride + k)] =
            float(columns[size_t(k)][size_t(i)]);
  }
  return axes;
}

/// y = W x + b for one token, in double.
std::vector<double> project(const std::vector<float> &w,
                            const std::vector<float> &b, const float *x,
                            int64_t outputs, int64_t inputs) {
  std::vector<double> y(static_cast<size_t>(outputs));
  for (int64_t r = 0; r < outputs; ++r) {
    double sum = b.empty() ? 0.0 : b[size_t(r)];
    for (int64_t c = 0; c < inputs; ++c)
      sum += double(w[size_t(r * inputs + c)]) * x[c];
    y[size_t(r)] = sum;
  }
  return y;
}

/// The layer's output for one query row: o_proj of each query head's
/// attention (weights `w`, [qHeads][tokens]) over values v_proj writes from
/// `x`. `project(h, v)` maps head h's value of a latent entry to what
/// attention sums for it; exact entries are summed whole.
template <typename Latent>
std::vector<double>
layerOutput(const std::vector<float> &valueWeight,
            const std::vector<float> &valueBias,
            const std::vector<float> &outputWeight, const std::vector<float> &x,
            const std::vector<double> &w, const std::vector<bool> &exact,
            Latent latentOf) {
  std::vector<double> attended(size_t(kQHeads * kDim), 0.0);
  for (int64_t t = 0; t < kTokens; ++t) {
    std::vector<double> v =
        project(valueWeight, valueBias, x.data() + t * kInputs, kKvHeads * kDim,
                kInputs);
    for (int64_t q = 0; q < kQHeads; ++q) {
      const int64_t h = q / (kQHeads / kKvHeads);
      std::vector<double> head(v.begin() + h * kDim,
                               v.begin() + (h + 1) * kDim);
      if (!exact[size_t(t)])
        head = latentOf(h, head);
      for (int64_t i = 0; i < kDim; ++i)
        attended[size_t(q * kDim + i)] += w[size_t(q * kTokens + t)] * head[i];
    }
  }
  std::vector<double> y(size_t(kOutputs), 0.0);
  for (int64_t r = 0; r < kOutputs; ++r)
    for (int64_t c = 0; c < kQHeads * kDim; ++c)
      y[size_t(r)] +=
          double(outputWeight[size_t(r * kQHeads * kDim + c)]) * attended[c];
  return y;
}

TEST(ValueFold, LeavesTheLayerOutputUnchangedToRounding) {
  std::mt19937 rng(7);
  for (int64_t stride : {kDim, kDim + 1}) {
    HeadAxes axes = randomAxes(rng, stride);
    std::vector<float> vw = normals(rng, size_t(kKvHeads * kDim * kInputs)),
                       vb = normals(rng, size_t(kKvHeads * kDim)),
                       ow = normals(rng, size_t(kOutputs * kQHeads * kDim)),
                       x = normals(rng, size_t(kTokens * kInputs));
    std::vector<double> w(size_t(kQHeads * kTokens));
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (double &v : w)
      v = uniform(rng);
    // The first two and the last three tokens exact, as sinks and a window.
    std::vector<bool> exact(size_t(kTokens), false);
    for (int64_t t : {0, 1, 6, 7, 8})
      exact[size_t(t)] = true;

    // Unfolded: a latent entry is B B^T v, B the first kRank axes.
    auto axis = [&](int64_t h, int64_t i, int64_t k) {
      return double(axes.values[size_t((h * kDim + i) * stride + k)]);
    };
    std::vector<double> expected = layerOutput(
        vw, vb, ow, x, w, exact, [&](int64_t h, std::vector<double> v) {
          std::vector<double> rebuilt(size_t(kDim), 0.0);
          for (int64_t k = 0; k < kRank; ++k) {
            double z = 0;
            for (int64_t i = 0; i < kDim; ++i)
              z += axis(h, i, k) * v[size_t(i)];
            for (int64_t i = 0; i < kDim; ++i)
              rebuilt[size_t(i)] += axis(h, i, k) * z;
          }
          return rebuilt;
        });

    // Folded: a latent entry is the first kRank coordinates, zeros after.
    std::vector<float> fvw = vw, fvb = vb, fow = ow;
    mlir::kv::foldValueAxes(axes, kQHeads, fvw, fvb, fow);
    std::vector<double> folded = layerOutput(
        fvw, fvb, fow, x, w, exact, [](int64_t, std::vector<double> v) {
          std::fill(v.begin() + kRank, v.end(), 0.0);
          return v;
        });

    double scale = 0, worst = 0;
    for (int64_t r = 0; r < kOutputs; ++r) {
      scale = std::max(scale, std::abs(expected[size_t(r)]));
      worst =
          std::max(worst, std::abs(expected[size_t(r)] - folded[size_t(r)]));
    }
    EXPECT_LT(worst, 1e-5 * scale) << "stride " << stride;
    // Not the identity: the weights did change.
    EXPECT_NE(fvw, vw);
    EXPECT_NE(fow, ow);
  }
}

TEST(ValueFold, WithoutABiasLeavesItEmpty) {
  std::mt19937 rng(3);
  HeadAxes axes = randomAxes(rng, kDim);
  std::vector<float> vw = normals(rng, size_t(kKvHeads * kDim * kInputs)), vb,
                     ow = normals(rng, size_t(kOutputs * kQHeads * kDim));
  mlir::kv::foldValueAxes(axes, kQHeads, vw, vb, ow);
  EXPECT_TRUE(vb.empty());
}

TEST(ValueFold, MeasuresHowFarAxesAreFromOrthonormal) {
  std::mt19937 rng(11);
  HeadAxes axes = randomAxes(rng, kDim + 1);
  EXPECT_LT(mlir::kv::orthonormalityError(axes), 1e-6);
  // Axis 2 of head 1 scaled by 1.01: its squared norm is off by 0.0201.
  for (int64_t i = 0; i < kDim; ++i)
    axes.values[size_t(((kDim + i) * (kDim + 1)) + 2)] *= 1.01f;
  EXPECT_NEAR(mlir::kv::orthonormalityError(axes), 0.0201, 1e-5);
}

} // namespace
