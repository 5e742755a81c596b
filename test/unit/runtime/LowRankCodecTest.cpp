//===- LowRankCodecTest.cpp - Values as a latent on a PCA basis -----------===//
//
// The low-rank codec against its definition: an entry decodes (through
// finishOutput) to its projection mu + B B^T (v - mu) on the head's axes,
// and attention's weighted sum of entries, accumulated in the latent
// domain and mapped back once, equals the weighted sum of the projections.
// An f32 latent makes both exact up to float rounding. Keys are stored
// before RoPE and scored after it: against q . R(p) S^-1 U U^T S k.
//
//===----------------------------------------------------------------------===//
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/Codec.h"
#include "test/unit/RandomOrthonormal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace kvrt {
namespace {

constexpr uint32_t kHeads = 2, kDim = 8, kRank = 3, kSlots = 5;

/// YaRN-scaled RoPE (so the attention factor is not 1) in `style`.
cpu::RopeFrequencies ropeOf(schema::RopeStyle style, uint32_t dim = kDim) {
  schema::Rope rope;
  rope.set_theta(10000);
  rope.set_style(style);
  schema::RopeScaling &s = *rope.mutable_scaling();
  s.set_kind(schema::ROPE_SCALING_YARN);
  s.set_factor(4);
  s.set_beta_fast(32);
  s.set_beta_slow(1);
  s.set_original_max_position(64);
  return cpu::ropeFrequencies(rope, dim);
}

schema::Encoding lowRank(uint32_t rank,
                         schema::EncodingKind latent = schema::ENCODING_F32) {
  schema::Encoding e;
  e.set_kind(schema::ENCODING_LOWRANK);
  e.set_rank(rank);
  e.mutable_latent()->set_kind(latent);
  return e;
}

/// Per head, `rank` random orthonormal axes and then a random mean, as
/// [heads][d][rank + 1] (values), or a weight in [0.5, 1.5) and a random
/// mean, as [heads][d][rank + 2] (keys).
std::vector<float> randomBasis(std::mt19937 &rng, uint32_t rank = kRank,
                               uint32_t dim = kDim,
                               CacheSide side = CacheSide::Value) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> weight(0.5, 1.5);
  const bool keys = side == CacheSide::Key;
  const uint32_t columns = keys ? rank + 2 : rank + 1;
  std::vector<float> basis(kHeads * dim * columns);
  for (uint32_t h = 0; h < kHeads; ++h) {
    const auto axes = kvopt::test::randomOrthonormal(rng, rank, dim);
    for (uint32_t i = 0; i < dim; ++i) {
      float *row = &basis[(h * dim + i) * columns];
      for (uint32_t j = 0; j < rank; ++j)
        row[j] = float(axes[j][i]);
      if (keys)
        row[rank] = float(weight(rng));
      row[columns - 1] = float(normal(rng));
    }
  }
  return basis;
}

/// mu + B B^T (v - mu) for head h of a basis of `rank` axes in `dim`.
std::vector<double> projection(const std::vector<float> &basis, uint32_t h,
                               const float *v, uint32_t rank = kRank,
                               uint32_t dim = kDim) {
  const float *b = &basis[h * dim * (rank + 1)];
  std::vector<double> z(rank, 0.0), out(dim);
  for (uint32_t j = 0; j < rank; ++j)
    for (uint32_t i = 0; i < dim; ++i)
      z[j] += b[i * (rank + 1) + j] * (v[i] - b[i * (rank + 1) + rank]);
  for (uint32_t i = 0; i < dim; ++i) {
    out[i] = b[i * (rank + 1) + rank];
    for (uint32_t j = 0; j < rank; ++j)
      out[i] += b[i * (rank + 1) + j] * z[j];
  }
  return out;
}

/// The values of kHeads heads of kDim on a random basis of kRank axes.
CodecContext valueContext(std::mt19937 &rng) {
  CodecContext context;
  context.side = CacheSide::Value;
  context.kvHeads = kHeads;
  context.headDim = kDim;
  context.basis = randomBasis(rng);
  return context;
}

