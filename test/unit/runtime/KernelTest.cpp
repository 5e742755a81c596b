//===- KernelTest.cpp - CPU kernels against float64 references -----------===//
#include "kvrt/Artifact.h"
#include "runtime/src/backends/cpu/Exp.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

using namespace kvrt;
using namespace kvrt::cpu;

namespace {

std::vector<float> randomVector(size_t n, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

/// max |a - b| / max |b|: the error relative to the reference's scale.
double relativeError(const std::vector<float> &actual,
                     const std::vector<double> &expected) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::abs(double(actual[i]) - expected[i]));
    scale = std::max(scale, std::abs(expected[i]));
  }
  return diff / scale;
}

TEST(Float16, ConvertsBf16AndF16) {
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.5f)), 1.5f);
  // 1 + 2^-8 is halfway between two bf16 values: ties go to even.
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.00390625f)), 1.0f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.01171875f)), 1.015625f);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
  EXPECT_EQ(f16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(f16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(f16ToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(f16ToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16ToFloat(0x0200), std::ldexp(1.0f, -15));
  EXPECT_TRUE(std::isinf(f16ToFloat(0x7c00)));
}

TEST(Linear, MatchesReference) {
  ThreadPool pool(2);
  for (int64_t rows : {1, 3, 9})
    for (int64_t in : {5, 16, 100, 300})
      for (int64_t out : {1, 6, 33, 700}) {
        auto x = randomVector(size_t(rows * in), 1);
        auto w = randomVector(size_t(out * in), 2);
        auto b = randomVector(size_t(out), 3);
        std::vector<float> y(size_t(rows * out));
        linear(pool, x.data(), rows, in, w.data(), out, b.data(), y.data());
        std::vector<double> ref(y.size());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < out; ++o) {
            double s = b[o];
            for (int64_t i = 0; i < in; ++i)
              s += double(x[r * in + i]) * w[o * in + i];
            ref[r * out + o] = s;
          }
        EXPECT_LT(relativeError(y, ref), 1e-6)
            << rows << "x" << in << " -> " << out;
      }
}

TEST(Linear, RowsDoNotDependOnTheBatchOrThreads) {
  ThreadPool two(2), one(1);
  int64_t rows = 7, in = 203, out = 517;
  auto x = randomVector(size_t(rows * in), 4);
  auto w = randomVector(size_t(out * in), 5);
  std::vector<float> batched(size_t(rows * out));
  linear(two, x.data(), rows, in, w.data(), out, nullptr, batched.data());
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> alone(static_cast<size_t>(out));
    linear(one, x.data() + r * in, 1, in, w.data(), out, nullptr, alone.data());
    EXPECT_EQ(std::memcmp(alone.data(), batched.data() + r * out, out * 4), 0)
        << "row " << r;
  }
}

/// `rows` x `columns` random weights in a ggml block format: f16 scales
/// (and Q4_1's minima) of either sign around 2^-6, random codes.
std::vector<uint8_t> randomBlocks(schema::DType dtype, int64_t rows,
                                  int64_t columns, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<uint8_t> bytes(
      size_t(tensorBytes(dtype, uint64_t(rows * columns))));
  for (uint8_t &b : bytes)
    b = uint8_t(random());
  const size_t blockBytes = size_t(dtypeBlockBytes(dtype));
  const int scales = dtype == schema::DTYPE_Q4_1 ? 2 : 1;
  for (size_t at = 0; at < bytes.size(); at += blockBytes)
    for (int s = 0; s < scales; ++s) {
      // Exponent 9 (2^-6), random sign and mantissa.
      const uint16_t half =
          uint16_t((random() & 0x8000u) | 9u << 10 | (random() & 0x3ffu));
      std::memcpy(&bytes[at + 2 * size_t(s)], &half, 2);
    }
  return bytes;
}

