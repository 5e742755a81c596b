//===- CodecAttentionTest.cpp - Attention through the codec interface -----===//
//
// Grouped-query attention computed the way the runtime does it (prepared
// queries, score(), accumulate(), finishOutput() over entries spread across
// pages) must equal float64 attention over the decoded keys and values (for
// polar rotated back), and stray from attention over the original keys and
// values only as far as the format allows.
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"
#include "runtime/src/cache/codecs/LloydMax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace kvrt;
using namespace kvrt::test;

namespace {

constexpr uint32_t kKvHeads = 2, kGroup = 3, kTokens = 160, kPageSize = 64;
/// Logical page p of the sequence lives in physical page kPageOrder[p]; the
/// last is half full.
constexpr uint32_t kPageOrder[] = {2, 0, 1};

struct CacheSideSpec {
  schema::Encoding encoding;
  bool perHeadScales = false;
};

/// Keys or values of one sequence, stored through a codec.
class StoredSide {
public:
  StoredSide(const CacheSideSpec &spec, CacheSide side, uint32_t headDim,
             const std::vector<float> &rows)
      : spec_(spec), side_(side), headDim_(headDim) {
    CodecContext context;
    context.layer = 3;
    context.side = side;
    context.kvHeads = kKvHeads;
    context.headDim = headDim;
    if (spec.perHeadScales)
      context.scales = calibratedScales(rows);
    codec_ = makeCodecOrDie(spec.encoding, context);
    headBytes_ = codec_->headBytes(kPageSize);
    pages_.assign(std::size(kPageOrder),
                  std::vector<uint8_t>(kKvHeads * headBytes_));
    const uint32_t group = codec_->groupTokens();
    for (uint32_t t = 0; t < kTokens; t += group)
      for (uint32_t g = 0; g < kKvHeads; ++g)
        codec_->encode(&rows[(size_t(t) * kKvHeads + g) * headDim],
                       kKvHeads * headDim, g, t % kPageSize, area(t, g));
  }

  const Codec &codec() const { return *codec_; }
  const uint8_t *area(uint32_t token, uint32_t head) const {
    return &pages_[kPageOrder[token / kPageSize]][head * headBytes_];
  }
  uint8_t *area(uint32_t token, uint32_t head) {
    return &pages_[kPageOrder[token / kPageSize]][head * headBytes_];
  }

  /// The stored entry in the model's domain, in float64.
  std::vector<double> dequantized(uint32_t token, uint32_t head) const {
    std::vector<float> decoded(headDim_);
    codec_->decode(area(token, head), token % kPageSize, decoded.data());
    std::vector<double> v(decoded.begin(), decoded.end());
    if (spec_.encoding.kind() == schema::ENCODING_POLAR)
      v = multiply(polarRotation(headDim_, spec_.encoding.seed(), 3, side_), v,
                   /*transposed=*/true);
    return v;
  }

private:
  /// absmax / 448 per head over the sequence, as calibration would give.
  std::vector<float> calibratedScales(const std::vector<float> &rows) const {
    std::vector<float> scales(kKvHeads, 0);
    for (size_t i = 0; i < rows.size(); ++i) {
      float &s = scales[i / headDim_ % kKvHeads];
      s = std::max(s, std::fabs(rows[i]) / 448);
    }
    return scales;
  }