TEST(LowRankCodec, DecodesAndAttendsToTheProjection) {
  std::mt19937 rng(5);
  CodecContext context = valueContext(rng);
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(lowRank(kRank), context);
  ASSERT_TRUE(codec) << codec.status().message();
  EXPECT_TRUE((*codec)->rotates());
  // An f32 latent of 3 coordinates: 12 bytes an entry.
  EXPECT_EQ((*codec)->headBytes(16), 16u * kRank * 4);

  std::normal_distribution<float> normal;
  for (uint32_t h = 0; h < kHeads; ++h) {
    std::vector<uint8_t> area((*codec)->headBytes(kSlots));
    std::vector<float> values(kSlots * kDim);
    for (float &v : values)
      v = normal(rng) * 2.0f;
    for (uint32_t s = 0; s < kSlots; ++s)
      (*codec)->encode(&values[s * kDim], kDim, h, s, area.data());

    const float weights[kSlots] = {0.5f, 1.5f, 0.25f, 2.0f, 1.0f};
    std::vector<double> expected(kDim, 0.0);
    std::vector<float> acc(kDim, 0.0f), scratch(kDim);
    for (uint32_t s = 0; s < kSlots; ++s) {
      const std::vector<double> p =
          projection(context.basis, h, &values[s * kDim]);
      // One entry through decode() and finishOutput().
      std::vector<float> decoded(kDim);
      (*codec)->decode(area.data(), s, decoded.data());
      (*codec)->finishOutput(decoded.data(), h);
      for (uint32_t i = 0; i < kDim; ++i) {
        EXPECT_NEAR(decoded[i], p[i], 1e-5) << "head " << h << " slot " << s;
        expected[i] += weights[s] * p[i];
      }
      (*codec)->accumulate(&weights[s], 1, area.data(), s, acc.data(),
                           scratch.data());
    }
    (*codec)->finishOutput(acc.data(), h);
    for (uint32_t i = 0; i < kDim; ++i)
      EXPECT_NEAR(acc[i], expected[i], 1e-4) << "head " << h;
  }
}

// Folded values (kv-lowrank{fold=true}) arrive on their axes: the latent
// is their first `rank` coordinates and attention's sum leaves with zeros
// after it, whatever basis the engine hands over (the identity's).
TEST(LowRankCodec, AFoldedLatentIsTheFirstCoordinates) {
  std::mt19937 rng(9);
  CodecContext context = valueContext(rng);
  schema::Encoding encoding = lowRank(kRank);
  encoding.set_folded(true);
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(encoding, context);
  ASSERT_TRUE(codec) << codec.status().message();
  std::normal_distribution<float> normal;
  const float weights[kSlots] = {0.5f, 1.5f, 0.25f, 2.0f, 1.0f};
  for (uint32_t h = 0; h < kHeads; ++h) {
    std::vector<uint8_t> area((*codec)->headBytes(kSlots));
    std::vector<float> values(kSlots * kDim);
    for (float &v : values)
      v = normal(rng);
    std::vector<double> expected(kDim, 0.0);
    std::vector<float> acc(kDim, 0.0f), scratch(kDim);
    for (uint32_t s = 0; s < kSlots; ++s) {
      (*codec)->encode(&values[s * kDim], kDim, h, s, area.data());
      std::vector<float> decoded(kDim);
      (*codec)->decodeAt(area.data(), s, h, 0, decoded.data());
      for (uint32_t i = 0; i < kDim; ++i) {
        const float want = i < kRank ? values[s * kDim + i] : 0.0f;
        EXPECT_EQ(decoded[i], want) << "head " << h << " slot " << s;
        expected[i] += weights[s] * want;
      }
      (*codec)->accumulate(&weights[s], 1, area.data(), s, acc.data(),
                           scratch.data());
    }
    (*codec)->finishOutput(acc.data(), h);
    for (uint32_t i = 0; i < kDim; ++i)
      EXPECT_NEAR(acc[i], expected[i], 1e-5) << "head " << h;
  }
  context.side = CacheSide::Key;
  cpu::RopeFrequencies rope = ropeOf(schema::ROPE_STYLE_HALF);
  context.rope = &rope;
  for (float &w : context.basis)
    w = 1.0f;
  StatusOr<std::unique_ptr<Codec>> key = makeCodec(encoding, context);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.status().message(),
            "the keys of layer 0 use #kv.lowrank folded into the projections, "
            "which only values of one KV head a latent can be");
}

