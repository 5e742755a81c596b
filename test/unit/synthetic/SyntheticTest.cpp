//===- SyntheticTest.cpp - Random weights of synthetic models -------------===//
//
// The generator's values have the asked-for spread, depend on the seed, the
// tensor name and the index alone (not on threads or chunks), and are the
// same whether the artifact stores them (streamed through the exporter) or
// the runtime generates them.
//
//===----------------------------------------------------------------------===//
#include "compiler/InitAll.h"
#include "compiler/export/Export.h"
#include "compiler/import/synthetic/RandomWeights.h"
#include "compiler/import/synthetic/SyntheticImport.h"

#include "kvrt/Artifact.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace {

using namespace kvopt;
using namespace kvopt::import::synthetic;
using import::GeneratedValues;

/// Projection weights as the presets make them: standard deviation 0.02.
GeneratedValues projection(uint64_t seed) {
  return GeneratedValues{seed, 0.02f * std::sqrt(3.0f), 0.0f};
}

float fromBf16(uint16_t bits) {
  uint32_t wide = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

TEST(RandomWeights, SpreadOfTheValues) {
  GeneratedValues values =
      projection(tensorSeed(0, "model.layers.0.mlp.up_proj.weight"));
  std::vector<uint16_t> bits(1 << 20);
  fillBf16(values, 0, bits.size(), bits.data());
  double sum = 0, squares = 0, largest = 0;
  for (uint16_t b : bits) {
    double x = fromBf16(b);
    sum += x;
    squares += x * x;
    largest = std::max(largest, std::fabs(x));
  }
  double mean = sum / bits.size();
  double stddev = std::sqrt(squares / bits.size() - mean * mean);
  EXPECT_LT(std::fabs(mean), 1e-4);
  EXPECT_NEAR(stddev, 0.02, 0.0002);
  // Uniform in [-bound, bound), bf16 rounding aside.
  EXPECT_LE(largest, values.bound * 1.004);
  EXPECT_GT(largest, values.bound * 0.99);
}

TEST(RandomWeights, ConstantFill) {
  GeneratedValues ones{tensorSeed(0, "model.norm.weight"), 0.0f, 1.0f};
  std::vector<uint16_t> bits(1000);
  fillBf16(ones, 5, bits.size(), bits.data());
  for (uint16_t b : bits)
    ASSERT_EQ(b, 0x3F80);
}

TEST(RandomWeights, SeedsDependOnModelSeedAndName) {
  EXPECT_EQ(tensorSeed(0, "a.weight"), tensorSeed(0, "a.weight"));
  EXPECT_NE(tensorSeed(0, "a.weight"), tensorSeed(1, "a.weight"));
  EXPECT_NE(tensorSeed(0, "a.weight"), tensorSeed(0, "b.weight"));
}

TEST(RandomWeights, SameValuesOnAnyThreadsAndChunks) {
  GeneratedValues values = projection(tensorSeed(7, "w"));
  uint64_t count = 300000;
  std::vector<uint16_t> one(count), many(count);
  fillBf16(values, 0, count, one.data(), 1);
  fillBf16(values, 0, count, many.data(), 7);
  EXPECT_EQ(one, many);
  // A range starting inside the tensor.
  std::vector<uint16_t> tail(1000);
  fillBf16(values, count - 1000, 1000, tail.data(), 3);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), one.end() - 1000));
}

TEST(RandomWeights, StreamedInChunks) {
  GeneratedValues values = projection(tensorSeed(3, "lm_head.weight"));
  // More than one 16 Mi-value chunk, and not a multiple of it.
  uint64_t count = (uint64_t(16) << 20) + 4099;
  std::vector<uint16_t> expected(count);
  fillBf16(values, 0, count, expected.data());
  std::vector<uint8_t> streamed;
  kvrt::Status status =
      streamBf16(values, count)([&](const void *data, size_t size) {
        auto *bytes = static_cast<const uint8_t *>(data);
        streamed.insert(streamed.end(), bytes, bytes + size);
        return kvrt::Status::ok();
      });
  ASSERT_TRUE(status);
  ASSERT_EQ(streamed.size(), count * 2);
  EXPECT_EQ(std::memcmp(streamed.data(), expected.data(), streamed.size()), 0);
}

class SyntheticImport : public ::testing::Test {
protected:
  SyntheticImport() {
    mlir::DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
  }

  /// llama-tiny with `seed`, compiled and opened.
  std::shared_ptr<const kvrt::Artifact> compile(uint64_t seed,
                                                import::SyntheticWeights where,
                                                const std::string &suffix) {
    auto imported = import::importSynthetic(context, "llama-tiny", seed, where);
    EXPECT_TRUE(imported) << imported.status().message();
    if (!imported)
      return nullptr;
    // Every weight is deferred: the module holds none.
    EXPECT_EQ(imported->deferred.size(), 2u + 2 * 9 + 1);
    kvrt::ArtifactWriter writer;
    exporter::ExportOptions options;
    options.deferred = &imported->deferred;
    kvrt::Status exported =
        exporter::exportModule(*imported->module, imported->config,
                               imported->tokenizer, options, writer);
    EXPECT_TRUE(exported) << exported.message();
    std::string path = ::testing::TempDir() + "/synthetic_test_" +
                       std::to_string(::getpid()) + suffix + ".kvpkg";
    kvrt::Status written = writer.write(path);
    EXPECT_TRUE(written) << written.message();
    auto artifact = kvrt::Artifact::open(path);
    std::remove(path.c_str());
    EXPECT_TRUE(artifact) << artifact.status().message();
    return artifact ? *artifact : nullptr;
  }

  mlir::MLIRContext context;
};

TEST_F(SyntheticImport, UnknownPreset) {
  auto imported = import::importSynthetic(context, "llama-huge", 0);
  ASSERT_FALSE(imported);
  EXPECT_EQ(imported.status().message(),
            "unknown synthetic model 'llama-huge'; the presets are "
            "llama3-8b, llama-tiny");
}

TEST_F(SyntheticImport, StoredAndGeneratedWeightsAgree) {
  auto stored = compile(42, import::SyntheticWeights::Stored, "s");
  auto generated = compile(42, import::SyntheticWeights::Generated, "g");
  ASSERT_TRUE(stored && generated);
  EXPECT_EQ(stored->blobCount(), 21u);
  EXPECT_EQ(generated->blobCount(), 0u);
  const kvrt::schema::Manifest &m = stored->manifest();
  ASSERT_EQ(m.tensors_size(), generated->manifest().tensors_size());
  for (int i = 0; i < m.tensors_size(); ++i) {
    const kvrt::schema::Tensor &t = m.tensors(i);
    ASSERT_EQ(t.dtype(), kvrt::schema::DTYPE_BF16) << t.name();
    EXPECT_TRUE(generated->manifest().tensors(i).has_synthetic()) << t.name();
    auto bytes = stored->tensorData(uint32_t(i));
    auto made = generated->tensorData(uint32_t(i));
    ASSERT_TRUE(bytes && made) << t.name();
    ASSERT_EQ(bytes->size, made->size) << t.name();
    EXPECT_EQ(std::memcmp(bytes->data, made->data, bytes->size), 0) << t.name();
  }
}

} // namespace
