//===- CalibrateTest.cpp - Calibration on tinystories, and its scales -----===//
#include "compiler/calibrate/Calibrate.h"
#include "compiler/InitAll.h"
#include "compiler/Pipeline.h"
#include "compiler/export/Export.h"

#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"
#include "kvrt/Artifact.h"
#include "kvrt/ArtifactWriter.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <optional>

using namespace kvopt;
using calibrate::LayerStatistics;
using calibrate::Statistics;

namespace {

const std::string kModel = KVOPT_TEST_MODELS_DIR "/tinystories-656k";
const std::string kText = KVOPT_SOURCE_DIR "/test/calibrate/Inputs/stories.txt";

/// Expects the axes at(i, k) (coordinate i of axis k) of d coordinates
/// orthonormal, and U^T A U diagonal for the d x d `a`, largest first and,
/// when given, equal to `spectrum`.
void expectDiagonalises(const std::function<double(int64_t, int64_t)> &at,
                        const std::vector<double> &a, int64_t d,
                        const float *spectrum = nullptr) {
  double trace = 0, previous = INFINITY;
  for (int64_t i = 0; i < d; ++i)
    trace += a[i * d + i];
  for (int64_t x = 0; x < d; ++x)
    for (int64_t y = 0; y < d; ++y) {
      double gram = 0, projected = 0;
      for (int64_t i = 0; i < d; ++i) {
        gram += at(i, x) * at(i, y);
        for (int64_t j = 0; j < d; ++j)
          projected += at(i, x) * a[i * d + j] * at(j, y);
      }
      EXPECT_NEAR(gram, x == y ? 1.0 : 0.0, 1e-5) << x << ", " << y;
      if (x != y) {
        EXPECT_NEAR(projected, 0.0, 1e-5 * trace) << x << ", " << y;
      } else {
        EXPECT_LE(projected, previous + 1e-5 * trace) << "axis " << x;
        if (spectrum)
          EXPECT_NEAR(projected, spectrum[x], 1e-5 * trace) << "axis " << x;
        previous = projected;
      }
    }
}

class Calibration : public ::testing::Test {
protected:
  Calibration() : context(registry()) {}

  static mlir::DialectRegistry registry() {
    mlir::DialectRegistry r;
    registerAllDialects(r);
    registerAllPasses();
    return r;
  }

  import::ImportedModel importModel() {
    kvrt::StatusOr<import::ImportedModel> model =
        import::importModel(context, kModel);
    EXPECT_TRUE(model) << model.status().message();
    return std::move(*model);
  }

  /// Calibrates `model` on `tokens` tokens of kText and attaches the
  /// statistics; nothing (after a test failure) when either fails.
  std::optional<Statistics> calibrateAndAttach(import::ImportedModel &model,
                                               int64_t tokens = 64) {
    calibrate::CalibrationOptions options;
    options.tokens = tokens;
    kvrt::StatusOr<Statistics> stats =
        calibrate::calibrate(model, kText, options);
    EXPECT_TRUE(stats) << stats.status().message();
    if (!stats ||
        !calibrate::attachStatistics(*model.module, *stats, "stories")) {
      ADD_FAILURE() << "calibration failed";
      return std::nullopt;
    }
    return std::move(*stats);
  }

  /// Statistics of the tinystories shape (2 layers, 4 KV heads of 16).
  static Statistics handMade() {
    Statistics s;
    s.source = {"hand.txt", 42, 16, 8};
    s.kvHeads = 4;
    s.headDim = 16;
    s.layers.push_back(
        {{0.0f, 448.0f, 1e-3f, 896.0f}, {1.0f, 2.0f, 3.0f, 4.0f}});
    s.layers.push_back({{5.0f, 6.0f, 7.0f, 8.0f}, {0.5f, 0.25f, 0.0f, 12.0f}});
    return s;
  }