  CacheSideSpec spec_;
  CacheSide side_;
  uint32_t headDim_;
  std::unique_ptr<Codec> codec_;
  uint64_t headBytes_;
  std::vector<std::vector<uint8_t>> pages_;
};

using Matrix = std::vector<std::vector<double>>;

/// Float64 attention of q [kKvHeads * kGroup][d] over keys and values given
/// per (token, head) by `key` and `value`.
template <typename KeyFn, typename ValueFn>
Matrix referenceAttention(const std::vector<float> &q, uint32_t d, KeyFn key,
                          ValueFn value) {
  Matrix out;
  for (uint32_t h = 0; h < kKvHeads * kGroup; ++h) {
    const uint32_t g = h / kGroup;
    std::vector<double> scores(kTokens);
    double max = -INFINITY;
    for (uint32_t t = 0; t < kTokens; ++t) {
      std::vector<double> k = key(t, g);
      double s = 0;
      for (uint32_t i = 0; i < d; ++i)
        s += q[h * d + i] * k[i];
      scores[t] = s / std::sqrt(double(d));
      max = std::max(max, scores[t]);
    }
    std::vector<double> o(d, 0.0);
    double sum = 0;
    for (uint32_t t = 0; t < kTokens; ++t) {
      double w = std::exp(scores[t] - max);
      sum += w;
      std::vector<double> v = value(t, g);
      for (uint32_t i = 0; i < d; ++i)
        o[i] += w * v[i];
    }
    for (double &x : o)
      x /= sum;
    out.push_back(o);
  }
  return out;
}

/// The runtime's way: one prepared query per head of a KV head's group,
/// scores and accumulation in the codecs' domains, the softmax in float.
Matrix codecAttention(const std::vector<float> &q, uint32_t d,
                      const StoredSide &keys, const StoredSide &values) {
  const Codec &keyCodec = keys.codec(), &valueCodec = values.codec();
  const uint32_t stride = keyCodec.preparedQuerySize();
  std::vector<float> prepared(kGroup * stride), scratch(d),
      scores(kTokens * kGroup), acc(kGroup * d);
  Matrix out;
  for (uint32_t g = 0; g < kKvHeads; ++g) {
    for (uint32_t j = 0; j < kGroup; ++j)
      keyCodec.prepareQuery(&q[(g * kGroup + j) * d], g, &prepared[j * stride]);
    for (uint32_t t = 0; t < kTokens; ++t)
      keyCodec.score(prepared.data(), kGroup, keys.area(t, g), t % kPageSize,
                     &scores[t * kGroup], scratch.data());
    float max[kGroup], sum[kGroup] = {};
    for (uint32_t j = 0; j < kGroup; ++j) {
      max[j] = -INFINITY;
      for (uint32_t t = 0; t < kTokens; ++t) {
        scores[t * kGroup + j] /= std::sqrt(float(d));
        max[j] = std::max(max[j], scores[t * kGroup + j]);
      }
    }
    for (uint32_t t = 0; t < kTokens; ++t)
      for (uint32_t j = 0; j < kGroup; ++j) {
        float &w = scores[t * kGroup + j];
        w = std::exp(w - max[j]);
        sum[j] += w;
      }
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (uint32_t t = 0; t < kTokens; ++t)
      valueCodec.accumulate(&scores[t * kGroup], kGroup, values.area(t, g),
                            t % kPageSize, acc.data(), scratch.data());
    for (uint32_t j = 0; j < kGroup; ++j) {
      valueCodec.finishOutput(&acc[j * d], g);
      std::vector<double> o(d);
      for (uint32_t i = 0; i < d; ++i)
        o[i] = acc[j * d + i] / sum[j];
      out.push_back(o);
    }
  }
  return out;
}

/// The largest |o - reference| / |reference| over query heads.
double relativeError(const Matrix &o, const Matrix &reference) {
  double worst = 0;
  for (size_t h = 0; h < o.size(); ++h) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < o[h].size(); ++i) {
      diff += std::pow(o[h][i] - reference[h][i], 2);
      norm += std::pow(reference[h][i], 2);
    }
    worst = std::max(worst, std::sqrt(diff / norm));
  }
  return worst;
}

/// Keys with uneven channels (scales 0.5 to 2.5, a 4x outlier every 13th,
/// offsets), as real keys have; plain normal values and queries.
struct Sequence {
  uint32_t headDim;
  std::vector<float> keys, values, queries;

  Sequence(uint32_t d, uint32_t seed) : headDim(d) {
    const uint32_t width = kKvHeads * d;
    std::vector<float> channelScales(width), channelMeans(width);
    for (uint32_t i = 0; i < width; ++i) {
      channelScales[i] = i % 13 == 5 ? 4.0f : 0.5f + 0.5f * float(i % 5);
      channelMeans[i] = i % 7 == 2 ? 1.0f : 0.0f;
    }
    keys = randomRows(kTokens, width, seed, channelScales, channelMeans);
    values = randomRows(kTokens, width, seed + 1);
    queries = randomRows(kKvHeads * kGroup, d, seed + 2);
  }

  /// Row (token t, KV head g) of `rows` in float64.
  std::vector<double> row(const std::vector<float> &rows, uint32_t t,
                          uint32_t g) const {
    const float *x = &rows[(size_t(t) * kKvHeads + g) * headDim];
    return std::vector<double>(x, x + headDim);
  }
  Matrix exactAttention() const {
    return referenceAttention(
        queries, headDim,
        [&](uint32_t t, uint32_t g) { return row(keys, t, g); },
        [&](uint32_t t, uint32_t g) { return row(values, t, g); });
  }
};

struct AttentionCase {
  const char *name;
  CacheSideSpec key, value;
  uint32_t headDim;
  /// Bounds on the error against attention over the original keys and
  /// values: the format's loss, neither hidden nor out of proportion.
  double minError, maxError;
};