TEST(DecodeValues, BlockScalesConvertEveryHalfExactly) {
  // 65536 Q8_0 blocks, block h scaled by the binary16 h, every code 1: the
  // values are the scales, converted eight at a time.
  std::vector<uint8_t> blocks(65536 * 34, 1);
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t half = uint16_t(h);
    std::memcpy(&blocks[h * 34], &half, 2);
  }
  std::vector<float> values(65536 * 32);
  decodeValues(schema::DTYPE_Q8_0, blocks.data(), values.size(), values.data());
  for (uint32_t h = 0; h < 65536; ++h) {
    const float expected = f16ToFloat(uint16_t(h));
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(values[h * 32])) << h;
    } else {
      ASSERT_EQ(std::memcmp(&values[h * 32], &expected, 4), 0) << h;
      ASSERT_EQ(std::memcmp(&values[h * 32 + 31], &expected, 4), 0) << h;
    }
  }
}

TEST(Linear, BlockWeightsGiveTheDecodedWeightsResultsBitForBit) {
  ThreadPool two(2), one(1);
  const int64_t in = 96, out = 517;
  for (schema::DType dtype :
       {schema::DTYPE_Q8_0, schema::DTYPE_Q4_0, schema::DTYPE_Q4_1}) {
    SCOPED_TRACE(dtypeName(dtype));
    std::vector<uint8_t> blocks = randomBlocks(dtype, out, in, 21);
    std::vector<float> decoded(size_t(out * in));
    decodeValues(dtype, blocks.data(), uint64_t(out * in), decoded.data());
    auto bias = randomVector(size_t(out), 22);
    // Passes of four, three, two and one rows over each decoded block, and
    // past 32 rows the blocks decoded ahead for passes of three.
    for (int64_t rows : {1, 2, 3, 4, 5, 7, 33, 40}) {
      auto x = randomVector(size_t(rows * in), 23);
      std::vector<float> fromBlocks(size_t(rows * out)),
          fromValues(size_t(rows * out));
      linear(two, x.data(), rows, in, WeightView{blocks.data(), dtype}, out,
             bias.data(), fromBlocks.data());
      linear(one, x.data(), rows, in, decoded.data(), out, bias.data(),
             fromValues.data());
      EXPECT_EQ(std::memcmp(fromBlocks.data(), fromValues.data(),
                            fromValues.size() * 4),
                0)
          << rows << " rows";
    }
    // Embedding rows decode as the whole table does.
    std::vector<int32_t> tokens = {3, 516, 0, 3};
    std::vector<float> looked(tokens.size() * size_t(in));
    embedding(two, WeightView{blocks.data(), dtype}, in, tokens.data(),
              int64_t(tokens.size()), looked.data());
    for (size_t r = 0; r < tokens.size(); ++r)
      EXPECT_EQ(std::memcmp(&looked[r * size_t(in)],
                            &decoded[size_t(tokens[r] * in)], size_t(in) * 4),
                0);
  }
}

