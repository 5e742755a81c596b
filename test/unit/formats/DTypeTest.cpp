//===- DTypeTest.cpp - Element sizes and conversions to float32 -----------===//
#include "compiler/import/formats/DType.h"
#include "compiler/import/formats/TensorInfo.h"

#include "FormatBuilders.h"

#include <cmath>

using namespace kvopt::formats;
using namespace kvopt::formats::testing;

namespace {

uint32_t bitsOf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

/// binary16 by its definition, independently of the code under test.
double halfByDefinition(uint16_t h) {
  int sign = h >> 15 ? -1 : 1;
  int exponent = (h >> 10) & 0x1F;
  int mantissa = h & 0x3FF;
  if (exponent == 0x1F)
    return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0)
    return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

TEST(DType, ByteSizes) {
  EXPECT_EQ(dtypeByteSize(DType::F32, 3), 12u);
  EXPECT_EQ(dtypeByteSize(DType::BOOL, 3), 3u);
  EXPECT_EQ(dtypeByteSize(DType::Q8_0, 64), 68u);
  EXPECT_EQ(dtypeByteSize(DType::Q4_0, 32), 18u);
  EXPECT_EQ(dtypeByteSize(DType::Q4_1, 96), 60u);
  EXPECT_EQ(dtypeByteSize(DType::Q4_1, 0), 0u);
  EXPECT_FALSE(dtypeByteSize(DType::Q4_0, 33).has_value());
  EXPECT_FALSE(dtypeByteSize(DType::F64, uint64_t(1) << 61).has_value());
  EXPECT_EQ(dtypeByteSize(DType::F64, (uint64_t(1) << 61) - 1),
            ((uint64_t(1) << 61) - 1) * 8);
  EXPECT_FALSE(dtypeByteSize(DType::Q8_0, ~uint64_t(0) - 31).has_value());
  EXPECT_STREQ(dtypeName(DType::Q4_1), "Q4_1");
  EXPECT_STREQ(dtypeName(DType::BF16), "BF16");
}

TEST(DType, ElementCounts) {
  EXPECT_EQ(elementCount({}), 1u);
  EXPECT_EQ(elementCount({3, 0, 5}), 0u);
  EXPECT_EQ(elementCount({int64_t(1) << 32, int64_t(1) << 31}), uint64_t(1)
                                                                    << 63);
  EXPECT_FALSE(elementCount({int64_t(1) << 32, int64_t(1) << 32}));
  EXPECT_FALSE(elementCount({2, -1}));
  EXPECT_EQ(shapeString({49152, 576}), "[49152, 576]");
}

TEST(DType, EveryHalfConvertsExactly) {
  Bytes in;
  for (uint32_t h = 0; h < 65536; ++h)
    in.u16(uint16_t(h));
  std::vector<float> out(65536);
  ASSERT_TRUE(
      dequantizeToF32(DType::F16, in.bytes.data(), 65536, out.data()).isOk());
  for (uint32_t h = 0; h < 65536; ++h) {
    double expected = halfByDefinition(uint16_t(h));
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(out[h])) << h;
      // The payload and sign survive, as numpy and F16C keep them.
      EXPECT_EQ(bitsOf(out[h]) & 0x807FFFFF,
                ((h & 0x8000u) << 16) | ((h & 0x3FFu) << 13))
          << h;
    } else {
      ASSERT_EQ(bitsOf(out[h]), bitsOf(float(expected))) << h;
    }
  }
}

TEST(DType, EveryBFloat16ConvertsExactly) {
  Bytes in;
  for (uint32_t h = 0; h < 65536; ++h)
    in.u16(uint16_t(h));
  std::vector<float> out(65536);
  ASSERT_TRUE(
      dequantizeToF32(DType::BF16, in.bytes.data(), 65536, out.data()).isOk());
  for (uint32_t h = 0; h < 65536; ++h)
    ASSERT_EQ(bitsOf(out[h]), h << 16) << h;
}

TEST(DType, Q8_0) {
  Bytes block;
  block.u16(0x3400); // d = 0.25
  for (int i = 0; i < 32; ++i)
    block.u8(uint8_t(int8_t(i * 8 - 128)));
  float out[32];
  ASSERT_TRUE(dequantizeToF32(DType::Q8_0, block.bytes.data(), 32, out));
  for (int i = 0; i < 32; ++i)
    EXPECT_EQ(out[i], float(i * 8 - 128) * 0.25f) << i;
}

TEST(DType, Q4_0PutsLowNibblesFirst) {
  Bytes block;
  block.u16(0x3800); // d = 0.5
  for (int i = 0; i < 16; ++i)
    block.u8(uint8_t(i | ((15 - i) << 4)));
  float out[32];
  ASSERT_TRUE(dequantizeToF32(DType::Q4_0, block.bytes.data(), 32, out));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(out[i], float(i - 8) * 0.5f) << i;
    EXPECT_EQ(out[16 + i], float(15 - i - 8) * 0.5f) << i;
  }
}

TEST(DType, Q4_1AddsTheMinimum) {
  Bytes blocks;
  for (uint16_t m : {0xBC00, 0x3555}) { // m = -1, then 0.333...
    blocks.u16(0x2E66).u16(m);          // d = 0.0999755859375
    for (int i = 0; i < 16; ++i)
      blocks.u8(uint8_t((15 - i) | (i << 4)));
  }
  float out[64];
  ASSERT_TRUE(dequantizeToF32(DType::Q4_1, blocks.bytes.data(), 64, out));
  float d = 0.0999755859375f;
  float ms[2] = {-1.0f, 0.333251953125f};
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 16; ++i) {
      // Rounded twice in float32, as ggml does: no fused multiply-add.
      volatile float low = float(15 - i) * d, high = float(i) * d;
      EXPECT_EQ(out[32 * b + i], low + ms[b]) << i;
      EXPECT_EQ(out[32 * b + 16 + i], high + ms[b]) << i;
    }
}

TEST(DType, RefusesWhatItCannotConvert) {
  uint8_t bytes[64] = {};
  float out[32];
  kvrt::Status s = dequantizeToF32(DType::Q4_0, bytes, 31, out);
  expectError(s, {"31 Q4_0 elements", "not a whole number of blocks of 32"});
  s = dequantizeToF32(DType::I8, bytes, 4, out);
  expectError(s, {"cannot convert I8 tensors to float32"});
  EXPECT_TRUE(dequantizeToF32(DType::F32, nullptr, 0, nullptr).isOk());
}

} // namespace
