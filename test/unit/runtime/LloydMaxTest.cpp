//===- LloydMaxTest.cpp - Polar's codebooks meet the Lloyd-Max conditions -===//
#include "runtime/src/cache/codecs/LloydMax.h"
#include "CodecReference.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace kvrt;
using namespace kvrt::codecs;

namespace {

/// Integrals of x^power (1 - x^2)^((d - 3) / 2) over [a, b] by composite
/// Simpson in x: a method independent of the codebook's own integrator.
double moment(uint32_t dimension, double a, double b, int power) {
  const int steps = 20000;
  const double h = (b - a) / steps;
  auto f = [&](double x) {
    return std::pow(x, power) *
           std::pow(std::max(0.0, 1 - x * x), (dimension - 3.0) / 2);
  };
  double sum = f(a) + f(b);
  for (int i = 1; i < steps; ++i)
    sum += (i % 2 ? 4 : 2) * f(a + i * h);
  return sum * h / 3;
}

class LloydMaxConditions
    : public testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(LloydMaxConditions, LevelsAreCentroidsAndBoundariesMidpoints) {
  auto [dimension, bits] = GetParam();
  const Codebook &codebook = lloydMaxCodebook(dimension, bits);
  const size_t n = codebook.levels.size();
  ASSERT_EQ(n, size_t(1) << bits);
  ASSERT_EQ(codebook.boundaries.size(), n - 1);
  double total = moment(dimension, -1, 1, 0), distortion = 0;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(codebook.levels[i], -codebook.levels[n - 1 - i]);
    if (i + 1 < n) {
      EXPECT_LT(codebook.levels[i], codebook.levels[i + 1]);
      EXPECT_NEAR(codebook.boundaries[i],
                  (codebook.levels[i] + codebook.levels[i + 1]) / 2, 1e-16);
    }
    double a = i == 0 ? -1 : codebook.boundaries[i - 1];
    double b = i + 1 == n ? 1 : codebook.boundaries[i];
    double mass = moment(dimension, a, b, 0),
           first = moment(dimension, a, b, 1);
    EXPECT_NEAR(codebook.levels[i], first / mass, 1e-9)
        << "level " << i << " of d = " << dimension << ", " << bits << " bits";
    double l = codebook.levels[i];
    distortion += moment(dimension, a, b, 2) - 2 * l * first + l * l * mass;
  }
  EXPECT_NEAR(codebook.distortion, distortion / total,
              1e-9 * codebook.distortion);
}

INSTANTIATE_TEST_SUITE_P(Polar, LloydMaxConditions,
                         testing::Combine(testing::Values(64u, 128u),
                                          testing::Values(2u, 3u, 4u)));

TEST(LloydMax, QuantizeTakesTheNearestLevel) {
  const Codebook &codebook = lloydMaxCodebook(64, 3);
  for (double x = -0.6; x <= 0.6; x += 0.0013) {
    uint32_t code = codebook.quantize(x);
    for (double level : codebook.levels)
      EXPECT_LE(std::fabs(x - codebook.levels[code]), std::fabs(x - level));
  }
}

TEST(LloydMax, ApproachesTheGaussianQuantizerFromBelow) {
  // A coordinate tends to N(0, 1/d), whose Lloyd-Max distortions (in units
  // of the variance) are 0.1175, 0.03454 and 0.009497 at 2, 3 and 4 bits;
  // the sphere's lighter tails quantize a little better.
  const double gaussian[] = {0.1175, 0.03454, 0.009497};
  for (uint32_t bits = 2; bits <= 4; ++bits) {
    double d64 = 64 * lloydMaxCodebook(64, bits).distortion;
    double d128 = 128 * lloydMaxCodebook(128, bits).distortion;
    EXPECT_LT(d64, d128);
    EXPECT_LT(d128, gaussian[bits - 2]);
    EXPECT_GT(d64, 0.95 * gaussian[bits - 2]);
  }
}

/// Quantizing the coordinates of uniformly random unit vectors (normalised
/// Gaussians) errs by dimension * distortion in squared norm on average.
class UnitVectorError
    : public testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(UnitVectorError, MatchesTheCodebookPrediction) {
  auto [dimension, bits] = GetParam();
  const Codebook &codebook = lloydMaxCodebook(dimension, bits);
  const uint32_t vectors = 4000;
  std::vector<float> rows = test::randomRows(vectors, dimension, 3);
  double total = 0;
  for (uint32_t v = 0; v < vectors; ++v) {
    const float *x = &rows[size_t(v) * dimension];
    double norm = 0, error = 0;
    for (uint32_t i = 0; i < dimension; ++i)
      norm += double(x[i]) * x[i];
    norm = std::sqrt(norm);
    for (uint32_t i = 0; i < dimension; ++i) {
      double u = x[i] / norm;
      error += std::pow(u - codebook.levels[codebook.quantize(u)], 2);
    }
    total += error;
  }
  double measured = total / vectors,
         predicted = dimension * codebook.distortion;
  RecordProperty("measured", std::to_string(measured));
  RecordProperty("predicted", std::to_string(predicted));
  EXPECT_NEAR(measured, predicted, 0.02 * predicted);
}

INSTANTIATE_TEST_SUITE_P(Polar, UnitVectorError,
                         testing::Combine(testing::Values(64u, 128u),
                                          testing::Values(2u, 3u, 4u)));

/// The polar codec's squared error on random vectors, relative to their
/// squared norm: the codebook's prediction for a stored |x|, or a little
/// less, since the codec stores the least-squares scale of the levels.
class PolarDistortion
    : public testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(PolarDistortion, StaysJustBelowTheCodebookPrediction) {
  auto [dimension, bits] = GetParam();
  CodecContext context;
  context.kvHeads = 1;
  context.headDim = dimension;
  auto codec = test::makeCodecOrDie(test::polarEncoding(bits, 11), context);
  const std::vector<double> rotation =
      test::polarRotation(dimension, 11, 0, CacheSide::Key);
  const uint32_t vectors = 3000;
  std::vector<float> rows = test::randomRows(vectors, dimension, 3);
  std::vector<uint8_t> area(codec->headBytes(1));
  std::vector<float> decoded(dimension);
  double relativeError = 0;
  for (uint32_t v = 0; v < vectors; ++v) {
    const float *x = &rows[size_t(v) * dimension];
    codec->encode(x, dimension, 0, 0, area.data());
    codec->decode(area.data(), 0, decoded.data());
    // |x - x^|^2 = |R x - R x^|^2, and decode() gives R x^.
    std::vector<double> rotated =
        test::multiply(rotation, std::vector<double>(x, x + dimension));
    double error = 0, norm = 0;
    for (uint32_t i = 0; i < dimension; ++i) {
      error += std::pow(rotated[i] - decoded[i], 2);
      norm += double(x[i]) * x[i];
    }
    relativeError += error / norm;
  }
  double measured = relativeError / vectors;
  double predicted = dimension * lloydMaxCodebook(dimension, bits).distortion;
  RecordProperty("measured", std::to_string(measured));
  RecordProperty("predicted", std::to_string(predicted));
  EXPECT_LE(measured, 1.01 * predicted);
  EXPECT_GE(measured, 0.94 * predicted);
}

INSTANTIATE_TEST_SUITE_P(Polar, PolarDistortion,
                         testing::Combine(testing::Values(64u, 128u),
                                          testing::Values(2u, 3u, 4u)));

} // namespace
