//===- CodecTest.cpp - Each codec's bytes against a float64 model ---------===//
//
// Pages are encoded out of slot order, then read back byte by byte with the
// layout of docs/kv-encodings.md and compared with codes computed here by
// search (float formats), in float64 (KIVI) or through a dense rotation
// matrix (polar).
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"
#include "runtime/src/cache/codecs/HalfBytes.h"
#include "runtime/src/cache/codecs/LloydMax.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace kvrt;
using namespace kvrt::test;

namespace {

constexpr uint32_t kHeads = 2;

CodecContext contextFor(uint32_t headDim, CacheSide side = CacheSide::Key,
                        std::vector<float> scales = {}, uint32_t layer = 5) {
  CodecContext context;
  context.layer = layer;
  context.side = side;
  context.kvHeads = kHeads;
  context.headDim = headDim;
  context.scales = std::move(scales);
  return context;
}

/// Tokens [pageSize][kHeads][headDim] encoded into one page (the heads'
/// areas back to back, filled with 0xAB first), last group first.
struct EncodedPage {
  std::vector<float> rows;
  std::vector<uint8_t> bytes;
  uint64_t headBytes;
  uint32_t headDim;

  EncodedPage(const Codec &codec, uint32_t pageSize, std::vector<float> data)
      : rows(std::move(data)), headBytes(codec.headBytes(pageSize)),
        headDim(codec.headDim()) {
    bytes.assign(kHeads * headBytes, 0xAB);
    const uint32_t group = codec.groupTokens();
    for (uint32_t slot = pageSize; slot >= group;) {
      slot -= group;
      for (uint32_t h = 0; h < kHeads; ++h)
        codec.encode(x(slot, h), kHeads * headDim, h, slot, area(h));
    }
  }
  const float *x(uint32_t slot, uint32_t head) const {
    return &rows[(size_t(slot) * kHeads + head) * headDim];
  }
  uint8_t *area(uint32_t head) { return &bytes[head * headBytes]; }
  std::vector<float> decode(const Codec &codec, uint32_t slot, uint32_t head) {
    std::vector<float> out(headDim);
    codec.decode(area(head), slot, out.data());
    return out;
  }
};

/// Rows whose channels differ in scale (up to 40x) and offset, as real keys.
std::vector<float> structuredRows(uint32_t tokens, uint32_t headDim,
                                  uint32_t seed) {
  std::vector<float> scales(kHeads * headDim), means(kHeads * headDim);
  for (size_t c = 0; c < scales.size(); ++c) {
    scales[c] = c % 17 == 3 ? 40.0f : 0.5f + float(c % 5);
    means[c] = c % 7 == 1 ? 3.0f : 0.0f;
  }
  return randomRows(tokens, kHeads * headDim, seed, scales, means);
}

TEST(PlainCodec, F32KeepsTheFloats) {
  auto codec = makeCodecOrDie(encodingOf(schema::ENCODING_F32), contextFor(64));
  EXPECT_EQ(codec->headBytes(16), 16u * 64 * 4);
  EncodedPage page(*codec, 16, structuredRows(16, 64, 1));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < 16; ++slot) {
      std::vector<float> decoded = page.decode(*codec, slot, h);
      for (uint32_t i = 0; i < 64; ++i) {
        EXPECT_EQ(readF32(page.area(h) + (slot * 64 + i) * 4),
                  page.x(slot, h)[i]);
        EXPECT_EQ(decoded[i], page.x(slot, h)[i]);
      }
    }
}

TEST(PlainCodec, Bf16RoundsToNearestEven) {
  auto codec =
      makeCodecOrDie(encodingOf(schema::ENCODING_BF16), contextFor(64));
  EXPECT_EQ(codec->headBytes(16), 16u * 64 * 2);
  EncodedPage page(*codec, 16, structuredRows(16, 64, 2));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < 16; ++slot) {
      std::vector<float> decoded = page.decode(*codec, slot, h);
      for (uint32_t i = 0; i < 64; ++i) {
        const uint8_t *p = page.area(h) + (slot * 64 + i) * 2;
        uint32_t expected = bf16().nearest(page.x(slot, h)[i]);
        EXPECT_EQ(uint32_t(p[0] | p[1] << 8), expected);
        EXPECT_EQ(decoded[i], bf16().value(expected));
      }
    }
}

struct AttentionCase {
  const char *name;
  schema::Encoding encoding;
  uint32_t headDim;
  CacheSide side = CacheSide::Key;
  std::vector<float> scales = {};
};