TEST(LowRankCodec, RefusesWhatItCannotStore) {
  CodecContext context;
  context.side = CacheSide::Value;
  context.layer = 2;
  context.kvHeads = kHeads;
  context.headDim = kDim;
  context.basis.assign(kHeads * kDim * (kRank + 1), 0.0f);
  auto error = [&](const schema::Encoding &e) {
    StatusOr<std::unique_ptr<Codec>> codec = makeCodec(e, context);
    return codec ? std::string("accepted") : codec.status().message();
  };
  EXPECT_EQ(error(lowRank(kDim)),
            "the values of layer 2 use #kv.lowrank of rank 8; it must be from "
            "1 to 7 for heads of 8");
  EXPECT_EQ(error(lowRank(kRank + 1)),
            "the values of layer 2 use #kv.lowrank of rank 4, but the "
            "artifact has 64 basis values for 80");
  schema::Encoding residual = lowRank(kRank, schema::ENCODING_INT);
  residual.mutable_latent()->set_residual(32);
  EXPECT_EQ(error(residual),
            "the values of layer 2 use #kv.lowrank with a latent this runtime "
            "does not store; it takes bf16, f32, fp8 with dynamic scales, "
            "nvfp4, KIVI int without a residual or polar without QJL");
  context.side = CacheSide::Key;
  EXPECT_EQ(error(lowRank(kRank)),
            "the keys of layer 2 use #kv.lowrank, but no rope call rotates "
            "the layer's keys; low-rank keys are stored before RoPE");
  cpu::RopeFrequencies rope = ropeOf(schema::ROPE_STYLE_HALF);
  context.rope = &rope;
  // A key row holds its weight and mean after the axes.
  EXPECT_EQ(error(lowRank(kRank)),
            "the keys of layer 2 use #kv.lowrank of rank 3, but the artifact "
            "has 64 basis values for 80");
  context.basis.assign(kHeads * kDim * (kRank + 2), 0.0f);
  // Weights of zero cannot be divided by.
  EXPECT_EQ(error(lowRank(kRank)),
            "the keys of layer 2 use #kv.lowrank keys whose weight 0 of head "
            "0 is not positive and finite");
  for (size_t i = kRank; i < context.basis.size(); i += kRank + 2)
    context.basis[i] = 1.0f;
  context.basis[kDim * (kRank + 2) + 5 * (kRank + 2) + kRank + 1] = NAN;
  EXPECT_EQ(error(lowRank(kRank)),
            "the keys of layer 2 use #kv.lowrank keys whose mean 5 of head 1 "
            "is not finite");
}

/// q . R(p) (S^-1 U U^T S (k - mu) + mu) in float64 for head h of a key
/// basis (axes U, then the weights S and the mean mu), k before RoPE, R(p)
/// RoPE at position p.
double keyScore(const std::vector<float> &basis, uint32_t h, const float *q,
                const float *k, const cpu::RopeFrequencies &rope,
                int32_t position) {
  constexpr uint32_t columns = kRank + 2;
  const float *b = &basis[h * kDim * columns];
  std::vector<double> z(kRank, 0.0), rebuilt(kDim, 0.0);
  for (uint32_t j = 0; j < kRank; ++j)
    for (uint32_t i = 0; i < kDim; ++i)
      z[j] += b[i * columns + j] * b[i * columns + kRank] *
              (k[i] - b[i * columns + kRank + 1]);
  for (uint32_t i = 0; i < kDim; ++i) {
    for (uint32_t j = 0; j < kRank; ++j)
      rebuilt[i] += b[i * columns + j] * z[j];
    rebuilt[i] =
        rebuilt[i] / b[i * columns + kRank] + b[i * columns + kRank + 1];
  }
  const uint32_t half = kDim / 2, stride = rope.interleaved ? 2 : 1,
                 partner = rope.interleaved ? 1 : half;
  double score = 0;
  for (uint32_t p = 0; p < half; ++p) {
    double angle = double(position) * rope.inverse[p];
    double c = std::cos(angle) * rope.attentionFactor,
           s = std::sin(angle) * rope.attentionFactor;
    uint32_t a = p * stride, b2 = a + partner;
    score += q[a] * (rebuilt[a] * c - rebuilt[b2] * s) +
             q[b2] * (rebuilt[b2] * c + rebuilt[a] * s);
  }
  return score;
}