TEST(RmsNorm, MatchesReference) {
  ThreadPool pool(2);
  int64_t rows = 6, dim = 96;
  auto x = randomVector(size_t(rows * dim), 6, 3.0f);
  auto w = randomVector(size_t(dim), 7);
  std::vector<float> y(x.size());
  rmsNorm(pool, x.data(), rows, dim, w.data(), 1e-6f, y.data());
  std::vector<double> ref(y.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < dim; ++i)
      ms += double(x[r * dim + i]) * x[r * dim + i];
    double inv = 1 / std::sqrt(ms / dim + 1e-6);
    for (int64_t i = 0; i < dim; ++i)
      ref[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  EXPECT_LT(relativeError(y, ref), 1e-6);
}

/// Hugging Face's frequency computations (modeling_rope_utils), transcribed
/// array by array in float64.
std::vector<double> referenceFrequencies(const schema::Rope &rope, int64_t d,
                                         double &attentionFactor) {
  std::vector<double> inv(size_t(d / 2));
  for (int64_t i = 0; i < d; i += 2)
    inv[size_t(i / 2)] = 1.0 / std::pow(rope.theta(), double(i) / d);
  attentionFactor = 1.0;
  const schema::RopeScaling &s = rope.scaling();
  if (s.kind() == schema::ROPE_SCALING_LINEAR) {
    for (double &f : inv)
      f /= s.factor();
  } else if (s.kind() == schema::ROPE_SCALING_LLAMA3) {
    double old = double(s.original_max_position());
    double lowWavelen = old / s.low_freq_factor();
    double highWavelen = old / s.high_freq_factor();
    for (double &f : inv) {
      double wavelen = 2 * M_PI / f;
      double llama = wavelen > lowWavelen ? f / s.factor() : f;
      double smooth = (old / wavelen - s.low_freq_factor()) /
                      (s.high_freq_factor() - s.low_freq_factor());
      double smoothed = (1 - smooth) * llama / s.factor() + smooth * llama;
      bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      f = medium ? smoothed : llama;
    }
  } else if (s.kind() == schema::ROPE_SCALING_YARN) {
    double base = rope.theta(), orig = double(s.original_max_position());
    auto correctionDim = [&](double rotations) {
      return (d * std::log(orig / (rotations * 2 * M_PI))) /
             (2 * std::log(base));
    };
    double low = std::max(std::floor(correctionDim(s.beta_fast())), 0.0);
    double high =
        std::min(std::ceil(correctionDim(s.beta_slow())), double(d - 1));
    if (low == high)
      high += 0.001;
    for (size_t i = 0; i < inv.size(); ++i) {
      double posFreq = std::pow(base, double(2 * i) / d);
      double extrapolation = 1.0 / posFreq;
      double interpolation = 1.0 / (s.factor() * posFreq);
      double ramp =
          std::min(1.0, std::max(0.0, (double(i) - low) / (high - low)));
      double extrapolationFactor = 1 - ramp;
      inv[i] = interpolation * (1 - extrapolationFactor) +
               extrapolation * extrapolationFactor;
    }
    attentionFactor = s.attention_factor() > 0
                          ? s.attention_factor()
                          : 0.1 * std::log(s.factor()) + 1.0;
  }
  return inv;
}

schema::Rope makeRope(schema::RopeStyle style, schema::RopeScalingKind kind) {
  schema::Rope rope;
  rope.set_theta(500000);
  rope.set_style(style);
  schema::RopeScaling &s = *rope.mutable_scaling();
  s.set_kind(kind);
  if (kind == schema::ROPE_SCALING_LINEAR) {
    s.set_factor(4);
  } else if (kind == schema::ROPE_SCALING_LLAMA3) {
    s.set_factor(8);
    s.set_low_freq_factor(1);
    s.set_high_freq_factor(4);
    s.set_original_max_position(8192);
  } else if (kind == schema::ROPE_SCALING_YARN) {
    s.set_factor(4);
    s.set_original_max_position(32768);
    s.set_beta_fast(32);
    s.set_beta_slow(1);
  }
  return rope;
}

TEST(Rope, KnownFrequencies) {
  // Llama 3.1: the highest frequency is kept, the lowest divided by 8.
  auto llama3 = ropeFrequencies(
      makeRope(schema::ROPE_STYLE_HALF, schema::ROPE_SCALING_LLAMA3), 128);
  EXPECT_DOUBLE_EQ(llama3.inverse[0], 1.0);
  EXPECT_DOUBLE_EQ(llama3.inverse[63], std::pow(500000.0, -126.0 / 128) / 8);
  // YaRN's default attention factor for factor 4 (Qwen's 0.1 ln 4 + 1).
  auto yarn = ropeFrequencies(
      makeRope(schema::ROPE_STYLE_HALF, schema::ROPE_SCALING_YARN), 128);
  EXPECT_NEAR(yarn.attentionFactor, 1.138629, 1e-6);
}

TEST(Rope, MatchesReferenceInEveryStyleAndScaling) {
  ThreadPool pool(2);
  int64_t rows = 5, heads = 3, d = 64;
  std::vector<int32_t> positions = {0, 1, 17, 4000, 100000};
  auto x = randomVector(size_t(rows * heads * d), 8);
  for (auto style : {schema::ROPE_STYLE_HALF, schema::ROPE_STYLE_INTERLEAVED})
    for (auto kind : {schema::ROPE_SCALING_NONE, schema::ROPE_SCALING_LINEAR,
                      schema::ROPE_SCALING_LLAMA3, schema::ROPE_SCALING_YARN}) {
      schema::Rope r = makeRope(style, kind);
      std::vector<float> y(x.size());
      rope(pool, ropeFrequencies(r, d), x.data(), rows, heads, d,
           positions.data(), y.data());
      double factor;
      std::vector<double> inv = referenceFrequencies(r, d, factor);
      std::vector<double> ref(y.size());
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t h = 0; h < heads; ++h) {
          const float *xh = x.data() + (t * heads + h) * d;
          double *out = ref.data() + (t * heads + h) * d;
          if (style == schema::ROPE_STYLE_HALF) {
            // q * cos + rotate_half(q) * sin over cat(freqs, freqs).
            for (int64_t i = 0; i < d; ++i) {
              double angle = positions[t] * inv[size_t(i % (d / 2))];
              double rotated =
                  i < d / 2 ? -double(xh[i + d / 2]) : double(xh[i - d / 2]);
              out[i] = (xh[i] * std::cos(angle) + rotated * std::sin(angle)) *
                       factor;
            }
          } else {
            // (x[2i] + j x[2i+1]) * exp(j angle), as Meta's reference.
            for (int64_t i = 0; i < d / 2; ++i) {
              double angle = positions[t] * inv[size_t(i)];
              double re = xh[2 * i], im = xh[2 * i + 1];
              out[2 * i] =
                  (re * std::cos(angle) - im * std::sin(angle)) * factor;
              out[2 * i + 1] =
                  (re * std::sin(angle) + im * std::cos(angle)) * factor;
            }
          }
        }
      EXPECT_LT(relativeError(y, ref), 2e-6)
          << "style " << style << " scaling " << kind;
    }
}