  /// Compiles `model` with `passes` and opens the artifact.
  std::shared_ptr<const kvrt::Artifact> compile(import::ImportedModel &model,
                                                const std::string &passes) {
    kvrt::StatusOr<std::vector<PassRecord>> ran =
        runPipeline(*model.module, passes);
    EXPECT_TRUE(ran) << ran.status().message();
    kvrt::ArtifactWriter writer;
    kvrt::Status exported = exporter::exportModule(*model.module, model.config,
                                                   model.tokenizer, {}, writer);
    EXPECT_TRUE(exported) << exported.message();
    // One file per test: ctest runs the tests of this binary in parallel.
    std::string path =
        ::testing::TempDir() + "/calibrate-test-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name() +
        ".kvpkg";
    kvrt::Status written = writer.write(path);
    EXPECT_TRUE(written) << written.message();
    auto artifact = kvrt::Artifact::open(path);
    EXPECT_TRUE(artifact) << artifact.status().message();
    return *artifact;
  }

  /// The f32 tensor `index` of `artifact`; empty (after a test failure)
  /// when it has none.
  static std::vector<float> floats(const kvrt::Artifact &artifact,
                                   uint32_t index) {
    auto bytes = artifact.tensorData(index);
    EXPECT_TRUE(bytes) << "tensor " << index;
    if (!bytes)
      return {};
    std::vector<float> values(bytes->size / sizeof(float));
    std::memcpy(values.data(), bytes->data, bytes->size);
    return values;
  }

  static std::vector<float> scales(const kvrt::Artifact &artifact,
                                   const kvrt::schema::Encoding &encoding) {
    EXPECT_TRUE(encoding.has_scale_tensor());
    return floats(artifact, encoding.scale_tensor());
  }

  static std::vector<float> basis(const kvrt::Artifact &artifact,
                                  const kvrt::schema::Encoding &encoding) {
    EXPECT_TRUE(encoding.has_basis_tensor());
    return floats(artifact, encoding.basis_tensor());
  }