/// Every encoding that attention reads, for head dims with and without a
/// tail of fewer than eight.
std::vector<AttentionCase> attentionCases() {
  return {
      {"bf16", encodingOf(schema::ENCODING_BF16), 64},
      {"bf16", encodingOf(schema::ENCODING_BF16), 128},
      {"bf16", encodingOf(schema::ENCODING_BF16), 36},
      {"f32", encodingOf(schema::ENCODING_F32), 64},
      {"f32", encodingOf(schema::ENCODING_F32), 36},
      {"fp8 e4m3 dynamic",
       fp8Encoding(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_DYNAMIC), 64},
      {"fp8 e5m2 per head",
       fp8Encoding(schema::FP8_FORMAT_E5M2, schema::SCALE_MODE_PER_HEAD),
       40,
       CacheSide::Key,
       {0.5f, 3.0f}},
      {"nvfp4", encodingOf(schema::ENCODING_NVFP4), 64},
      {"kivi-2 keys", encodingOf(schema::ENCODING_INT, 2, 32), 64},
      {"kivi-4 keys", encodingOf(schema::ENCODING_INT, 4, 32), 128},
      {"kivi-2 values", encodingOf(schema::ENCODING_INT, 2, 32), 64,
       CacheSide::Value},
      {"kivi-4 values", encodingOf(schema::ENCODING_INT, 4, 64), 128,
       CacheSide::Value},
      {"polar-2", polarEncoding(2, 7), 64},
      {"polar-3", polarEncoding(3, 7), 64},
      {"polar-4", polarEncoding(4, 7), 128},
      {"polar-4 values", polarEncoding(4, 7), 64, CacheSide::Value},
  };
}

std::unique_ptr<Codec> codecOf(const AttentionCase &c) {
  return makeCodecOrDie(c.encoding, contextFor(c.headDim, c.side, c.scales));
}

TEST(Codec, AttentionIsTheDecodedEntrysBitForBit) {
  // Codecs score and accumulate an entry where it lies (EntryLoops.h);
  // Codec's own versions decode it, then run codecs::dot and addScaled: the
  // same bits, for head dims with and without a tail of fewer than eight
  // and for more query heads than one pass of the loops takes. Polar
  // applies its level scale after the sum and to the weights: its
  // reference runs over the levels alone, decoded from the entry with its
  // scale set to 1.
  constexpr uint32_t kPage = 32;
  for (const AttentionCase &c : attentionCases()) {
    const uint32_t headDim = c.headDim;
    SCOPED_TRACE(std::string(c.name) + " " + std::to_string(headDim));
    auto codec = codecOf(c);
    EncodedPage page(*codec, kPage, structuredRows(kPage, headDim, 3));
    const bool polar = c.encoding.kind() == schema::ENCODING_POLAR;
    const uint32_t entryBytes = uint32_t(codec->headBytes(kPage) / kPage);
    const uint32_t codeBytes = headDim * c.encoding.bits() / 8;
    constexpr int64_t kQueries = 5;
    const std::vector<float> queries =
        randomRows(kQueries, headDim, 4, std::vector<float>(headDim, 2.0f),
                   std::vector<float>(headDim, 0.0f));
    const float weights[kQueries] = {0.375f, 1e-3f, 2.5f, -0.75f, 7.0f};
    std::vector<float> acc(kQueries * headDim, 0.125f), expectedAcc = acc;
    std::vector<float> scratch(headDim);
    for (uint32_t slot = 0; slot < kPage; ++slot) {
      float scores[kQueries];
      codec->score(queries.data(), kQueries, page.area(1), slot, scores,
                   scratch.data());
      codec->accumulate(weights, kQueries, page.area(1), slot, acc.data(),
                        scratch.data());
      float scale = 1.0f;
      std::vector<float> entry = page.decode(*codec, slot, 1);
      if (polar) {
        uint8_t *stored = page.area(1) + slot * entryBytes + codeBytes;
        scale = codecs::loadF16(stored);
        const uint8_t half[2] = {stored[0], stored[1]}, one[2] = {0x00, 0x3c};
        std::memcpy(stored, one, 2);
        entry = page.decode(*codec, slot, 1);
        std::memcpy(stored, half, 2);
      }
      for (int64_t h = 0; h < kQueries; ++h) {
        const float expected =
            scale * codecs::dot(&queries[h * headDim], entry.data(), headDim);
        EXPECT_EQ(std::memcmp(&scores[h], &expected, 4), 0)
            << "slot " << slot << " head " << h;
        codecs::addScaled(&expectedAcc[h * headDim], weights[h] * scale,
                          entry.data(), headDim);
      }
    }
    EXPECT_EQ(std::memcmp(acc.data(), expectedAcc.data(), acc.size() * 4), 0);
  }
}