/// Keys and values appended to a cache, and queries over it, checked
/// against a direct float64 softmax over the same entries.
struct AttentionCase {
  int64_t qHeads = 8, kvHeads = 2, d = 16;
  std::vector<uint64_t> sequences;
  std::vector<int32_t> positions;
  std::vector<float> keys, values;
};

AttentionCase makeCase(int64_t d = 16) {
  AttentionCase c;
  c.d = d;
  // Three sequences of 37, 5 and 70 tokens, interleaved in one batch; the
  // second stores every other position, as after an eviction.
  int32_t next[3] = {0, 0, 0};
  int lengths[3] = {37, 5, 70};
  for (int round = 0; round < 70; ++round)
    for (int s = 0; s < 3; ++s)
      if (round < lengths[s]) {
        c.sequences.push_back(uint64_t(s + 10));
        c.positions.push_back(next[s]);
        next[s] += s == 1 ? 2 : 1;
      }
  size_t n = c.sequences.size() * size_t(c.kvHeads * c.d);
  c.keys = randomVector(n, 9);
  c.values = randomVector(n, 10);
  return c;
}

/// `kind` with the settings that need no calibration (fp8: dynamic scales).
schema::Encoding plainEncoding(schema::EncodingKind kind) {
  schema::Encoding encoding;
  encoding.set_kind(kind);
  if (kind == schema::ENCODING_FP8)
    encoding.set_scale_mode(schema::SCALE_MODE_DYNAMIC);
  return encoding;
}

/// Entries each sequence keeps exact beside its encoded ones.
struct ExactTokens {
  uint32_t sinks = 0, window = 0;
};