  mlir::MLIRContext context;
};

TEST_F(Calibration, IsDeterministicAndRecordsItsSource) {
  import::ImportedModel model = importModel();
  calibrate::CalibrationOptions options;
  options.tokens = 700;
  kvrt::StatusOr<Statistics> first =
      calibrate::calibrate(model, kText, options);
  ASSERT_TRUE(first) << first.status().message();
  // Fewer threads split the kernels differently, not the results.
  options.threads = 1;
  kvrt::StatusOr<Statistics> second =
      calibrate::calibrate(model, kText, options);
  ASSERT_TRUE(second) << second.status().message();

  EXPECT_EQ(first->source.file, "stories.txt");
  EXPECT_EQ(first->source.tokens, 700);
  // The window fits tinystories' 512 positions with its BOS token.
  EXPECT_EQ(first->source.window, 511);
  EXPECT_EQ(first->source.xxh64, second->source.xxh64);
  EXPECT_EQ(first->kvHeads, 4);
  EXPECT_EQ(first->headDim, 16);
  EXPECT_EQ(first->heads, 8);
  EXPECT_EQ(first->attentionSinks, 4);
  EXPECT_EQ(first->attentionWindow, 64);
  ASSERT_EQ(first->layers.size(), 2u);
  auto sameBits = [](const std::vector<float> &x, const std::vector<float> &y) {
    return x.size() == y.size() &&
           std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  for (size_t layer = 0; layer < 2; ++layer) {
    const LayerStatistics &a = first->layers[layer], &b = second->layers[layer];
    EXPECT_EQ(a.keyAbsMax, b.keyAbsMax);
    EXPECT_EQ(a.valueAbsMax, b.valueAbsMax);
    for (float m : a.keyAbsMax)
      EXPECT_GT(m, 0.0f);
    // The pre-RoPE sums run in double in the order of the rows: the same
    // bits for any thread count.
    ASSERT_EQ(a.queryCenter.size(), 8u * 8 * 2);
    ASSERT_EQ(a.queryMagnitude.size(), 8u * 8);
    ASSERT_EQ(a.keyCenter.size(), 4u * 8 * 2);
    ASSERT_EQ(a.keyMagnitude.size(), 4u * 8);
    EXPECT_TRUE(sameBits(a.queryCenter, b.queryCenter));
    EXPECT_TRUE(sameBits(a.queryMagnitude, b.queryMagnitude));
    EXPECT_TRUE(sameBits(a.keyCenter, b.keyCenter));
    EXPECT_TRUE(sameBits(a.keyMagnitude, b.keyMagnitude));
    // The attention-weighted moment too: the weights of each row are
    // computed by one task and folded in token order.
    ASSERT_EQ(a.valueAttentionMoment.size(), 4u * 16 * 16);
    EXPECT_EQ(std::memcmp(a.valueAttentionMoment.data(),
                          b.valueAttentionMoment.data(),
                          a.valueAttentionMoment.size() * sizeof(double)),
              0);
    // |E q_f| <= E|q_f|, and the magnitudes are positive.
    for (size_t i = 0; i < a.queryMagnitude.size(); ++i) {
      EXPECT_GT(a.queryMagnitude[i], 0.0f);
      EXPECT_LE(std::hypot(a.queryCenter[2 * i], a.queryCenter[2 * i + 1]),
                a.queryMagnitude[i] * (1 + 1e-6));
    }
  }
}

TEST_F(Calibration, PutsPreRopeStatisticsOnEachCache) {
  import::ImportedModel model = importModel();
  std::optional<Statistics> stats = calibrateAndAttach(model);
  ASSERT_TRUE(stats);
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*model.module)));
  auto *dialect = context.getLoadedDialect<mlir::kv::KVDialect>();
  int caches = 0;
  model.module->walk([&](mlir::kv::CacheOp op) {
    ++caches;
    const LayerStatistics &s = stats->layers[op.getLayer()];
    auto center = dialect->getQueryCenterAttrHelper().getAttr(op);
    ASSERT_TRUE(center);
    EXPECT_EQ(center.getType().getShape(), (llvm::ArrayRef<int64_t>{8, 8, 2}));
    auto centers = center.getValues<float>();
    EXPECT_EQ(std::vector<float>(centers.begin(), centers.end()),
              s.queryCenter);
    auto magnitude = dialect->getKeyMagnitudeAttrHelper().getAttr(op);
    ASSERT_TRUE(magnitude);
    EXPECT_EQ(magnitude.getType().getShape(), (llvm::ArrayRef<int64_t>{4, 8}));
    auto magnitudes = magnitude.getValues<float>();
    EXPECT_EQ(std::vector<float>(magnitudes.begin(), magnitudes.end()),
              s.keyMagnitude);
    EXPECT_TRUE(dialect->getQueryMagnitudeAttrHelper().getAttr(op));
    EXPECT_TRUE(dialect->getKeyCenterAttrHelper().getAttr(op));
  });
  EXPECT_EQ(caches, 2);
}

TEST_F(Calibration, KeyAxesDiagonaliseTheQueryWeightedKeyMoment) {
  // kv.key_axes against its definition, in double: weights s_i = the root
  // of the group's mean (E|q_f|)^2 for coordinate i's RoPE pair f (half
  // style: i and i + 8), and axes U orthonormal with U^T (S E[k k^T] S) U
  // diagonal, largest first.
  import::ImportedModel model = importModel();
  std::optional<Statistics> stats = calibrateAndAttach(model);
  ASSERT_TRUE(stats);
  auto *dialect = context.getLoadedDialect<mlir::kv::KVDialect>();
  const int64_t d = 16, heads = 4, group = 2, columns = d + 1;
  int caches = 0;
  model.module->walk([&](mlir::kv::CacheOp op) {
    ++caches;
    const LayerStatistics &s = stats->layers[op.getLayer()];
    auto attr = dialect->getKeyAxesAttrHelper().getAttr(op);
    ASSERT_TRUE(attr);
    std::vector<float> axes(attr.getValues<float>().begin(),
                            attr.getValues<float>().end());
    ASSERT_EQ(axes.size(), size_t(heads * d * columns));
    for (int64_t h = 0; h < heads; ++h) {
      auto at = [&](int64_t i, int64_t j) {
        return double(axes[size_t((h * d + i) * columns + j)]);
      };
      std::vector<double> weight(d);
      for (int64_t i = 0; i < d; ++i) {
        int64_t f = i % (d / 2);
        double sum = 0;
        for (int64_t q = h * group; q < (h + 1) * group; ++q)
          sum += std::pow(s.queryMagnitude[size_t(q * d / 2 + f)], 2);
        weight[i] = std::sqrt(sum / group);
        EXPECT_NEAR(at(i, d), weight[i], 1e-6 * weight[i]) << "weight " << i;
      }
      std::vector<double> a(d * d);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j)
          a[i * d + j] =
              weight[i] * weight[j] *
              (s.keyCovariance[size_t((h * d + i) * d + j)] +
               s.keyMean[size_t(h * d + i)] * s.keyMean[size_t(h * d + j)]);
      expectDiagonalises(at, a, d);
    }
  });
  EXPECT_EQ(caches, 2);
}