TEST(Codec, RunsAreEntryByEntryBitForBit) {
  // scoreRun() and accumulateRun() over a run of a page's entries give
  // what scoreAt() and accumulate() give entry by entry: f32 and bf16
  // eight entries at a time, the others one by one with their tables
  // loaded once (EntryLoops.h), polar with QJL through Codec's loop.
  constexpr uint32_t kPage = 32, kFirst = 3, kCount = 27;
  constexpr int64_t kQueries = 5, kStride = kCount + 4;
  for (const AttentionCase &c : attentionCases()) {
    const uint32_t headDim = c.headDim;
    SCOPED_TRACE(std::string(c.name) + " " + std::to_string(headDim));
    auto codec = codecOf(c);
    EncodedPage page(*codec, kPage, structuredRows(kPage, headDim, 5));
    const std::vector<float> queries = randomRows(kQueries, headDim, 6);
    std::vector<int32_t> positions(kCount);
    for (uint32_t t = 0; t < kCount; ++t)
      positions[t] = int32_t(100 + 3 * t);
    const float scale = 0.125f + 1e-3f;
    std::vector<float> scores(kQueries * kStride, -1.0f);
    std::vector<float> scratch(codec->domainSize());
    codec->scoreRun(queries.data(), kQueries, page.area(1), kFirst, kCount,
                    positions.data(), scale, scores.data(), kStride,
                    scratch.data());
    std::vector<float> weights(kQueries * kStride, 0.0f);
    for (uint32_t t = 0; t < kCount; ++t) {
      float perHead[kQueries];
      codec->scoreAt(queries.data(), kQueries, page.area(1), kFirst + t,
                     positions[t], perHead, scratch.data());
      for (int64_t h = 0; h < kQueries; ++h) {
        const float expected = perHead[h] * scale;
        EXPECT_EQ(std::memcmp(&scores[h * kStride + t], &expected, 4), 0)
            << "entry " << t << " head " << h;
        weights[h * kStride + t] = expected * (t % 3 == 1 ? -0.5f : 1.0f);
      }
    }
    for (int64_t h = 0; h < kQueries; ++h)
      EXPECT_EQ(scores[h * kStride + kCount], -1.0f) << "past the run";

    std::vector<float> acc(kQueries * codec->domainSize(), 0.375f);
    acc[1] = -2.0f;
    std::vector<float> expected = acc;
    codec->accumulateRun(weights.data(), kStride, kQueries, page.area(1),
                         kFirst, kCount, acc.data(), scratch.data());
    for (uint32_t t = 0; t < kCount; ++t) {
      float perHead[kQueries];
      for (int64_t h = 0; h < kQueries; ++h)
        perHead[h] = weights[h * kStride + t];
      codec->accumulate(perHead, kQueries, page.area(1), kFirst + t,
                        expected.data(), scratch.data());
    }
    EXPECT_EQ(std::memcmp(acc.data(), expected.data(), acc.size() * 4), 0);
  }
}

/// |x - decoded| for a float format with `mantissaBits`, smallest normal
/// 2^minExponent and largest value `max`, in units where the scale is 1.
double floatFormatBound(double x, int mantissaBits, int minExponent,
                        double max) {
  double a = std::fabs(x);
  if (a > max)
    return a - max + std::ldexp(max, -mantissaBits - 1);
  if (a < std::ldexp(1.0, minExponent))
    return std::ldexp(1.0, minExponent - mantissaBits - 1);
  return std::ldexp(a, -mantissaBits - 1);
}

struct Fp8Case {
  schema::Fp8Format format;
  schema::ScaleMode mode;
};
class Fp8Codec : public testing::TestWithParam<Fp8Case> {};

TEST_P(Fp8Codec, StoresTheNearestCodeOfEachScaledValue) {
  const Fp8Case c = GetParam();
  const bool dynamic = c.mode == schema::SCALE_MODE_DYNAMIC;
  const bool e4m3Format = c.format == schema::FP8_FORMAT_E4M3;
  const FormatValues &format = e4m3Format ? e4m3() : e5m2();
  const double max = e4m3Format ? 448 : 57344;
  const int mantissaBits = e4m3Format ? 3 : 2,
            minExponent = e4m3Format ? -6 : -14;
  // Per-head scales small enough that the 40x channels saturate in e4m3.
  std::vector<float> headScales = {0.05f, 0.3f};
  auto codec =
      makeCodecOrDie(fp8Encoding(c.format, c.mode),
                     contextFor(64, CacheSide::Key,
                                dynamic ? std::vector<float>{} : headScales));
  // Per-head: the head's fp32 scale, then 64 codes per entry; dynamic:
  // 64 codes and the entry's fp32 scale per entry.
  const uint32_t entryBytes = 64 + (dynamic ? 4 : 0), first = dynamic ? 0 : 4;
  EXPECT_EQ(codec->headBytes(32), first + 32u * entryBytes);
  EncodedPage page(*codec, 32, structuredRows(32, 64, 3));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < 32; ++slot) {
      const float *x = page.x(slot, h);
      const uint8_t *entry = page.area(h) + first + slot * entryBytes;
      float scale = headScales[h];
      if (dynamic) {
        float absMax = 0;
        for (uint32_t i = 0; i < 64; ++i)
          absMax = std::max(absMax, std::fabs(x[i]));
        scale = float(absMax / max);
      }
      EXPECT_EQ(readF32(dynamic ? entry + 64 : page.area(h)), scale);
      std::vector<float> decoded = page.decode(*codec, slot, h);
      for (uint32_t i = 0; i < 64; ++i) {
        uint32_t code = format.nearest(x[i] / double(scale));
        ASSERT_EQ(entry[i], code) << "slot " << slot << " coordinate " << i;
        double value = format.value(code) * scale;
        EXPECT_NEAR(decoded[i], value, 1e-6 * std::fabs(value));
        EXPECT_LE(
            std::fabs(x[i] - value),
            scale *
                floatFormatBound(x[i] / scale, mantissaBits, minExponent, max) *
                (1 + 1e-12));
      }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, Fp8Codec,
    testing::Values(
        Fp8Case{schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD},
        Fp8Case{schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_DYNAMIC},
        Fp8Case{schema::FP8_FORMAT_E5M2, schema::SCALE_MODE_PER_HEAD},
        Fp8Case{schema::FP8_FORMAT_E5M2, schema::SCALE_MODE_DYNAMIC}));