/// Attention of random queries over `c` stored as `kind`; with `encode`,
/// the entries are encoded into pages first (but for `exact.window`), else
/// read from the tails. With `lastRows`, only that many of the case's last
/// rows ask (decode steps over the cache the whole case filled).
std::vector<float> runAttention(const AttentionCase &c, uint32_t pageSize,
                                schema::EncodingKind kind, int64_t window,
                                unsigned threads, bool encode = true,
                                ExactTokens exact = {}, int64_t lastRows = 0) {
  schema::Encoding f32;
  f32.set_kind(schema::ENCODING_F32);
  CodecContext context;
  context.kvHeads = uint32_t(c.kvHeads);
  context.headDim = uint32_t(c.d);
  auto codec = makeCodec(plainEncoding(kind), context);
  auto tailCodec = makeCodec(f32, context);
  EXPECT_TRUE(codec.isOk() && tailCodec.isOk());
  CacheCodecs codecs{codec->get(), codec->get(), tailCodec->get(),
                     kind != schema::ENCODING_F32,
                     kind != schema::ENCODING_F32};
  CacheLayerShape shape;
  shape.kvHeads = uint32_t(c.kvHeads);
  shape.headDim = uint32_t(c.d);
  shape.pageSize = pageSize;
  shape.keyHeadBytes = shape.valueHeadBytes = (*codec)->headBytes(pageSize);
  shape.capacityPages = 1000;
  shape.sinkTokens = exact.sinks;
  shape.tailWindow = exact.window;
  PagedCache cache({shape});
  for (uint64_t s : {10, 11, 12})
    EXPECT_TRUE(cache.addSequence(s).isOk());
  std::vector<std::pair<uint64_t, uint64_t>> counts = {
      {10, 37}, {11, 5}, {12, 70}};
  EXPECT_TRUE(cache.reserve(counts).isOk());
  ThreadPool pool(threads);
  int64_t rows = int64_t(c.sequences.size());
  append(pool, cache, 0, codecs, c.keys.data(), c.values.data(), rows,
         c.sequences.data(), c.positions.data());
  if (encode)
    encodeTails(pool, cache, 0, codecs, c.sequences.data(), rows);
  AttentionParams params;
  params.cache = &cache;
  params.codecs = codecs;
  params.scale = 0.25f;
  params.slidingWindow = window;
  auto q = randomVector(size_t(rows * c.qHeads * c.d), 11);
  const int64_t first = lastRows ? rows - lastRows : 0;
  std::vector<float> out(size_t((rows - first) * c.qHeads * c.d));
  std::vector<std::vector<float>> scratch;
  attention(pool, params, q.data() + first * c.qHeads * c.d, rows - first,
            c.qHeads, c.sequences.data() + first, c.positions.data() + first,
            out.data(), scratch, nullptr);
  return out;
}