TEST_F(Calibration, ValueAttentionAxesDiagonaliseTheAttentionMoment) {
  // kv.value_attention_axes: orthonormal, B^T A B diagonal and sorted for
  // the attention-weighted moment A, the diagonal the spectrum; the
  // exporter takes their first columns, which kv-lowrank asks for by
  // default.
  // (64 tokens would leave no entry outside the exact 4 + 64.)
  import::ImportedModel model = importModel();
  std::optional<Statistics> stats = calibrateAndAttach(model, 300);
  ASSERT_TRUE(stats && stats->hasAttentionMoment());
  auto *dialect = context.getLoadedDialect<mlir::kv::KVDialect>();
  const int64_t d = 16, heads = 4;
  std::vector<std::vector<float>> layerAxes(2);
  model.module->walk([&](mlir::kv::CacheOp op) {
    const LayerStatistics &s = stats->layers[op.getLayer()];
    auto attr = dialect->getValueAttentionAxesAttrHelper().getAttr(op);
    auto spectrumAttr =
        dialect->getValueAttentionSpectrumAttrHelper().getAttr(op);
    ASSERT_TRUE(attr && spectrumAttr);
    std::vector<float> axes(attr.getValues<float>().begin(),
                            attr.getValues<float>().end());
    std::vector<float> spectrum(spectrumAttr.getValues<float>().begin(),
                                spectrumAttr.getValues<float>().end());
    ASSERT_EQ(axes.size(), size_t(heads * d * d));
    // Not the plain second moment's axes.
    auto plain = dialect->getValueAxesAttrHelper().getAttr(op);
    ASSERT_TRUE(plain);
    EXPECT_NE(std::vector<float>(plain.getValues<float>().begin(),
                                 plain.getValues<float>().end()),
              axes);
    for (int64_t h = 0; h < heads; ++h) {
      auto at = [&](int64_t i, int64_t j) {
        return double(axes[size_t((h * d + i) * d + j)]);
      };
      std::vector<double> a(s.valueAttentionMoment.begin() + h * d * d,
                            s.valueAttentionMoment.begin() + (h + 1) * d * d);
      EXPECT_GT(a[0] + a[d + 1], 0.0);
      expectDiagonalises(at, a, d, spectrum.data() + h * d);
    }
    layerAxes[op.getLayer()] = std::move(axes);
  });
  std::shared_ptr<const kvrt::Artifact> artifact =
      compile(model, "kv-lowrank{rank=4}");
  ASSERT_TRUE(artifact);
  for (int layer = 0; layer < 2; ++layer) {
    const kvrt::schema::Encoding &value =
        artifact->manifest().cache(layer).value();
    std::vector<float> basis = Calibration::basis(*artifact, value);
    // [heads][d][rank + 1]: the first 4 axes, then a zero centre.
    ASSERT_EQ(basis.size(), size_t(heads * d * 5));
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d; ++i) {
        for (int64_t j = 0; j < 4; ++j)
          EXPECT_EQ(basis[size_t((h * d + i) * 5 + j)],
                    layerAxes[layer][size_t((h * d + i) * d + j)]);
        EXPECT_EQ(basis[size_t((h * d + i) * 5 + 4)], 0.0f);
      }
  }
}