void PrintTo(const AttentionCase &c, std::ostream *os) { *os << c.name; }

class CodecAttention : public testing::TestWithParam<AttentionCase> {};

TEST_P(CodecAttention, EqualsFloat64AttentionOverTheDecodedCache) {
  const AttentionCase &c = GetParam();
  const uint32_t d = c.headDim;
  const Sequence sequence(d, 21);
  StoredSide keys(c.key, CacheSide::Key, d, sequence.keys);
  StoredSide values(c.value, CacheSide::Value, d, sequence.values);

  Matrix actual = codecAttention(sequence.queries, d, keys, values);
  Matrix decoded = referenceAttention(
      sequence.queries, d,
      [&](uint32_t t, uint32_t g) { return keys.dequantized(t, g); },
      [&](uint32_t t, uint32_t g) { return values.dequantized(t, g); });
  double error = relativeError(actual, sequence.exactAttention());
  RecordProperty("error_vs_exact", std::to_string(error));
  EXPECT_LT(relativeError(actual, decoded), 1e-5);
  // Attention may skip the domain maps of codecs that do not rotate.
  std::vector<float> row = randomRows(1, d, 24), mapped(2 * d);
  keys.codec().prepareQuery(row.data(), 1, mapped.data());
  EXPECT_EQ(keys.codec().rotates(),
            !std::equal(row.begin(), row.end(), mapped.begin()));
  mapped.assign(row.begin(), row.end());
  values.codec().finishOutput(mapped.data(), 1);
  EXPECT_EQ(values.codec().rotates(), mapped != row);
  EXPECT_GE(error, c.minError);
  EXPECT_LE(error, c.maxError);
}

CacheSideSpec spec(schema::Encoding encoding, bool perHeadScales = false) {
  return {std::move(encoding), perHeadScales};
}
CacheSideSpec fp8(schema::Fp8Format format, schema::ScaleMode mode) {
  return spec(fp8Encoding(format, mode), mode == schema::SCALE_MODE_PER_HEAD);
}

// Error bounds bracket the measured errors (in parentheses) by about 2x
// either way. Keys of norm ~1.7 sqrt(d) make logits sensitive: a key's
// relative error e moves its logit by about 1.7 e, and the output, an
// average over many tokens, is small, so errors read large.
INSTANTIATE_TEST_SUITE_P(
    Encodings, CodecAttention,
    testing::Values(
        AttentionCase{"f32", spec(encodingOf(schema::ENCODING_F32)),
                      spec(encodingOf(schema::ENCODING_F32)), 64, 0, 1e-6},
        // (0.0056)
        AttentionCase{"bf16", spec(encodingOf(schema::ENCODING_BF16)),
                      spec(encodingOf(schema::ENCODING_BF16)), 64, 2e-3, 0.012},
        // (0.128)
        AttentionCase{"fp8_e4m3_per_head",
                      fp8(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD),
                      fp8(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD),
                      64, 0.06, 0.25},
        // (0.072)
        AttentionCase{"fp8_e4m3_dynamic",
                      fp8(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_DYNAMIC),
                      fp8(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_DYNAMIC),
                      64, 0.035, 0.15},
        // (0.119)
        AttentionCase{"fp8_e5m2_dynamic",
                      fp8(schema::FP8_FORMAT_E5M2, schema::SCALE_MODE_DYNAMIC),
                      fp8(schema::FP8_FORMAT_E5M2, schema::SCALE_MODE_DYNAMIC),
                      64, 0.06, 0.25},
        // (0.298)
        AttentionCase{"nvfp4", spec(encodingOf(schema::ENCODING_NVFP4)),
                      spec(encodingOf(schema::ENCODING_NVFP4)), 64, 0.15, 0.6},
        // (0.147)
        AttentionCase{"int4_g32", spec(encodingOf(schema::ENCODING_INT, 4, 32)),
                      spec(encodingOf(schema::ENCODING_INT, 4, 32)), 64, 0.07,
                      0.3},
        // (0.854)
        AttentionCase{"int2_g32", spec(encodingOf(schema::ENCODING_INT, 2, 32)),
                      spec(encodingOf(schema::ENCODING_INT, 2, 32)), 64, 0.4,
                      1.7},
        // (0.660)
        AttentionCase{"polar2", spec(polarEncoding(2, 1)),
                      spec(polarEncoding(2, 1)), 64, 0.33, 1.3},
        // (0.410)
        AttentionCase{"polar3", spec(polarEncoding(3, 1)),
                      spec(polarEncoding(3, 1)), 64, 0.2, 0.8},
        // (0.260)
        AttentionCase{"polar4", spec(polarEncoding(4, 1)),
                      spec(polarEncoding(4, 1)), 64, 0.13, 0.5},
        // (0.261)
        AttentionCase{"polar4_d128", spec(polarEncoding(4, 8)),
                      spec(polarEncoding(4, 8)), 128, 0.13, 0.5},
        // (0.570)
        AttentionCase{"polar3_qjl", spec(polarEncoding(3, 1, /*qjl=*/true)),
                      spec(polarEncoding(3, 1)), 64, 0.28, 1.1},
        // (0.347)
        AttentionCase{"fp8_keys_polar2_values",
                      fp8(schema::FP8_FORMAT_E4M3, schema::SCALE_MODE_PER_HEAD),
                      spec(polarEncoding(2, 4)), 64, 0.17, 0.7}),
    [](const testing::TestParamInfo<AttentionCase> &info) {
      return std::string(info.param.name);
    });