/// Float64 attention over `c` as a cache of `kind` holds it: each entry
/// through the codec (an encode and a decode), but the first exact.sinks
/// and last exact.window of each sequence and every entry of an f32 cache,
/// which are exact (rounded to bf16, as the tail rounds them, when the
/// cache is not f32).
std::vector<double> referenceAttention(const AttentionCase &c,
                                       schema::EncodingKind kind,
                                       int64_t window, ExactTokens exact = {}) {
  int64_t rows = int64_t(c.sequences.size()), group = c.qHeads / c.kvHeads;
  CodecContext context;
  context.kvHeads = uint32_t(c.kvHeads);
  context.headDim = uint32_t(c.d);
  auto codec = makeCodec(plainEncoding(kind), context);
  EXPECT_TRUE(codec.isOk());
  std::vector<uint8_t> area((*codec)->headBytes(1));
  std::map<uint64_t, uint64_t> length;
  for (uint64_t s : c.sequences)
    ++length[s];
  std::map<uint64_t, uint64_t> seen;
  std::vector<double> keys(c.keys.size()), values(c.values.size());
  std::vector<float> decoded(size_t(c.d));
  for (int64_t e = 0; e < rows; ++e) {
    uint64_t i = seen[c.sequences[size_t(e)]]++;
    bool kept =
        i < exact.sinks || i + exact.window >= length[c.sequences[size_t(e)]];
    for (int64_t g = 0; g < c.kvHeads; ++g)
      for (auto [from, to] :
           {std::pair{&c.keys, &keys}, std::pair{&c.values, &values}}) {
        size_t at = size_t((e * c.kvHeads + g) * c.d);
        const float *v = from->data() + at;
        if (kind == schema::ENCODING_F32) {
          std::copy(v, v + c.d, to->begin() + ptrdiff_t(at));
          continue;
        }
        // The tail rounds arrivals to bf16; pages encode from the tail.
        std::vector<float> rounded(v, v + c.d);
        for (float &x : rounded)
          x = bf16ToFloat(floatToBf16(x));
        if (kept) {
          std::copy(rounded.begin(), rounded.end(),
                    to->begin() + ptrdiff_t(at));
        } else {
          (*codec)->encode(rounded.data(), c.d, uint32_t(g), 0, area.data());
          (*codec)->decode(area.data(), 0, decoded.data());
          std::copy(decoded.begin(), decoded.end(),
                    to->begin() + ptrdiff_t(at));
        }
      }
  }
  auto q = randomVector(size_t(rows * c.qHeads * c.d), 11);
  std::vector<double> out(q.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < c.qHeads; ++h) {
      int64_t g = h / group;
      std::vector<double> scores;
      std::vector<int64_t> entries;
      for (int64_t e = 0; e < rows; ++e) {
        int64_t distance = c.positions[r] - c.positions[e];
        if (c.sequences[e] != c.sequences[r] || distance < 0 ||
            (window && distance >= window))
          continue;
        double s = 0;
        for (int64_t i = 0; i < c.d; ++i)
          s += double(q[(r * c.qHeads + h) * c.d + i]) *
               keys[size_t((e * c.kvHeads + g) * c.d + i)];
        scores.push_back(s * 0.25);
        entries.push_back(e);
      }
      double m = *std::max_element(scores.begin(), scores.end()), sum = 0;
      for (double &s : scores)
        sum += (s = std::exp(s - m));
      for (size_t k = 0; k < entries.size(); ++k)
        for (int64_t i = 0; i < c.d; ++i)
          out[(r * c.qHeads + h) * c.d + i] +=
              scores[k] / sum *
              values[size_t((entries[k] * c.kvHeads + g) * c.d + i)];
    }
  return out;
}

TEST(Attention, MatchesReferenceWithGqaAtEveryPageSize) {
  AttentionCase c = makeCase();
  std::vector<double> ref = referenceAttention(c, schema::ENCODING_F32, 0);
  std::vector<float> first;
  for (uint32_t pageSize : {1u, 16u, 64u}) {
    std::vector<float> out =
        runAttention(c, pageSize, schema::ENCODING_F32, 0, 2);
    EXPECT_LT(relativeError(out, ref), 1e-6) << "page size " << pageSize;
    if (first.empty())
      first = out;
    // The page size changes where entries live, never the result.
    EXPECT_EQ(out, first) << "page size " << pageSize;
  }
  EXPECT_EQ(runAttention(c, 16, schema::ENCODING_F32, 0, 1), first);
  // Entries still in the tail give the same bits as encoded ones.
  EXPECT_EQ(runAttention(c, 16, schema::ENCODING_F32, 0, 2, false), first);
}

TEST(Attention, FewRowsSpreadOverThreadsGiveTheSameBits) {
  // One or two decode rows have fewer KV-head groups than two per thread:
  // their scores, softmax and value sums are split over tasks by entries,
  // heads and columns, which must change no bit against one thread. A head
  // dimension of 36: column runs of 16, 16 and 4.
  AttentionCase c = makeCase(36);
  for (schema::EncodingKind kind :
       {schema::ENCODING_F32, schema::ENCODING_BF16})
    for (int64_t window : {0, 20})
      for (bool encode : {true, false})
        for (int64_t rows : {1, 2}) {
          std::vector<float> alone =
              runAttention(c, 16, kind, window, 1, encode, {}, rows);
          for (unsigned threads : {2u, 3u, 8u})
            EXPECT_EQ(
                runAttention(c, 16, kind, window, threads, encode, {}, rows),
                alone)
                << threads << " threads, " << rows << " rows, window " << window
                << (encode ? "" : ", in the tail");
        }
  // And as the reference computes it.
  std::vector<double> ref = referenceAttention(c, schema::ENCODING_F32, 0);
  std::vector<double> last(ref.end() - c.qHeads * c.d, ref.end());
  EXPECT_LT(
      relativeError(
          runAttention(c, 16, schema::ENCODING_F32, 0, 2, true, {}, 1), last),
      1e-6);
}