TEST_F(Calibration, SvdTakesThePlainSecondMomentAxesOfKeysAndValues) {
  // kv.key_moment_axes: orthonormal, diagonalising the pre-RoPE keys'
  // uncentred second moment E[k k^T] (covariance + mean mean^T), the
  // diagonal kv.key_moment_spectrum. method=svd exports their first
  // columns with weights 1 and the keys' mean for keys, and kv.value_axes'
  // with a zero centre for values (WhitenedSvdTest checks these are
  // Palu's).
  import::ImportedModel model = importModel();
  std::optional<Statistics> stats = calibrateAndAttach(model);
  ASSERT_TRUE(stats);
  auto *dialect = context.getLoadedDialect<mlir::kv::KVDialect>();
  const int64_t d = 16, heads = 4, rank = 4;
  std::vector<std::vector<float>> keyAxes(2), valueAxes(2);
  model.module->walk([&](mlir::kv::CacheOp op) {
    const LayerStatistics &s = stats->layers[op.getLayer()];
    auto attr = dialect->getKeyMomentAxesAttrHelper().getAttr(op);
    auto spectrumAttr = dialect->getKeyMomentSpectrumAttrHelper().getAttr(op);
    auto values = dialect->getValueAxesAttrHelper().getAttr(op);
    ASSERT_TRUE(attr && spectrumAttr && values);
    std::vector<float> axes(attr.getValues<float>().begin(),
                            attr.getValues<float>().end());
    std::vector<float> spectrum(spectrumAttr.getValues<float>().begin(),
                                spectrumAttr.getValues<float>().end());
    ASSERT_EQ(axes.size(), size_t(heads * d * d));
    for (int64_t h = 0; h < heads; ++h) {
      auto at = [&](int64_t i, int64_t j) {
        return double(axes[size_t((h * d + i) * d + j)]);
      };
      std::vector<double> a(d * d);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j)
          a[i * d + j] =
              s.keyCovariance[size_t((h * d + i) * d + j)] +
              s.keyMean[size_t(h * d + i)] * s.keyMean[size_t(h * d + j)];
      expectDiagonalises(at, a, d, spectrum.data() + h * d);
    }
    keyAxes[op.getLayer()] = std::move(axes);
    valueAxes[op.getLayer()].assign(values.getValues<float>().begin(),
                                    values.getValues<float>().end());
  });
  std::shared_ptr<const kvrt::Artifact> artifact =
      compile(model, "kv-lowrank{method=svd side=key rank=4},"
                     "kv-lowrank{method=svd rank=4}");
  ASSERT_TRUE(artifact);
  for (int layer = 0; layer < 2; ++layer)
    for (bool keys : {true, false}) {
      SCOPED_TRACE(std::string(keys ? "keys" : "values") + " of layer " +
                   std::to_string(layer));
      const kvrt::schema::CacheLayout &cache =
          artifact->manifest().cache(layer);
      const kvrt::schema::Encoding &side = keys ? cache.key() : cache.value();
      std::vector<float> basis = Calibration::basis(*artifact, side);
      const std::vector<float> &axes = keys ? keyAxes[layer] : valueAxes[layer];
      // Key rows end with their weight and the mean (centre=true, the
      // default), value rows with theirs (0).
      const int64_t columns = keys ? rank + 2 : rank + 1;
      ASSERT_EQ(basis.size(), size_t(heads * d * columns));
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < d; ++i) {
          const float *row = &basis[size_t((h * d + i) * columns)];
          for (int64_t j = 0; j < rank; ++j)
            EXPECT_EQ(row[j], axes[size_t((h * d + i) * d + j)]);
          EXPECT_EQ(row[rank], keys ? 1.0f : 0.0f);
          if (keys)
            EXPECT_EQ(
                row[rank + 1],
                float(stats->layers[size_t(layer)].keyMean[size_t(h * d + i)]));
        }
    }
}