TEST(LowRankCodec, KeysAreStoredBeforeRopeAndScoredAfterIt) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  for (auto style : {schema::ROPE_STYLE_HALF, schema::ROPE_STYLE_INTERLEAVED}) {
    cpu::RopeFrequencies rope = ropeOf(style);
    CodecContext context;
    context.side = CacheSide::Key;
    context.kvHeads = kHeads;
    context.headDim = kDim;
    context.basis = randomBasis(rng, kRank, kDim, CacheSide::Key);
    context.rope = &rope;
    StatusOr<std::unique_ptr<Codec>> codec = makeCodec(lowRank(kRank), context);
    ASSERT_TRUE(codec) << codec.status().message();
    EXPECT_FALSE((*codec)->rotates());
    const uint32_t prepared = (*codec)->preparedQuerySize();
    // Positions past each of the rotation tables' levels, and beyond them.
    for (int32_t position : {0, 7, 300, 70000, 5000000, 20000000})
      for (uint32_t h = 0; h < kHeads; ++h) {
        std::vector<float> key(kDim), q(2 * kDim), rotated(kDim), scratch(kDim);
        for (float &x : key)
          x = normal(rng);
        for (float &x : q)
          x = normal(rng);
        // The cache receives the key after RoPE, as the rope call made it.
        cpu::ThreadPool pool(1);
        cpu::rope(pool, rope, key.data(), 1, 1, kDim, &position,
                  rotated.data());
        std::vector<uint8_t> area((*codec)->headBytes(4));
        (*codec)->encodeAt(rotated.data(), kDim, h, 2, &position, area.data());
        std::vector<float> queries(2 * prepared), scores(2);
        for (uint32_t r = 0; r < 2; ++r)
          (*codec)->prepareQuery(&q[r * kDim], h, &queries[r * prepared]);
        (*codec)->scoreAt(queries.data(), 2, area.data(), 2, position,
                          scores.data(), scratch.data());
        // decodeAt() gives the key scoreAt() scores, after RoPE.
        std::vector<float> decoded(kDim);
        (*codec)->decodeAt(area.data(), 2, h, position, decoded.data());
        for (uint32_t r = 0; r < 2; ++r) {
          double expected = keyScore(context.basis, h, &q[r * kDim], key.data(),
                                     rope, position);
          double fromDecoded = 0;
          for (uint32_t i = 0; i < kDim; ++i)
            fromDecoded += double(q[r * kDim + i]) * decoded[i];
          EXPECT_NEAR(fromDecoded, expected, 2e-4 * (1 + std::abs(expected)));
          EXPECT_NEAR(scores[r], expected, 2e-4 * (1 + std::abs(expected)))
              << "style " << style << " position " << position << " head " << h;
        }
      }
  }
}

