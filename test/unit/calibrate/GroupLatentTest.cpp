//===- GroupLatentTest.cpp - One latent for a group of KV heads -----------===//
//
// kv-lowrank{group=G}: the axes of a group's joint second moment, from the
// moment sums calibration keeps of the layer's KV heads concatenated,
// against float64 definitions (orthonormal, diagonalising the moment, a
// reconstruction error equal to the discarded spectrum); and the runtime's
// codec storing the group's latent in parts over its heads' areas, whose
// rebuilt values and keys (after RoPE) must be the float64 projection of
// the group's vectors on those axes, restricted to each head.
//
//===----------------------------------------------------------------------===//
#include "compiler/calibrate/Moments.h"
#include "passes/GroupAxes.h"
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/Codec.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace {

constexpr int64_t kGroup = 3, kDim = 8, kSize = kGroup * kDim, kRows = 400;

/// Rows of G heads whose coordinates share 10 random sources (so the heads
/// are correlated), plus noise and a mean.
std::vector<float> correlatedRows(std::mt19937 &rng) {
  std::normal_distribution<double> normal;
  constexpr int64_t sources = 10;
  std::vector<double> mix(kSize * sources), mean(kSize);
  for (double &m : mix)
    m = normal(rng);
  for (double &m : mean)
    m = 0.5 * normal(rng);
  std::vector<float> rows(kRows * kSize);
  for (int64_t n = 0; n < kRows; ++n) {
    double s[sources];
    for (double &x : s)
      x = normal(rng) * (1.0 + 0.3 * double(&x - s));
    for (int64_t i = 0; i < kSize; ++i) {
      double v = mean[size_t(i)] + 0.05 * normal(rng);
      for (int64_t k = 0; k < sources; ++k)
        v += mix[size_t(i * sources + k)] * s[k];
      rows[size_t(n * kSize + i)] = float(v);
    }
  }
  return rows;
}

/// E[x x^T] of the rows as calibration records it: one "head" of G d.
std::vector<double> jointMoment(const std::vector<float> &rows) {
  kvopt::calibrate::MomentSums sums(1, kSize);
  sums.add(rows.data(), kRows);
  std::vector<double> mean, moment;
  sums.finish(mean, moment);
  for (int64_t i = 0; i < kSize; ++i)
    for (int64_t j = 0; j < kSize; ++j)
      moment[size_t(i * kSize + j)] += mean[size_t(i)] * mean[size_t(j)];
  return moment;
}

mlir::kv::GroupAxes axesOf(mlir::MLIRContext &context,
                           const std::vector<double> &moment,
                           const std::vector<double> *weights, bool keys) {
  std::vector<float> values(moment.begin(), moment.end());
  auto type = mlir::RankedTensorType::get({1, kSize, kSize},
                                          mlir::Float32Type::get(&context));
  auto attr = llvm::cast<mlir::DenseFPElementsAttr>(
      mlir::DenseElementsAttr::get(type, llvm::ArrayRef<float>(values)));
  return mlir::kv::groupAxes(attr, kGroup, kDim, kGroup, weights, keys);
}

/// Column j of the axes ([G d][G d + 1]).
double axis(const mlir::kv::GroupAxes &a, int64_t i, int64_t j) {
  return a.axes[size_t(i * (kSize + 1) + j)];
}

/// The basis tensor the exporter writes: [1][G d][rank + 1].
std::vector<float> basisOf(const mlir::kv::GroupAxes &a, int64_t rank,
                           const std::vector<double> *keyMean = nullptr) {
  std::vector<float> basis;
  for (int64_t i = 0; i < kSize; ++i) {
    for (int64_t j = 0; j < rank; ++j)
      basis.push_back(float(axis(a, i, j)));
    basis.push_back(a.axes[size_t(i * (kSize + 1) + kSize)]);
    if (keyMean)
      basis.push_back(float((*keyMean)[size_t(i)]));
  }
  return basis;
}

/// W^-1 U_r U_r^T W (x - mu) + mu in float64 (W = 1 without weights, mu =
/// 0 without a mean).
std::vector<double> projection(const mlir::kv::GroupAxes &a, int64_t rank,
                               const float *x,
                               const std::vector<double> *weights,
                               const std::vector<double> *mean = nullptr) {
  auto w = [&](int64_t i) { return weights ? (*weights)[size_t(i)] : 1.0; };
  auto mu = [&](int64_t i) {
    return mean ? double(float((*mean)[size_t(i)])) : 0.0;
  };
  std::vector<double> z(size_t(rank), 0.0), out(kSize, 0.0);
  for (int64_t j = 0; j < rank; ++j)
    for (int64_t i = 0; i < kSize; ++i)
      z[size_t(j)] += axis(a, i, j) * w(i) * (x[i] - mu(i));
  for (int64_t i = 0; i < kSize; ++i) {
    for (int64_t j = 0; j < rank; ++j)
      out[size_t(i)] += axis(a, i, j) * z[size_t(j)];
    out[size_t(i)] = out[size_t(i)] / w(i) + mu(i);
  }
  return out;
}

kvrt::schema::Encoding groupLowRank(uint32_t rank) {
  kvrt::schema::Encoding e;
  e.set_kind(kvrt::schema::ENCODING_LOWRANK);
  e.set_rank(rank);
  e.set_group(kGroup);
  e.mutable_latent()->set_kind(kvrt::schema::ENCODING_F32);
  return e;
}

TEST(GroupLatent, AxesOfTheJointMomentLoseTheDiscardedSpectrum) {
  std::mt19937 rng(17);
  std::vector<float> rows = correlatedRows(rng);
  std::vector<double> moment = jointMoment(rows);
  mlir::MLIRContext context;
  mlir::kv::GroupAxes a = axesOf(context, moment, nullptr, false);
  ASSERT_EQ(a.axes.size(), size_t(kSize * (kSize + 1)));
  // Orthonormal, sorted, diagonalising the moment; values' last column 0.
  double trace = 0;
  for (int64_t i = 0; i < kSize; ++i) {
    trace += moment[size_t(i * kSize + i)];
    EXPECT_EQ(a.axes[size_t(i * (kSize + 1) + kSize)], 0.0f);
    if (i)
      EXPECT_LE(a.spectrum[size_t(i)], a.spectrum[size_t(i - 1)]);
  }
  for (int64_t j = 0; j < kSize; ++j)
    for (int64_t k = 0; k < kSize; ++k) {
      double dot = 0, quadratic = 0;
      for (int64_t i = 0; i < kSize; ++i) {
        dot += axis(a, i, j) * axis(a, i, k);
        for (int64_t l = 0; l < kSize; ++l)
          quadratic +=
              axis(a, i, j) * moment[size_t(i * kSize + l)] * axis(a, l, k);
      }
      EXPECT_NEAR(dot, j == k ? 1.0 : 0.0, 1e-6) << j << " " << k;
      EXPECT_NEAR(quadratic, j == k ? a.spectrum[size_t(j)] : 0.0, 1e-5 * trace)
          << j << " " << k;
    }
  // At each rank, the mean squared error of the rows' projections is the
  // discarded eigenvalues' sum, and the heads' correlation leaves little:
  // 10 sources make rank 10 of 24 keep nearly everything.
  for (int64_t rank : {3, 6, 9, 12, 18}) {
    double error = 0, discarded = 0;
    for (int64_t n = 0; n < kRows; ++n) {
      const float *x = &rows[size_t(n * kSize)];
      std::vector<double> p = projection(a, rank, x, nullptr);
      for (int64_t i = 0; i < kSize; ++i)
        error += (x[i] - p[size_t(i)]) * (x[i] - p[size_t(i)]);
    }
    error /= double(kRows);
    for (int64_t k = rank; k < kSize; ++k)
      discarded += a.spectrum[size_t(k)];
    EXPECT_NEAR(error, discarded, 1e-5 * trace) << "rank " << rank;
    if (rank >= 12)
      EXPECT_LT(error, 1e-2 * trace) << "rank " << rank;
  }
}

TEST(GroupLatent, TheCodecRebuildsEachHeadFromTheGroupsLatent) {
  std::mt19937 rng(23);
  std::vector<float> rows = correlatedRows(rng);
  std::vector<double> moment = jointMoment(rows);
  mlir::MLIRContext context;
  constexpr uint32_t rank = 9, slots = 6;
  const float weights[slots] = {0.5f, 1.5f, 0.25f, 2.0f, 1.0f, 0.75f};

  // Values: decoded entries and attention's sum, per head, against the
  // float64 projection of the group's vectors.
  mlir::kv::GroupAxes a = axesOf(context, moment, nullptr, false);
  kvrt::CodecContext c;
  c.side = kvrt::CacheSide::Value;
  c.kvHeads = kGroup;
  c.headDim = kDim;
  c.basis = basisOf(a, rank);
  kvrt::StatusOr<std::unique_ptr<kvrt::Codec>> values =
      kvrt::makeCodec(groupLowRank(rank), c);
  ASSERT_TRUE(values) << values.status().message();
  kvrt::Codec &v = **values;
  EXPECT_EQ(v.groupHeads(), uint32_t(kGroup));
  // Each head's area holds rank / G f32 coordinates per entry; the group's
  // areas lie one after another, as in a page.
  const uint64_t stride = v.headBytes(slots);
  EXPECT_EQ(stride, uint64_t(slots) * rank / kGroup * 4);
  v.setAreaStride(stride);
  std::vector<uint8_t> areas(kGroup * stride);
  for (uint32_t s = 0; s < slots; ++s)
    for (uint32_t h = 0; h < kGroup; ++h)
      v.encode(&rows[s * kSize], kDim, h, s, v.areaOf(areas.data(), h, stride));
  std::vector<float> out(kDim), scratch(v.domainSize());
  for (uint32_t h = 0; h < kGroup; ++h) {
    std::vector<float> acc(v.domainSize(), 0.0f);
    std::vector<double> expected(kDim, 0.0);
    for (uint32_t s = 0; s < slots; ++s) {
      std::vector<double> p = projection(a, rank, &rows[s * kSize], nullptr);
      v.decodeAt(v.areaOf(areas.data(), h, stride), s, h, 0, out.data());
      for (int64_t i = 0; i < kDim; ++i) {
        const double want = p[size_t(h * kDim + i)];
        EXPECT_NEAR(out[size_t(i)], want, 1e-5 * (1 + std::abs(want)))
            << "head " << h << " slot " << s;
        expected[size_t(i)] += weights[s] * want;
      }
      v.accumulate(&weights[s], 1, v.areaOf(areas.data(), h, stride), s,
                   acc.data(), scratch.data());
    }
    v.finishOutput(acc.data(), h);
    for (int64_t i = 0; i < kDim; ++i)
      EXPECT_NEAR(acc[size_t(i)], expected[size_t(i)],
                  1e-4 * (1 + std::abs(expected[size_t(i)])))
          << "head " << h;
  }

  // Keys, on axes of the moment weighted per coordinate and around their
  // mean, arrive after RoPE: each head's rebuilt key is R(p) of its rows
  // of W^-1 U U^T W (k - mu) + mu, and its score the query's product with
  // that.
  std::vector<double> keyWeights(kSize), keyMean(kSize);
  for (int64_t i = 0; i < kSize; ++i) {
    keyWeights[size_t(i)] = 0.5 + double(i % kDim) / kDim + 0.1 * (i / kDim);
    keyMean[size_t(i)] = std::sin(double(i));
  }
  mlir::kv::GroupAxes k = axesOf(context, moment, &keyWeights, true);
  kvrt::schema::Rope ropeSpec;
  ropeSpec.set_theta(10000);
  ropeSpec.set_style(kvrt::schema::ROPE_STYLE_HALF);
  kvrt::cpu::RopeFrequencies rope = kvrt::cpu::ropeFrequencies(ropeSpec, kDim);
  c.side = kvrt::CacheSide::Key;
  c.basis = basisOf(k, rank, &keyMean);
  c.rope = &rope;
  kvrt::StatusOr<std::unique_ptr<kvrt::Codec>> keys =
      kvrt::makeCodec(groupLowRank(rank), c);
  ASSERT_TRUE(keys) << keys.status().message();
  kvrt::Codec &kc = **keys;
  kc.setAreaStride(stride);
  kvrt::cpu::ThreadPool pool(1);
  std::normal_distribution<float> normal;
  for (uint32_t s = 0; s < slots; ++s) {
    const int32_t position = int32_t(37 * s + 3);
    // The cache receives the group's keys after RoPE.
    std::vector<float> rotated(kSize);
    kvrt::cpu::rope(pool, rope, &rows[s * kSize], 1, kGroup, kDim, &position,
                    rotated.data());
    for (uint32_t h = 0; h < kGroup; ++h)
      kc.encodeAt(rotated.data(), kDim, h, s, &position,
                  kc.areaOf(areas.data(), h, stride));
    std::vector<double> p =
        projection(k, rank, &rows[s * kSize], &keyWeights, &keyMean);
    std::vector<float> projected(p.begin(), p.end()), want(kSize);
    kvrt::cpu::rope(pool, rope, projected.data(), 1, kGroup, kDim, &position,
                    want.data());
    for (uint32_t h = 0; h < kGroup; ++h) {
      kc.decodeAt(kc.areaOf(areas.data(), h, stride), s, h, position,
                  out.data());
      std::vector<float> q(kDim), prepared(kc.preparedQuerySize());
      double score = 0;
      for (int64_t i = 0; i < kDim; ++i) {
        const float expected = want[size_t(h * kDim + i)];
        EXPECT_NEAR(out[size_t(i)], expected, 1e-4 * (1 + std::abs(expected)))
            << "head " << h << " slot " << s;
        q[size_t(i)] = normal(rng);
        score += double(q[size_t(i)]) * expected;
      }
      kc.prepareQuery(q.data(), h, prepared.data());
      float got = 0;
      kc.scoreAt(prepared.data(), 1, kc.areaOf(areas.data(), h, stride), s,
                 position, &got, scratch.data());
      EXPECT_NEAR(got, score, 1e-4 * (1 + std::abs(score)));
    }
  }
}

} // namespace