TEST_F(Calibration, RefusesTextItCannotUse) {
  import::ImportedModel model = importModel();
  std::string empty = ::testing::TempDir() + "/empty.txt";
  std::fclose(std::fopen(empty.c_str(), "w"));
  kvrt::StatusOr<Statistics> stats = calibrate::calibrate(model, empty, {});
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.status().message(), empty + " holds no text to calibrate on");
  stats = calibrate::calibrate(model, empty + ".missing", {});
  ASSERT_FALSE(stats);
  EXPECT_NE(stats.status().message().find("empty.txt.missing"),
            std::string::npos);
}

TEST_F(Calibration, Fp8PerHeadScalesAreAbsMaxOver448) {
  import::ImportedModel model = importModel();
  Statistics s = handMade();
  ASSERT_TRUE(calibrate::attachStatistics(*model.module, s, "hand.json"));
  auto artifact = compile(model, "kv-quantize{encoding=fp8 scale=per_head}");
  const kvrt::schema::Manifest &m = artifact->manifest();
  ASSERT_EQ(m.cache_size(), 2);
  // A head that held only zeros gets 1.
  EXPECT_EQ(scales(*artifact, m.cache(0).key()),
            (std::vector<float>{1.0f, 1.0f, 1e-3f / 448, 2.0f}));
  EXPECT_EQ(
      scales(*artifact, m.cache(0).value()),
      (std::vector<float>{1.0f / 448, 2.0f / 448, 3.0f / 448, 4.0f / 448}));
  EXPECT_EQ(
      scales(*artifact, m.cache(1).key()),
      (std::vector<float>{5.0f / 448, 6.0f / 448, 7.0f / 448, 8.0f / 448}));
  EXPECT_EQ(scales(*artifact, m.cache(1).value()),
            (std::vector<float>{0.5f / 448, 0.25f / 448, 1.0f, 12.0f / 448}));
  // Provenance travels into the manifest.
  EXPECT_EQ(m.calibration().source(), "hand.txt");
  EXPECT_EQ(m.calibration().source_xxh64(), 42u);
  EXPECT_EQ(m.calibration().tokens(), 16u);
  EXPECT_EQ(m.calibration().window(), 8u);
}

TEST_F(Calibration, Fp8E5M2ScalesAreAbsMaxOver57344) {
  import::ImportedModel model = importModel();
  ASSERT_TRUE(
      calibrate::attachStatistics(*model.module, handMade(), "hand.json"));
  // kv-quantize writes e4m3 only; retype every cache value by hand.
  auto e5m2 = mlir::kv::Fp8EncodingAttr::get(
      &context, mlir::kv::Fp8Format::E5M2, mlir::kv::ScaleMode::PerHead, 0, 0);
  model.module->walk([&](mlir::Operation *op) {
    for (mlir::Value result : op->getResults())
      if (auto cache = llvm::dyn_cast<mlir::kv::CacheType>(result.getType()))
        result.setType(mlir::kv::CacheType::get(&context, cache.getHeads(),
                                                cache.getHeadDim(),
                                                cache.getPage(), e5m2, e5m2));
  });
  auto artifact = compile(model, "");
  EXPECT_EQ(scales(*artifact, artifact->manifest().cache(1).key()),
            (std::vector<float>{5.0f / 57344, 6.0f / 57344, 7.0f / 57344,
                                8.0f / 57344}));
}

TEST_F(Calibration, Nvfp4TensorScaleIsTheLargestAbsMaxOver6Times448) {
  import::ImportedModel model = importModel();
  ASSERT_TRUE(
      calibrate::attachStatistics(*model.module, handMade(), "hand.json"));
  auto artifact = compile(model, "kv-quantize{encoding=nvfp4}");
  const kvrt::schema::Manifest &m = artifact->manifest();
  EXPECT_EQ(scales(*artifact, m.cache(0).key()),
            std::vector<float>{896.0f / 2688.0f});
  EXPECT_EQ(scales(*artifact, m.cache(1).value()),
            std::vector<float>{12.0f / 2688.0f});
}