TEST(LowRankCodec, APolarLatentLeavesItsRotationOncePerRow) {
  // Values: entries decode, and attention sums them, in polar's rotated
  // domain; finishOutput() unrotates the latent once, then maps it back.
  std::mt19937 rng(13);
  std::normal_distribution<float> normal;
  // Polar needs a power-of-two latent of at least 8.
  constexpr uint32_t rank = 8, dim = 16;
  schema::Encoding polar = lowRank(rank, schema::ENCODING_POLAR);
  polar.mutable_latent()->set_bits(4);
  polar.mutable_latent()->set_seed(3);
  CodecContext context;
  context.side = CacheSide::Value;
  context.kvHeads = kHeads;
  context.headDim = dim;
  context.basis = randomBasis(rng, rank, dim);
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(polar, context);
  ASSERT_TRUE(codec) << codec.status().message();
  for (uint32_t h = 0; h < kHeads; ++h) {
    std::vector<uint8_t> area((*codec)->headBytes(kSlots));
    std::vector<float> values(kSlots * dim), acc(dim, 0.0f), scratch(dim),
        decoded(dim);
    for (float &v : values)
      v = normal(rng);
    const float weights[kSlots] = {0.5f, 1.5f, 0.25f, 2.0f, 1.0f};
    std::vector<double> expected(dim, 0.0);
    for (uint32_t s = 0; s < kSlots; ++s) {
      (*codec)->encode(&values[s * dim], dim, h, s, area.data());
      (*codec)->decode(area.data(), s, decoded.data());
      (*codec)->finishOutput(decoded.data(), h);
      // Near the entry's projection mu + B B^T (v - mu): polar-4's error.
      const std::vector<double> p =
          projection(context.basis, h, &values[s * dim], rank, dim);
      double error = 0, norm = 0;
      for (uint32_t i = 0; i < dim; ++i) {
        error += (decoded[i] - p[i]) * (decoded[i] - p[i]);
        norm += p[i] * p[i];
      }
      EXPECT_LT(std::sqrt(error / norm), 0.2) << "head " << h << " slot " << s;
      for (uint32_t i = 0; i < dim; ++i)
        expected[i] += weights[s] * decoded[i];
      (*codec)->accumulate(&weights[s], 1, area.data(), s, acc.data(),
                           scratch.data());
    }
    (*codec)->finishOutput(acc.data(), h);
    for (uint32_t i = 0; i < dim; ++i)
      EXPECT_NEAR(acc[i], expected[i], 1e-4) << "head " << h;
  }

  // Keys: a polar latent scores within polar-4's error of the exact latent.
  cpu::RopeFrequencies rope = ropeOf(schema::ROPE_STYLE_HALF, dim);
  context.side = CacheSide::Key;
  context.rope = &rope;
  context.basis = randomBasis(rng, rank, dim, CacheSide::Key);
  codec = makeCodec(polar, context);
  ASSERT_TRUE(codec) << codec.status().message();
  schema::Encoding f32 = lowRank(rank);
  StatusOr<std::unique_ptr<Codec>> exact = makeCodec(f32, context);
  ASSERT_TRUE(exact) << exact.status().message();
  std::vector<float> key(dim), q(dim), scratch(dim);
  std::vector<float> prepared((*codec)->preparedQuerySize());
  double worst = 0;
  for (int trial = 0; trial < 50; ++trial) {
    for (float &x : key)
      x = normal(rng);
    for (float &x : q)
      x = normal(rng);
    int32_t position = 17 * trial;
    float scores[2];
    for (int which = 0; which < 2; ++which) {
      const Codec &c = which ? **exact : **codec;
      std::vector<uint8_t> area(c.headBytes(1));
      c.encodeAt(key.data(), dim, 1, 0, &position, area.data());
      c.prepareQuery(q.data(), 1, prepared.data());
      c.scoreAt(prepared.data(), 1, area.data(), 0, position, &scores[which],
                scratch.data());
    }
    double scale = std::sqrt(double(dim)) * 1.0;
    worst = std::max(worst, std::abs(scores[0] - scores[1]) / scale);
  }
  EXPECT_LT(worst, 0.5);
  EXPECT_GT(worst, 0.0);
}

} // namespace