class Nvfp4Codec : public testing::TestWithParam<std::vector<float>> {};

TEST_P(Nvfp4Codec, StoresE2M1ValuesWithE4M3BlockScales) {
  const std::vector<float> scales = GetParam();
  const double tensorScale = scales.empty() ? 1.0 : scales[0];
  const uint32_t d = 64, entryBytes = d / 2 + d / 16;
  auto codec = makeCodecOrDie(encodingOf(schema::ENCODING_NVFP4),
                              contextFor(d, CacheSide::Value, scales));
  EXPECT_EQ(codec->headBytes(16), 16u * entryBytes);
  EncodedPage page(*codec, 16, structuredRows(16, d, 4));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < 16; ++slot) {
      const float *x = page.x(slot, h);
      const uint8_t *entry = page.area(h) + slot * entryBytes;
      std::vector<float> decoded = page.decode(*codec, slot, h);
      for (uint32_t block = 0; block < d / 16; ++block) {
        double absMax = 0;
        for (uint32_t i = block * 16; i < block * 16 + 16; ++i)
          absMax = std::max(absMax, std::fabs(double(x[i])));
        uint32_t scaleCode = e4m3().nearest(absMax / 6 / tensorScale);
        ASSERT_EQ(entry[d / 2 + block], scaleCode);
        double scale = e4m3().value(scaleCode) * tensorScale;
        for (uint32_t i = block * 16; i < block * 16 + 16; ++i) {
          uint32_t code = scale > 0 ? e2m1().nearest(x[i] / scale) : 0;
          uint32_t stored = entry[i / 2] >> (i % 2 ? 4 : 0) & 0xf;
          ASSERT_EQ(stored, code) << "slot " << slot << " coordinate " << i;
          double value = e2m1().value(code) * scale;
          EXPECT_NEAR(decoded[i], value, 1e-6 * std::fabs(value));
          EXPECT_LE(std::fabs(x[i] - value),
                    scale * floatFormatBound(x[i] / scale, 1, 0, 6) + 1e-9);
        }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(TensorScales, Nvfp4Codec,
                         testing::Values(std::vector<float>{},
                                         std::vector<float>{0.25f}));

/// KIVI's float64 model: fp16 scale and zero of [min, max], nearest code.
struct Affine {
  uint32_t scaleBits, zeroBits;
  double scale, zero, exactScale, min;

  Affine(double lo, double hi, uint32_t maxCode)
      : scaleBits(f16().nearest((hi - lo) / maxCode)),
        zeroBits(f16().nearest(lo)), scale(f16().value(scaleBits)),
        zero(f16().value(zeroBits)), exactScale((hi - lo) / maxCode), min(lo) {}
  uint32_t code(double x, uint32_t maxCode) const {
    if (scale == 0)
      return 0;
    return uint32_t(
        std::clamp(std::nearbyint((x - zero) / scale), 0.0, double(maxCode)));
  }
  /// |x - decoded|: half a step, plus what fp16 rounding of the scale and
  /// zero moves the grid by.
  double bound(uint32_t maxCode) const {
    return scale / 2 + std::fabs(zero - min) +
           maxCode * std::fabs(scale - exactScale) + 1e-6 * std::fabs(min);
  }
};

void expectAffineEntry(const Affine &affine, uint32_t stored, double x,
                       float decoded, uint32_t maxCode) {
  uint32_t code = affine.code(x, maxCode);
  ASSERT_EQ(stored, code) << "x = " << x;
  double value = affine.zero + code * affine.scale;
  EXPECT_NEAR(decoded, value, 1e-6 * (std::fabs(value) + affine.scale));
  EXPECT_LE(std::fabs(x - value), affine.bound(maxCode));
}

class KiviCodec
    : public testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(KiviCodec, KeysShareAScaleAndZeroPerChannelAndGroup) {
  auto [bits, group] = GetParam();
  const uint32_t d = 128, page = 128, maxCode = (1u << bits) - 1;
  const uint32_t rowBytes = d * bits / 8;
  const uint32_t blockBytes = group * rowBytes + 4 * d;
  auto codec = makeCodecOrDie(encodingOf(schema::ENCODING_INT, bits, group),
                              contextFor(d, CacheSide::Key));
  EXPECT_EQ(codec->groupTokens(), group);
  EXPECT_EQ(codec->headBytes(page), page / group * blockBytes);
  EncodedPage encoded(*codec, page, structuredRows(page, d, 5));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t block = 0; block < page / group; ++block) {
      const uint8_t *base = encoded.area(h) + block * blockBytes;
      std::vector<Affine> affines;
      for (uint32_t c = 0; c < d; ++c) {
        double lo = INFINITY, hi = -INFINITY;
        for (uint32_t t = block * group; t < (block + 1) * group; ++t) {
          lo = std::min(lo, double(encoded.x(t, h)[c]));
          hi = std::max(hi, double(encoded.x(t, h)[c]));
        }
        affines.emplace_back(lo, hi, maxCode);
        const uint8_t *scale = base + group * rowBytes + 2 * c;
        const uint8_t *zero = base + group * rowBytes + 2 * d + 2 * c;
        ASSERT_EQ(uint32_t(scale[0] | scale[1] << 8), affines[c].scaleBits);
        ASSERT_EQ(uint32_t(zero[0] | zero[1] << 8), affines[c].zeroBits);
      }
      for (uint32_t t = 0; t < group; ++t) {
        uint32_t slot = block * group + t;
        std::vector<float> decoded = encoded.decode(*codec, slot, h);
        for (uint32_t c = 0; c < d; ++c)
          expectAffineEntry(affines[c],
                            readBits(base + t * rowBytes, c * bits, bits),
                            encoded.x(slot, h)[c], decoded[c], maxCode);
      }
    }
}

TEST_P(KiviCodec, ValuesShareAScaleAndZeroPerChannelGroup) {
  auto [bits, group] = GetParam();
  const uint32_t d = 128, page = 32, maxCode = (1u << bits) - 1;
  const uint32_t rowBytes = d * bits / 8;
  const uint32_t entryBytes = rowBytes + 4 * (d / group);
  auto codec = makeCodecOrDie(encodingOf(schema::ENCODING_INT, bits, group),
                              contextFor(d, CacheSide::Value));
  EXPECT_EQ(codec->groupTokens(), 1u);
  EXPECT_EQ(codec->headBytes(page), page * entryBytes);
  EncodedPage encoded(*codec, page, structuredRows(page, d, 6));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < page; ++slot) {
      const float *x = encoded.x(slot, h);
      const uint8_t *entry = encoded.area(h) + slot * entryBytes;
      std::vector<float> decoded = encoded.decode(*codec, slot, h);
      for (uint32_t g = 0; g < d / group; ++g) {
        const float *first = x + g * group;
        Affine affine(*std::min_element(first, first + group),
                      *std::max_element(first, first + group), maxCode);
        const uint8_t *meta = entry + rowBytes + 4 * g;
        ASSERT_EQ(uint32_t(meta[0] | meta[1] << 8), affine.scaleBits);
        ASSERT_EQ(uint32_t(meta[2] | meta[3] << 8), affine.zeroBits);
        for (uint32_t c = g * group; c < (g + 1) * group; ++c)
          expectAffineEntry(affine, readBits(entry, c * bits, bits), x[c],
                            decoded[c], maxCode);
      }
    }
}