/// What polar would store with each candidate scale c of the level vector
/// L of R x / |x|: |x| itself, |x| / |L| (the decoded vector keeps |x|), or
/// the least-squares <R x, L> / |L|^2 (what the codec stores); float64
/// reconstructions R^T c L.
std::vector<std::vector<double>>
polarCandidates(const std::vector<double> &x,
                const std::vector<double> &rotation,
                const codecs::Codebook &codebook) {
  std::vector<double> y = multiply(rotation, x), levels(x.size());
  double norm = 0, levelSquares = 0, alongLevels = 0;
  for (double v : x)
    norm += v * v;
  norm = std::sqrt(norm);
  for (size_t i = 0; i < x.size(); ++i) {
    levels[i] = codebook.levels[codebook.quantize(y[i] / norm)];
    levelSquares += levels[i] * levels[i];
    alongLevels += y[i] * levels[i];
  }
  std::vector<std::vector<double>> candidates;
  for (double scale :
       {norm, norm / std::sqrt(levelSquares), alongLevels / levelSquares}) {
    std::vector<double> scaled = levels;
    for (double &v : scaled)
      v *= scale;
    candidates.push_back(multiply(rotation, scaled, /*transposed=*/true));
  }
  return candidates;
}

// The measurement behind polar's stored scale: attention error against the
// original keys and values, averaged over seeded sequences.
TEST(PolarScale, LeastSquaresGivesTheLowestAttentionError) {
  const uint32_t d = 64, trials = 8;
  const char *names[] = {"exact_norm", "renormalised", "least_squares"};
  for (uint32_t bits = 2; bits <= 4; ++bits) {
    const codecs::Codebook &codebook = codecs::lloydMaxCodebook(d, bits);
    double errors[3] = {};
    for (uint32_t trial = 0; trial < trials; ++trial) {
      const Sequence sequence(d, 100 + 3 * trial);
      std::vector<double> keyRotation =
          polarRotation(d, trial, 3, CacheSide::Key);
      std::vector<double> valueRotation =
          polarRotation(d, trial, 3, CacheSide::Value);
      // [candidate][token * kKvHeads + head]
      std::vector<std::vector<double>> keys[3], values[3];
      for (uint32_t t = 0; t < kTokens; ++t)
        for (uint32_t g = 0; g < kKvHeads; ++g) {
          auto k = polarCandidates(sequence.row(sequence.keys, t, g),
                                   keyRotation, codebook);
          auto v = polarCandidates(sequence.row(sequence.values, t, g),
                                   valueRotation, codebook);
          for (int c = 0; c < 3; ++c) {
            keys[c].push_back(k[c]);
            values[c].push_back(v[c]);
          }
        }
      Matrix exact = sequence.exactAttention();
      for (int c = 0; c < 3; ++c)
        errors[c] += relativeError(referenceAttention(
                                       sequence.queries, d,
                                       [&](uint32_t t, uint32_t g) {
                                         return keys[c][t * kKvHeads + g];
                                       },
                                       [&](uint32_t t, uint32_t g) {
                                         return values[c][t * kKvHeads + g];
                                       }),
                                   exact) /
                     trials;
    }
    for (int c = 0; c < 3; ++c)
      RecordProperty(names[c] + std::string("_") + std::to_string(bits) +
                         "_bits",
                     std::to_string(errors[c]));
    EXPECT_LT(errors[2], errors[0]) << bits << " bits";
    EXPECT_LT(errors[2], errors[1]) << bits << " bits";
  }
}

} // namespace