TEST_F(Calibration, UncalibratedNvfp4HasNoScaleTensor) {
  import::ImportedModel model = importModel();
  auto artifact = compile(model, "kv-quantize{encoding=nvfp4}");
  EXPECT_FALSE(artifact->manifest().cache(0).key().has_scale_tensor());
  EXPECT_FALSE(artifact->manifest().calibration().tokens());
}

TEST_F(Calibration, ExporterRefusesFp8PerHeadWithoutStatistics) {
  import::ImportedModel model = importModel();
  ASSERT_TRUE(
      calibrate::attachStatistics(*model.module, handMade(), "hand.json"));
  ASSERT_TRUE(
      runPipeline(*model.module, "kv-quantize{encoding=fp8 scale=per_head}"));
  auto *dialect = context.getLoadedDialect<mlir::kv::KVDialect>();
  model.module->walk([&](mlir::kv::CacheOp op) {
    if (op.getLayer() == 1)
      dialect->getValueAbsmaxAttrHelper().removeAttr(op);
  });
  kvrt::ArtifactWriter writer;
  kvrt::Status exported = exporter::exportModule(*model.module, model.config,
                                                 model.tokenizer, {}, writer);
  ASSERT_FALSE(exported);
  EXPECT_NE(exported.message().find(
                "stores values as fp8 with per_head scales, which come from "
                "calibration, and the cache has no kv.value_absmax "
                "statistics; pass --calibrate FILE"),
            std::string::npos)
      << exported.message();
}

TEST_F(Calibration, StatisticsMustFitTheModel) {
  import::ImportedModel model = importModel();
  Statistics s = handMade();
  s.layers.pop_back();
  kvrt::Status attached =
      calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(),
            "stats.json: the statistics describe 1 layer but the model has 2 "
            "layers");
  s = handMade();
  s.kvHeads = 3;
  attached = calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(),
            "stats.json: the statistics describe caches of 3 KV heads of 16 "
            "but layer 0's cache has 4 KV heads of 16");
  s = handMade();
  s.layers[1].valueAbsMax[3] = std::nanf("");
  attached = calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(),
            "stats.json: layer 1's value absmax of KV head 3 is nan; it must "
            "be finite and non-negative");
  s = handMade();
  s.heads = 8;
  attached = calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(), "stats.json: layer 0's query centre has 0 "
                                "values for 8 heads of 16");
  for (LayerStatistics &layer : s.layers) {
    layer.queryCenter.assign(8 * 16, 0.5f);
    layer.queryMagnitude.assign(8 * 8, 1.0f);
    layer.keyCenter.assign(4 * 16, -0.5f);
    layer.keyMagnitude.assign(4 * 8, 1.0f);
  }
  s.layers[1].keyMagnitude[9] = -1.0f;
  attached = calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(),
            "stats.json: layer 1's key magnitude of head 1 is -1.000000; it "
            "must be finite and non-negative");
  s.layers[1].keyMagnitude[9] = 1.0f;
  s.layers[0].queryCenter[3] = INFINITY;
  attached = calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(),
            "stats.json: layer 0's query centre of head 0 is inf; it must be "
            "finite");
  // 4 query heads fit 4 KV heads, but not this model's 8.
  s.layers[0].queryCenter[3] = 0.0f;
  s.heads = 4;
  for (LayerStatistics &layer : s.layers) {
    layer.queryCenter.resize(4 * 16);
    layer.queryMagnitude.resize(4 * 8);
  }
  attached = calibrate::attachStatistics(*model.module, s, "stats.json");
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.message(),
            "stats.json: the statistics describe 4 query heads but layer 0's "
            "attention has 8 query heads");
  // Nothing was attached by the refused calls.
  EXPECT_FALSE((*model.module)->hasAttr("kv.calibration"));
}

} // namespace
