//===- CodecReference.cpp -------------------------------------------------===//
#include "CodecReference.h"
#include "runtime/src/cache/codecs/SplitMix64.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace kvrt::test {

FormatValues::FormatValues(const ReferenceFormat &format)
    : format_(format),
      signBit_(1u << (format.exponentBits + format.mantissaBits)) {
  for (uint32_t code = 0; code < signBit_; ++code)
    if (isFinite(code))
      sorted_.push_back({value(code), code});
  std::sort(sorted_.begin(), sorted_.end());
}

bool FormatValues::isFinite(uint32_t code) const {
  uint32_t magnitude = code & (signBit_ - 1);
  uint32_t topExponent = (1u << format_.exponentBits) - 1;
  switch (format_.specials) {
  case ReferenceFormat::AllFinite:
    return true;
  case ReferenceFormat::AllOnesNaN:
    return magnitude != signBit_ - 1;
  case ReferenceFormat::Ieee:
    return magnitude >> format_.mantissaBits != topExponent;
  }
  return false;
}

double FormatValues::value(uint32_t code) const {
  int m = format_.mantissaBits;
  uint32_t magnitude = code & (signBit_ - 1);
  int exponent = int(magnitude >> m);
  double mantissa = double(magnitude & ((1u << m) - 1)) / double(1u << m);
  double v = exponent == 0
                 ? mantissa * std::pow(2.0, 1 - format_.bias)
                 : (1 + mantissa) * std::pow(2.0, exponent - format_.bias);
  return code & signBit_ ? -v : v;
}

uint32_t FormatValues::nearest(double x) const {
  double a = std::fabs(x);
  auto above =
      std::lower_bound(sorted_.begin(), sorted_.end(), std::make_pair(a, 0u));
  uint32_t code;
  if (above == sorted_.end()) {
    code = sorted_.back().second;
  } else if (above == sorted_.begin()) {
    code = above->second;
  } else {
    auto below = above - 1;
    double up = above->first - a, down = a - below->first;
    code = up < down                  ? above->second
           : down < up                ? below->second
           : (above->second & 1) == 0 ? above->second
                                      : below->second;
  }
  return std::signbit(x) ? code | signBit_ : code;
}

const FormatValues &e4m3() {
  static const FormatValues values(kRefE4M3);
  return values;
}
const FormatValues &e5m2() {
  static const FormatValues values(kRefE5M2);
  return values;
}
const FormatValues &e2m1() {
  static const FormatValues values(kRefE2M1);
  return values;
}
const FormatValues &f16() {
  static const FormatValues values(kRefF16);
  return values;
}

const FormatValues &bf16() {
  static const FormatValues values(kRefBf16);
  return values;
}

std::vector<double> polarRotation(uint32_t dimension, uint64_t seed,
                                  uint32_t layer, CacheSide side) {
  uint64_t stream = 2 * uint64_t(layer) + (side == CacheSide::Key ? 0 : 1);
  codecs::SplitMix64 random(codecs::deriveSeed(seed, stream));
  std::vector<double> signs(dimension);
  for (double &s : signs)
    s = random.next() >> 63 ? -1.0 : 1.0;
  std::vector<double> rotation(size_t(dimension) * dimension);
  double norm = 1 / std::sqrt(double(dimension));
  for (uint32_t i = 0; i < dimension; ++i)
    for (uint32_t j = 0; j < dimension; ++j)
      rotation[size_t(i) * dimension + j] =
          (__builtin_popcount(i & j) % 2 ? -norm : norm) * signs[j];
  return rotation;
}

std::vector<double> qjlMatrix(uint32_t dimension, uint64_t seed,
                              uint32_t layer) {
  codecs::SplitMix64 random(codecs::deriveSeed(seed, (1ull << 63) + layer));
  std::vector<double> matrix(size_t(dimension) * dimension);
  for (size_t i = 0; i < matrix.size(); i += 2) {
    double u1 = random.uniform(), u2 = random.uniform();
    double radius = std::sqrt(-2 * std::log(1 - u1));
    matrix[i] = float(radius * std::cos(2 * M_PI * u2));
    matrix[i + 1] = float(radius * std::sin(2 * M_PI * u2));
  }
  return matrix;
}

std::vector<double> multiply(const std::vector<double> &matrix,
                             const std::vector<double> &x, bool transposed) {
  size_t n = x.size();
  std::vector<double> y(n, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      y[i] += (transposed ? matrix[j * n + i] : matrix[i * n + j]) * x[j];
  return y;
}

uint32_t readBits(const uint8_t *bytes, uint64_t offset, uint32_t bits) {
  uint32_t value = 0;
  for (uint32_t b = 0; b < bits; ++b) {
    uint64_t bit = offset + b;
    value |= uint32_t(bytes[bit / 8] >> (bit % 8) & 1) << b;
  }
  return value;
}

double readF16(const uint8_t *bytes) {
  return f16().value(uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8);
}

float readF32(const uint8_t *bytes) {
  float v;
  std::memcpy(&v, bytes, sizeof(v));
  return v;
}

std::vector<float> randomRows(uint32_t rows, uint32_t columns, uint32_t seed,
                              const std::vector<float> &scales,
                              const std::vector<float> &means) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> v(size_t(rows) * columns);
  for (size_t i = 0; i < v.size(); ++i) {
    size_t c = i % columns;
    v[i] = normal(rng) * (scales.empty() ? 1 : scales[c]) +
           (means.empty() ? 0 : means[c]);
  }
  return v;
}

schema::Encoding encodingOf(schema::EncodingKind kind, uint32_t bits,
                            uint32_t group) {
  schema::Encoding e;
  e.set_kind(kind);
  e.set_bits(bits);
  e.set_group(group);
  return e;
}

schema::Encoding fp8Encoding(schema::Fp8Format format, schema::ScaleMode mode) {
  schema::Encoding e = encodingOf(schema::ENCODING_FP8);
  e.set_fp8_format(format);
  e.set_scale_mode(mode);
  return e;
}

schema::Encoding polarEncoding(uint32_t bits, uint64_t seed, bool qjl) {
  schema::Encoding e = encodingOf(schema::ENCODING_POLAR, bits);
  e.set_seed(seed);
  e.set_qjl(qjl);
  return e;
}

std::unique_ptr<Codec> makeCodecOrDie(const schema::Encoding &encoding,
                                      const CodecContext &context) {
  auto codec = makeCodec(encoding, context);
  if (!codec) {
    ADD_FAILURE() << codec.status().message();
    std::abort();
  }
  return std::move(*codec);
}

} // namespace kvrt::test