TEST(Attention, SlidingWindow) {
  AttentionCase c = makeCase();
  for (int64_t window : {1, 4, 20}) {
    std::vector<double> ref =
        referenceAttention(c, schema::ENCODING_F32, window);
    std::vector<float> out =
        runAttention(c, 16, schema::ENCODING_F32, window, 2);
    EXPECT_LT(relativeError(out, ref), 1e-6) << "window " << window;
  }
}

TEST(Attention, Bf16Cache) {
  AttentionCase c = makeCase();
  std::vector<double> ref = referenceAttention(c, schema::ENCODING_BF16, 0);
  for (uint32_t pageSize : {1u, 64u})
    for (bool encode : {true, false})
      EXPECT_LT(relativeError(runAttention(c, pageSize, schema::ENCODING_BF16,
                                           0, 2, encode),
                              ref),
                1e-6);
}

TEST(Attention, ExactSinksAndWindowBesideEncodedEntries) {
  // An fp8 cache whose first `sinks` and last `window` tokens per sequence
  // stay exact (bf16): attention reads the sinks' copies, not their
  // entries (the second sequence has only 5 tokens, fewer than some
  // settings keep).
  AttentionCase c = makeCase();
  for (ExactTokens exact : {ExactTokens{4, 0}, ExactTokens{0, 8},
                            ExactTokens{4, 8}, ExactTokens{40, 16}}) {
    std::vector<double> ref =
        referenceAttention(c, schema::ENCODING_FP8, 0, exact);
    for (uint32_t pageSize : {1u, 16u})
      EXPECT_LT(relativeError(runAttention(c, pageSize, schema::ENCODING_FP8, 0,
                                           2, true, exact),
                              ref),
                1e-6)
          << "sinks " << exact.sinks << " window " << exact.window << " page "
          << pageSize;
    // Without the exact copies fp8's rounding shows.
    EXPECT_GT(
        relativeError(runAttention(c, 16, schema::ENCODING_FP8, 0, 2), ref),
        1e-3);
  }
}