INSTANTIATE_TEST_SUITE_P(BitsAndGroups, KiviCodec,
                         testing::Combine(testing::Values(2u, 4u),
                                          testing::Values(32u, 64u, 128u)));

class PolarCodec
    : public testing::TestWithParam<std::tuple<uint32_t, uint32_t, CacheSide>> {
};

TEST_P(PolarCodec, StoresCodebookCodesOfTheRotatedUnitVector) {
  auto [bits, d, side] = GetParam();
  const uint64_t seed = 123;
  const uint32_t layer = 5, page = 16, entryBytes = d * bits / 8 + 2;
  auto codec =
      makeCodecOrDie(polarEncoding(bits, seed), contextFor(d, side, {}, layer));
  EXPECT_EQ(codec->headBytes(page), page * entryBytes);
  const std::vector<double> &levels = codecs::lloydMaxCodebook(d, bits).levels;
  const std::vector<double> rotation = polarRotation(d, seed, layer, side);
  EncodedPage encoded(*codec, page, structuredRows(page, d, 7));
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < page; ++slot) {
      std::vector<double> x(encoded.x(slot, h), encoded.x(slot, h) + d);
      double norm = 0;
      for (double v : x)
        norm += v * v;
      norm = std::sqrt(norm);
      std::vector<double> y = multiply(rotation, x);
      const uint8_t *entry = encoded.area(h) + slot * entryBytes;
      std::vector<double> nearest(d);
      double alongLevels = 0, levelSquares = 0;
      for (uint32_t i = 0; i < d; ++i) {
        uint32_t code = 0;
        for (uint32_t l = 1; l < levels.size(); ++l)
          if (std::fabs(y[i] / norm - levels[l]) <
              std::fabs(y[i] / norm - levels[code]))
            code = l;
        ASSERT_EQ(readBits(entry, i * bits, bits), code)
            << "slot " << slot << " coordinate " << i;
        nearest[i] = levels[code];
        alongLevels += y[i] * nearest[i];
        levelSquares += nearest[i] * nearest[i];
      }
      // The scale that fits the level vector to R x by least squares.
      const uint32_t scaleBits = entry[d * bits / 8] | entry[d * bits / 8 + 1]
                                                           << 8;
      ASSERT_EQ(scaleBits, f16().nearest(alongLevels / levelSquares));
      std::vector<float> decoded = encoded.decode(*codec, slot, h);
      for (uint32_t i = 0; i < d; ++i) {
        double value = f16().value(scaleBits) * nearest[i];
        EXPECT_NEAR(decoded[i], value, 1e-6 * std::fabs(value));
      }
    }
}