/// A KIVI latent of `bits` bits in groups of `group`, as kv-quantize makes
/// it on a low-rank side (no residual window: kv-lowrank keeps its own).
schema::Encoding kiviLatent(uint32_t rank, uint32_t group) {
  schema::Encoding e = lowRank(rank, schema::ENCODING_INT);
  e.mutable_latent()->set_bits(4);
  e.mutable_latent()->set_group(group);
  return e;
}

/// Whether `quantized` is within KIVI-4's error of `exact` for codes over
/// [min, max] (half a step, plus the fp16 rounding of the stored scale and
/// zero).
::testing::AssertionResult withinKiviStep(double quantized, double exact,
                                          double min, double max) {
  const double step = (max - min) / 15, fp16 = std::ldexp(1.0, -11);
  const double bound = step * (0.5 + 16 * fp16) + std::abs(min) * fp16 + 1e-6;
  if (std::abs(quantized - exact) <= bound)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << quantized << " is " << std::abs(quantized - exact) << " from "
         << exact << ", beyond " << bound;
}

TEST(LowRankCodec, AKiviLatentOfKeysIsQuantizedPerCoordinateOverItsGroup) {
  // Keys: each latent coordinate has a scale and zero per group of 32
  // tokens, encoded together at their own positions; rebuilt from the
  // quantized latent like any other.
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  constexpr uint32_t rank = 8, dim = 16, tokens = 32;
  cpu::RopeFrequencies rope = ropeOf(schema::ROPE_STYLE_HALF, dim);
  CodecContext context;
  context.side = CacheSide::Key;
  context.kvHeads = kHeads;
  context.headDim = dim;
  context.rope = &rope;
  context.basis = randomBasis(rng, rank, dim, CacheSide::Key);
  StatusOr<std::unique_ptr<Codec>> kivi =
      makeCodec(kiviLatent(rank, tokens), context);
  ASSERT_TRUE(kivi) << kivi.status().message();
  StatusOr<std::unique_ptr<Codec>> exact = makeCodec(lowRank(rank), context);
  ASSERT_TRUE(exact) << exact.status().message();
  EXPECT_EQ((*kivi)->groupTokens(), tokens);
  // 32 rows of 8 4-bit codes, then an fp16 scale and zero per coordinate.
  EXPECT_EQ((*kivi)->headBytes(tokens), tokens * rank / 2 + rank * 4);

  cpu::ThreadPool pool(1);
  const uint32_t columns = rank + 2;
  for (uint32_t h = 0; h < kHeads; ++h) {
    std::vector<float> keys(tokens * dim), rotated(tokens * dim);
    std::vector<int32_t> positions(tokens);
    for (float &x : keys)
      x = normal(rng) * 3.0f;
    for (uint32_t t = 0; t < tokens; ++t) {
      positions[t] = int32_t(5 + 37 * t);
      cpu::rope(pool, rope, &keys[t * dim], 1, 1, dim, &positions[t],
                &rotated[t * dim]);
    }
    std::vector<uint8_t> area((*kivi)->headBytes(tokens)),
        exactArea((*exact)->headBytes(tokens));
    (*kivi)->encodeAt(rotated.data(), dim, h, 0, positions.data(), area.data());
    std::vector<float> z(tokens * rank), zq(tokens * rank);
    for (uint32_t t = 0; t < tokens; ++t) {
      (*exact)->encodeAt(&rotated[t * dim], dim, h, t, &positions[t],
                         exactArea.data());
      (*exact)->decode(exactArea.data(), t, &z[t * rank]);
      (*kivi)->decode(area.data(), t, &zq[t * rank]);
    }
    for (uint32_t c = 0; c < rank; ++c) {
      double min = z[c], max = z[c];
      for (uint32_t t = 1; t < tokens; ++t) {
        min = std::min<double>(min, z[t * rank + c]);
        max = std::max<double>(max, z[t * rank + c]);
      }
      for (uint32_t t = 0; t < tokens; ++t)
        EXPECT_TRUE(withinKiviStep(zq[t * rank + c], z[t * rank + c], min, max))
            << "head " << h << " coordinate " << c << " token " << t;
    }
    // Each key is rebuilt from its quantized latent, (U zq) / s + mu, and
    // rotated to its position.
    const float *b = &context.basis[h * dim * columns];
    for (uint32_t t = 0; t < tokens; ++t) {
      std::vector<float> rebuilt(dim), expected(dim), decoded(dim);
      for (uint32_t i = 0; i < dim; ++i) {
        double sum = 0;
        for (uint32_t j = 0; j < rank; ++j)
          sum += double(b[i * columns + j]) * zq[t * rank + j];
        rebuilt[i] =
            float(sum / b[i * columns + rank] + b[i * columns + rank + 1]);
      }
      cpu::rope(pool, rope, rebuilt.data(), 1, 1, dim, &positions[t],
                expected.data());
      (*kivi)->decodeAt(area.data(), t, h, positions[t], decoded.data());
      for (uint32_t i = 0; i < dim; ++i)
        EXPECT_NEAR(decoded[i], expected[i], 1e-4 * (1 + std::abs(expected[i])))
            << "head " << h << " token " << t << " coordinate " << i;
    }
  }
}