TEST(Elementwise, SwigluAddEmbedding) {
  ThreadPool pool(2);
  int64_t n = 40000;
  auto a = randomVector(size_t(n), 12, 4.0f), b = randomVector(size_t(n), 13);
  std::vector<float> y(static_cast<size_t>(n));
  swiglu(pool, a.data(), b.data(), n, y.data());
  std::vector<double> ref(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    ref[i] = a[i] / (1 + std::exp(-double(a[i]))) * b[i];
  EXPECT_LT(relativeError(y, ref), 1e-6);
  // And the float expression's bits, its exponentials taken together.
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(y[i], a[i] / (1.0f + std::exp(-a[i])) * b[i]) << "at " << i;
  add(pool, a.data(), b.data(), n, y.data());
  for (int64_t i = 0; i < n; ++i)
    ref[i] = double(a[i]) + b[i];
  EXPECT_LT(relativeError(y, ref), 1e-7);

  int64_t vocab = 50, hidden = 12;
  auto table = randomVector(size_t(vocab * hidden), 14);
  std::vector<int32_t> tokens = {3, 49, 0, 3};
  std::vector<float> rows(tokens.size() * size_t(hidden));
  embedding(pool, WeightView{table.data(), schema::DTYPE_F32}, hidden,
            tokens.data(), int64_t(tokens.size()), rows.data());
  for (size_t r = 0; r < tokens.size(); ++r)
    for (int64_t i = 0; i < hidden; ++i)
      EXPECT_EQ(rows[r * hidden + i], table[tokens[r] * hidden + i]);
}

/// Whether a and b have the same bits (NaN included).
bool sameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(ExpShifted, MatchesStdExpBitForBit) {
  // Every 251st float of the whole range (NaN, infinities, subnormals, the
  // fast path's edges at |x| = 88 and their neighbours included), in runs
  // of odd lengths so that the last lanes go through the scalar tail too.
  std::vector<float> in;
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 251) {
    float x;
    const uint32_t word = uint32_t(bits);
    std::memcpy(&x, &word, sizeof x);
    in.push_back(x);
  }
  for (float edge : {88.0f, -88.0f, 87.99999f, -87.99999f, 88.72284f,
                     -103.97208f, -87.33655f, 0.0f, -0.0f})
    for (float x :
         {edge, std::nextafter(edge, 0.0f), std::nextafter(edge, 1000.0f),
          std::nextafter(edge, -1000.0f)})
      in.push_back(x);
  std::vector<float> out(in.size());
  for (size_t first = 0; first < in.size(); first += 1001) {
    const size_t count = std::min<size_t>(1001, in.size() - first);
    expShifted(in.data() + first, int64_t(count), 0.0f, out.data() + first);
  }
  for (size_t i = 0; i < in.size(); ++i)
    ASSERT_TRUE(sameBits(out[i], std::exp(in[i])))
        << "e^" << in[i] << ": " << out[i] << " against " << std::exp(in[i]);

  // As the softmax calls it: scores less their maximum, in place.
  std::mt19937 rng(7);
  std::normal_distribution<float> score(0.0f, 12.0f);
  std::vector<float> w(4099);
  for (float &x : w)
    x = score(rng);
  const float offset = *std::max_element(w.begin(), w.end());
  std::vector<float> expected(w.size());
  for (size_t i = 0; i < w.size(); ++i)
    expected[i] = std::exp(w[i] - offset);
  expShifted(w.data(), int64_t(w.size()), offset, w.data());
  for (size_t i = 0; i < w.size(); ++i)
    ASSERT_TRUE(sameBits(w[i], expected[i])) << "at " << i;
}

TEST(ThreadPool, RunsEveryTaskOnceAcrossManyJobs) {
  ThreadPool pool(3);
  for (int job = 0; job < 500; ++job) {
    std::vector<std::atomic<int>> hits(size_t(1 + job % 37));
    pool.run(hits.size(), [&](size_t i, unsigned thread) {
      EXPECT_LT(thread, 3u);
      hits[i].fetch_add(1);
    });
    for (auto &h : hits)
      ASSERT_EQ(h.load(), 1);
  }
}

TEST(FidelityProbe, TotalsDoNotDependOnWhichThreadTookATask) {
  // Three tasks' relative errors: 2^30 + 127 and twice 2^-23, half the
  // last bit of the first, so that their sum depends on its order.
  const float outs[3] = {1073741952.0f, 1.0f + 0x1p-23f, 1.0f + 0x1p-23f};
  const float reference = 1.0f, weight = 1.0f;
  auto record = [&](FidelityProbe &probe, unsigned thread, int64_t task,
                    float out) {
    probe.record(thread, task, 1, 1, 1, 1, 1, &out, &reference, &weight,
                 &weight);
  };
  double alone[3];
  for (int i = 0; i < 3; ++i) {
    FidelityProbe probe;
    probe.beginCall(1, 1);
    record(probe, 0, 0, outs[i]);
    probe.endCall(0);
    alone[i] = probe.layers[0].relativeError;
  }
  const double inOrder = (alone[0] + alone[1]) + alone[2];
  ASSERT_NE(inOrder, alone[0] + (alone[1] + alone[2]));
  // The tasks taken by two threads in two ways: the first with the second,
  // then with neither.
  for (unsigned split : {2u, 1u}) {
    FidelityProbe probe;
    probe.beginCall(2, 3);
    for (int64_t task = 0; task < 3; ++task)
      record(probe, task < split ? 0 : 1, task, outs[task]);
    probe.endCall(0);
    EXPECT_EQ(probe.layers[0].relativeError, inOrder) << "split " << split;
    EXPECT_EQ(probe.layers[0].queries, 3u);
  }
}

} // namespace