TEST_P(PolarCodec, RotatesQueriesInAndOutputsBack) {
  auto [bits, d, side] = GetParam();
  auto codec = makeCodecOrDie(polarEncoding(bits, 99), contextFor(d, side));
  const std::vector<double> rotation = polarRotation(d, 99, 5, side);
  std::vector<float> q = randomRows(1, d, 10), prepared(d), row = q;
  codec->prepareQuery(q.data(), 0, prepared.data());
  codec->finishOutput(row.data(), 0);
  std::vector<double> qd(q.begin(), q.end());
  std::vector<double> rotated = multiply(rotation, qd);
  std::vector<double> back = multiply(rotation, qd, /*transposed=*/true);
  for (uint32_t i = 0; i < d; ++i) {
    EXPECT_NEAR(prepared[i], rotated[i], 1e-5);
    EXPECT_NEAR(row[i], back[i], 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    BitsDimsSides, PolarCodec,
    testing::Combine(testing::Values(2u, 3u, 4u), testing::Values(64u, 128u),
                     testing::Values(CacheSide::Key, CacheSide::Value)));

TEST(PolarQjl, StoresResidualSignsAndNorm) {
  const uint32_t d = 64, bits = 3, layer = 2, page = 8;
  const uint32_t codeBytes = d * bits / 8,
                 entryBytes = codeBytes + 2 + d / 8 + 2;
  auto codec = makeCodecOrDie(polarEncoding(bits, 42, /*qjl=*/true),
                              contextFor(d, CacheSide::Key, {}, layer));
  EXPECT_EQ(codec->headBytes(page), page * entryBytes);
  EXPECT_EQ(codec->preparedQuerySize(), 2 * d);
  const std::vector<double> rotation =
      polarRotation(d, 42, layer, CacheSide::Key);
  const std::vector<double> s = qjlMatrix(d, 42, layer);
  const std::vector<double> &levels = codecs::lloydMaxCodebook(d, bits).levels;
  EncodedPage encoded(*codec, page, structuredRows(page, d, 8));
  int signMismatches = 0;
  for (uint32_t h = 0; h < kHeads; ++h)
    for (uint32_t slot = 0; slot < page; ++slot) {
      const uint8_t *entry = encoded.area(h) + slot * entryBytes;
      std::vector<double> residual =
          multiply(rotation, std::vector<double>(encoded.x(slot, h),
                                                 encoded.x(slot, h) + d));
      double norm = readF16(entry + codeBytes), squares = 0;
      for (uint32_t i = 0; i < d; ++i) {
        residual[i] -= norm * levels[readBits(entry, i * bits, bits)];
        squares += residual[i] * residual[i];
      }
      EXPECT_EQ(readF16(entry + codeBytes + 2 + d / 8),
                f16().value(f16().nearest(std::sqrt(squares))));
      std::vector<double> projected = multiply(s, residual);
      for (uint32_t i = 0; i < d; ++i)
        signMismatches += readBits(entry + codeBytes + 2, i, 1) !=
                          uint32_t(projected[i] >= 0);
    }
  // Summation order may flip a sign of a projection within rounding of 0.
  EXPECT_LE(signMismatches, 1);
}

TEST(PolarQjl, MakesScoresUnbiasedOverSeeds) {
  // Over random rotations and projections, QJL's corrected score averages
  // to q.k, while the codebook alone shrinks it by about 1 - d * D.
  const uint32_t d = 64, bits = 2, trials = 400;
  CodecContext context = contextFor(d);
  // k leans towards q, so that q.k is large against the per-draw noise.
  std::vector<float> q = randomRows(1, d, 11), k = randomRows(1, d, 12);
  for (uint32_t i = 0; i < d; ++i)
    k[i] += q[i];
  double exact = 0;
  for (uint32_t i = 0; i < d; ++i)
    exact += double(q[i]) * k[i];
  double withQjl = 0, without = 0;
  std::vector<float> prepared(2 * d), scratch(d);
  for (uint32_t trial = 0; trial < trials; ++trial) {
    for (bool qjl : {false, true}) {
      auto codec = makeCodecOrDie(polarEncoding(bits, trial, qjl), context);
      std::vector<uint8_t> area(codec->headBytes(1));
      codec->encode(k.data(), d, 0, 0, area.data());
      codec->prepareQuery(q.data(), 0, prepared.data());
      float score;
      codec->score(prepared.data(), 1, area.data(), 0, &score, scratch.data());
      (qjl ? withQjl : without) += score / exact / trials;
    }
  }
  RecordProperty("qjl_ratio", std::to_string(withQjl));
  RecordProperty("codebook_ratio", std::to_string(without));
  EXPECT_NEAR(withQjl, 1.0, 0.02);
  double shrink = 1 - d * codecs::lloydMaxCodebook(d, bits).distortion;
  EXPECT_NEAR(without, shrink, 0.02);
}

TEST(NonFiniteInputs, FollowTheDocumentedRules) {
  const float nan = std::nanf(""), inf = INFINITY;
  std::vector<float> x = randomRows(1, 64, 13);
  // fp8: NaN keeps its code, infinity saturates.
  auto fp8 = makeCodecOrDie(
      fp8Encoding(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD),
      contextFor(64, CacheSide::Key, {0.5f, 0.5f}));
  std::vector<float> special = x;
  special[0] = nan;
  special[1] = -inf;
  std::vector<uint8_t> area(fp8->headBytes(1));
  fp8->encode(special.data(), 64, 0, 0, area.data());
  EXPECT_EQ(area[4], 0x7f);
  EXPECT_EQ(area[5], 0xfe);
  // KIVI values: NaN is skipped by the group's minimum and maximum and
  // stores code 0, as the minimum of the other values would.
  auto kivi = makeCodecOrDie(encodingOf(schema::ENCODING_INT, 4, 32),
                             contextFor(64, CacheSide::Value));
  std::vector<float> lowest = x;
  lowest[5] = INFINITY;
  lowest[5] = *std::min_element(lowest.begin(), lowest.begin() + 32);
  special = x;
  special[5] = nan;
  std::vector<uint8_t> expected(kivi->headBytes(1)), actual(expected.size());
  kivi->encode(lowest.data(), 64, 0, 0, expected.data());
  kivi->encode(special.data(), 64, 0, 0, actual.data());
  EXPECT_EQ(readBits(actual.data(), 5 * 4, 4), 0u);
  EXPECT_EQ(actual, expected);
  // Every codec takes NaN and infinities without undefined behaviour (the
  // sanitizer builds check); what they decode to is not specified.
  special = randomRows(32, kHeads * 64, 14);
  for (size_t i = 0; i < special.size(); i += 37)
    special[i] = i % 2 ? nan : -inf;
  for (const schema::Encoding &e :
       {encodingOf(schema::ENCODING_BF16), encodingOf(schema::ENCODING_NVFP4),
        fp8Encoding(schema::FP8_FORMAT_E5M2, schema::SCALE_MODE_DYNAMIC),
        encodingOf(schema::ENCODING_INT, 2, 32), polarEncoding(3, 0, true)}) {
    auto codec = makeCodecOrDie(e, contextFor(64));
    EncodedPage page(*codec, 32, special);
    for (uint32_t slot = 0; slot < 32; ++slot)
      page.decode(*codec, slot, 1);
  }
}

TEST(CodecFactory, RefusesWithOneSentence) {
  struct Refusal {
    schema::Encoding encoding;
    CodecContext context;
    const char *says;
  };
  schema::Encoding kiviBits3 = encodingOf(schema::ENCODING_INT, 3, 32);
  schema::Encoding kiviGroup48 = encodingOf(schema::ENCODING_INT, 2, 48);
  schema::Encoding kivi128 = encodingOf(schema::ENCODING_INT, 2, 128);
  schema::Encoding perHead =
      fp8Encoding(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD);
  schema::Encoding badFormat = perHead;
  badFormat.set_fp8_format(schema::Fp8Format(9));
  schema::Encoding polar5 = polarEncoding(5, 0);
  schema::Encoding polarQjl = polarEncoding(3, 0, /*qjl=*/true);
  schema::Encoding unset;
  std::vector<Refusal> refusals = {
      {encodingOf(schema::ENCODING_NVFP4), contextFor(72),
       "the keys of layer 5 use #kv.nvfp4, which scales blocks of 16 "
       "coordinates, but head_dim 72 is not a multiple of 16"},
      {encodingOf(schema::ENCODING_NVFP4), contextFor(64, CacheSide::Key, {-1}),
       "per-tensor scale of -1"},
      {perHead, contextFor(64), "lacks the calibrated scales"},
      {perHead, contextFor(64, CacheSide::Value, {1}),
       "the values of layer 5 use #kv.fp8 with per_head scales, but the "
       "artifact has 1 scales for 2 KV heads"},
      {perHead, contextFor(64, CacheSide::Key, {1, 0}),
       "the scale of KV head 1 is 0"},
      {badFormat, contextFor(64, CacheSide::Key, {1, 1}),
       "an fp8 format this runtime does not know (9)"},
      {kiviBits3, contextFor(64),
       "#kv.int with 3 bits; this runtime stores 2 "
       "or 4"},
      {kiviGroup48, contextFor(96), "group 48; allowed: 32, 64 or 128"},
      {kivi128, contextFor(64, CacheSide::Value),
       "group 128 does not divide head_dim 64"},
      {encodingOf(schema::ENCODING_INT, 2, 32), contextFor(36),
       "head_dim 36 is not a multiple of 8"},
      {polar5, contextFor(64), "#kv.polar with 5 bits"},
      {polarEncoding(3, 0), contextFor(96),
       "power-of-two head_dim of at least 8, but head_dim is 96"},
      {polarQjl, contextFor(64, CacheSide::Value), "applies to keys only"},
      {encodingOf(schema::ENCODING_LOWRANK), contextFor(64),
       "#kv.lowrank, but no rope call rotates the layer's keys"},
      {unset, contextFor(64), "no encoding this runtime knows (kind 0)"},
      {encodingOf(schema::ENCODING_BF16), contextFor(0),
       "a head_dim from 1 to 65536"},
  };
  for (const Refusal &r : refusals) {
    auto codec = makeCodec(r.encoding, r.context);
    ASSERT_FALSE(codec.isOk()) << r.says;
    const std::string &message = codec.status().message();
    EXPECT_NE(message.find(r.says), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find(". "), std::string::npos) << message;
  }
  // KIVI keys group along tokens, so a group need not divide head_dim.
  EXPECT_TRUE(makeCodec(kivi128, contextFor(64, CacheSide::Key)).isOk());
}

TEST(CodecFactory, BitsPerCoordinateMatchTheDocumentedTable) {
  struct Row {
    schema::Encoding encoding;
    CacheSide side;
    double at64, at128;
  };
  schema::Encoding polarQjl = polarEncoding(3, 0, /*qjl=*/true);
  std::vector<Row> rows = {
      {encodingOf(schema::ENCODING_F32), CacheSide::Key, 32, 32},
      {encodingOf(schema::ENCODING_BF16), CacheSide::Key, 16, 16},
      // The head's scale: 32 bits per page of 128 tokens.
      {fp8Encoding(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD),
       CacheSide::Key, 8 + 32.0 / (128 * 64), 8 + 32.0 / (128 * 128)},
      {fp8Encoding(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_DYNAMIC),
       CacheSide::Key, 8.5, 8.25},
      {encodingOf(schema::ENCODING_NVFP4), CacheSide::Key, 4.5, 4.5},
      {encodingOf(schema::ENCODING_INT, 2, 32), CacheSide::Key, 3, 3},
      {encodingOf(schema::ENCODING_INT, 2, 64), CacheSide::Value, 2.5, 2.5},
      {encodingOf(schema::ENCODING_INT, 4, 128), CacheSide::Key, 4.25, 4.25},
      {polarEncoding(2, 0), CacheSide::Key, 2.25, 2.125},
      {polarEncoding(3, 0), CacheSide::Value, 3.25, 3.125},
      {polarEncoding(4, 0), CacheSide::Key, 4.25, 4.125},
      {polarQjl, CacheSide::Key, 4.5, 4.25},
  };
  for (const Row &row : rows) {
    std::vector<float> scales;
    if (row.encoding.kind() == schema::ENCODING_FP8)
      scales = {1, 1};
    auto at64 = makeCodecOrDie(row.encoding, contextFor(64, row.side, scales));
    auto at128 =
        makeCodecOrDie(row.encoding, contextFor(128, row.side, scales));
    EXPECT_EQ(at64->bitsPerCoordinate(128), row.at64)
        << row.encoding.ShortDebugString();
    EXPECT_EQ(at128->bitsPerCoordinate(128), row.at128)
        << row.encoding.ShortDebugString();
  }
}

} // namespace