TEST(LowRankCodec, AKiviLatentOfValuesIsQuantizedPerTokenInChannelGroups) {
  // Values: one token at a time, a scale and zero per 32 latent
  // coordinates; decoded entries map back to mu + B zq.
  std::mt19937 rng(19);
  std::normal_distribution<float> normal;
  constexpr uint32_t rank = 64, dim = 128, group = 32;
  CodecContext context;
  context.side = CacheSide::Value;
  context.kvHeads = kHeads;
  context.headDim = dim;
  context.basis = randomBasis(rng, rank, dim);
  StatusOr<std::unique_ptr<Codec>> kivi =
      makeCodec(kiviLatent(rank, group), context);
  ASSERT_TRUE(kivi) << kivi.status().message();
  StatusOr<std::unique_ptr<Codec>> exact = makeCodec(lowRank(rank), context);
  ASSERT_TRUE(exact) << exact.status().message();
  EXPECT_EQ((*kivi)->groupTokens(), 1u);
  // 64 4-bit codes and two groups' fp16 scale and zero an entry.
  EXPECT_EQ((*kivi)->headBytes(kSlots), kSlots * (rank / 2 + 2 * 4));
  for (uint32_t h = 0; h < kHeads; ++h) {
    std::vector<uint8_t> area((*kivi)->headBytes(kSlots)),
        exactArea((*exact)->headBytes(kSlots));
    std::vector<float> v(dim), z((*exact)->domainSize()),
        zq((*kivi)->domainSize()), out((*kivi)->domainSize());
    for (uint32_t s = 0; s < kSlots; ++s) {
      for (float &x : v)
        x = normal(rng);
      (*kivi)->encode(v.data(), dim, h, s, area.data());
      (*exact)->encode(v.data(), dim, h, s, exactArea.data());
      (*exact)->decode(exactArea.data(), s, z.data());
      (*kivi)->decode(area.data(), s, zq.data());
      for (uint32_t g = 0; g < rank / group; ++g) {
        const auto [min, max] =
            std::minmax_element(&z[g * group], &z[(g + 1) * group]);
        for (uint32_t c = g * group; c < (g + 1) * group; ++c)
          EXPECT_TRUE(withinKiviStep(zq[c], z[c], *min, *max))
              << "head " << h << " slot " << s << " coordinate " << c;
      }
      std::copy(zq.begin(), zq.end(), out.begin());
      (*kivi)->finishOutput(out.data(), h);
      const float *b = &context.basis[h * dim * (rank + 1)];
      for (uint32_t i = 0; i < dim; ++i) {
        double expected = b[i * (rank + 1) + rank];
        for (uint32_t j = 0; j < rank; ++j)
          expected += double(b[i * (rank + 1) + j]) * zq[j];
        EXPECT_NEAR(out[i], expected, 1e-4) << "head " << h << " slot " << s;
      }
    }
  }
}

} // namespace kvrt
