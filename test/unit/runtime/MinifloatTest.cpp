//===- MinifloatTest.cpp - FP8, E2M1 and fp16 rounding, exhaustively ------===//
#include "runtime/src/cache/codecs/Minifloat.h"
#include "CodecReference.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/cache/codecs/HalfBytes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace kvrt;
using namespace kvrt::codecs;
using kvrt::test::FormatValues;

namespace {

struct Case {
  const char *name;
  const MinifloatFormat &format;
  const FormatValues &reference;
};
std::vector<Case> cases() {
  return {{"e4m3", kE4M3, test::e4m3()},
          {"e5m2", kE5M2, test::e5m2()},
          {"e2m1", kE2M1, test::e2m1()},
          {"f16", kF16, test::f16()}};
}

TEST(Minifloat, EveryFiniteCodeDecodesAndEncodesToItself) {
  for (const Case &c : cases()) {
    uint32_t codes = 2 * c.reference.signBit();
    for (uint32_t code = 0; code < codes; ++code) {
      double value = decodeMinifloat(code, c.format);
      if (!c.reference.isFinite(code)) {
        EXPECT_FALSE(std::isfinite(value)) << c.name << " code " << code;
        continue;
      }
      EXPECT_EQ(value, c.reference.value(code)) << c.name << " code " << code;
      EXPECT_EQ(encodeMinifloat(value, c.format), code)
          << c.name << " code " << code;
    }
  }
}

TEST(Minifloat, E4M3IsOcpE4M3FN) {
  EXPECT_EQ(decodeMinifloat(0x7e, kE4M3), 448.0);
  EXPECT_EQ(decodeMinifloat(0x01, kE4M3), std::ldexp(1.0, -9));
  EXPECT_EQ(decodeMinifloat(0x08, kE4M3), std::ldexp(1.0, -6));
  EXPECT_EQ(decodeMinifloat(0xb8, kE4M3), -1.0);
  EXPECT_TRUE(std::isnan(decodeMinifloat(0x7f, kE4M3)));
  EXPECT_TRUE(std::isnan(decodeMinifloat(0xff, kE4M3)));
  // No infinities: 0x78 is 256, and large values saturate to +-448.
  EXPECT_EQ(decodeMinifloat(0x78, kE4M3), 256.0);
  EXPECT_EQ(encodeMinifloat(1e9, kE4M3), 0x7eu);
  EXPECT_EQ(encodeMinifloat(-std::numeric_limits<double>::infinity(), kE4M3),
            0xfeu);
  EXPECT_EQ(encodeMinifloat(std::nan(""), kE4M3), 0x7fu);
  EXPECT_EQ(encodeMinifloat(-0.0, kE4M3), 0x80u);
}

TEST(Minifloat, MidpointsRoundToTheEvenCode) {
  for (const Case &c : cases()) {
    uint32_t maxCode = encodeMinifloat(c.format.maxFinite, c.format);
    for (uint32_t code = 0; code < maxCode; ++code) {
      double low = decodeMinifloat(code, c.format),
             high = decodeMinifloat(code + 1, c.format);
      double mid = (low + high) / 2;
      uint32_t even = code % 2 == 0 ? code : code + 1;
      EXPECT_EQ(encodeMinifloat(mid, c.format), even)
          << c.name << " between codes " << code << " and " << code + 1;
      EXPECT_EQ(encodeMinifloat(-mid, c.format), even | c.reference.signBit());
      EXPECT_EQ(encodeMinifloat(std::nextafter(mid, 0.0), c.format), code);
      EXPECT_EQ(encodeMinifloat(std::nextafter(mid, high), c.format), code + 1);
    }
    // Between the largest value and the next binade step: saturation.
    double beyond = c.format.maxFinite * 1.0625;
    EXPECT_EQ(encodeMinifloat(beyond, c.format), maxCode) << c.name;
  }
}

TEST(Minifloat, RandomValuesRoundToTheNearestBySearch) {
  std::mt19937_64 rng(5);
  for (const Case &c : cases()) {
    std::uniform_real_distribution<double> exponent(-30, 20);
    for (int i = 0; i < 20000; ++i) {
      double x = std::exp2(exponent(rng)) * (rng() % 2 ? -1 : 1);
      ASSERT_EQ(encodeMinifloat(x, c.format), c.reference.nearest(x))
          << c.name << " x = " << x;
    }
  }
}

TEST(Minifloat, F16AgreesWithTheCpuConversion) {
  for (uint32_t code = 0; code < 65536; ++code) {
    double mine = decodeMinifloat(code, kF16);
    float cpu = cpu::f16ToFloat(uint16_t(code));
    if (std::isnan(mine))
      EXPECT_TRUE(std::isnan(cpu)) << code;
    else
      EXPECT_EQ(mine, double(cpu)) << code;
  }
}

TEST(HalfBytes, BranchFreeLoadsAgreeWithTheCpuConversion) {
  auto expectSame = [](float loaded, uint32_t code) {
    float cpu = cpu::f16ToFloat(uint16_t(code));
    if (std::isnan(cpu))
      EXPECT_TRUE(std::isnan(loaded)) << code;
    else
      EXPECT_EQ(loaded, cpu) << code;
  };
  for (uint32_t code = 0; code < 65536; code += 4) {
    // Little-endian codes code, code + 1, ... in the four lanes.
    uint8_t bytes[8];
    for (uint32_t lane = 0; lane < 4; ++lane) {
      bytes[2 * lane] = uint8_t(code + lane);
      bytes[2 * lane + 1] = uint8_t((code + lane) >> 8);
    }
    Vec4 four = loadF16x4(bytes);
    for (uint32_t lane = 0; lane < 4; ++lane) {
      expectSame(four[lane], code + lane);
      expectSame(loadF16(bytes + 2 * lane), code + lane);
    }
  }
  uint8_t bytes[2];
  EXPECT_EQ(storeF16(bytes, 1e6), 65504.0f);
  EXPECT_EQ(bytes[0] | bytes[1] << 8, 0x7bff);
  EXPECT_EQ(storeF16(bytes, -1.0 / 3), -0.333251953125f);
}

} // namespace
