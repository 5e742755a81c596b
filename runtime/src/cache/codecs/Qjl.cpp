//===- Qjl.cpp ------------------------------------------------------------===//
#include "runtime/src/cache/codecs/Qjl.h"
#include "runtime/src/cache/codecs/HalfBytes.h"
#include "runtime/src/cache/codecs/SplitMix64.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <cmath>
#include <cstring>

namespace kvrt::codecs {
namespace {

/// The eight signs (bit j set: +1, else -1) of every byte.
struct SignTable {
  float ofByte[256][8];
  constexpr SignTable() : ofByte() {
    for (int byte = 0; byte < 256; ++byte)
      for (int j = 0; j < 8; ++j)
        ofByte[byte][j] = byte >> j & 1 ? 1.0f : -1.0f;
  }
};
constexpr SignTable kSigns;

template <typename T>
void multiply(const std::vector<float> &matrix, uint32_t n, const T *x,
              T *out) {
  for (uint32_t i = 0; i < n; ++i) {
    T sum = 0;
    for (uint32_t j = 0; j < n; ++j)
      sum += T(matrix[size_t(i) * n + j]) * x[j];
    out[i] = sum;
  }
}

} // namespace

Qjl::Qjl(uint32_t dimension, uint64_t seed) : dimension_(dimension) {
  SplitMix64 random(seed);
  matrix_.resize(size_t(dimension) * dimension);
  for (size_t i = 0; i < matrix_.size(); i += 2) {
    double radius = std::sqrt(-2 * std::log(1 - random.uniform()));
    double angle = 2 * M_PI * random.uniform();
    matrix_[i] = float(radius * std::cos(angle));
    matrix_[i + 1] = float(radius * std::sin(angle));
  }
}

void Qjl::project(const float *x, float *out) const {
  multiply(matrix_, dimension_, x, out);
}
void Qjl::project(const double *x, double *out) const {
  multiply(matrix_, dimension_, x, out);
}

void Qjl::encode(const double *residual, uint8_t *out) const {
  std::vector<double> projected(dimension_);
  project(residual, projected.data());
  std::memset(out, 0, dimension_ / 8);
  double squares = 0;
  for (uint32_t i = 0; i < dimension_; ++i) {
    out[i / 8] |= uint8_t(projected[i] >= 0) << (i % 8);
    squares += residual[i] * residual[i];
  }
  storeF16(out + dimension_ / 8, std::sqrt(squares));
}

void Qjl::estimateWeights(const uint8_t *stored, float *out) const {
  const float factor = float(std::sqrt(M_PI / 2) / dimension_) *
                       loadF16(stored + dimension_ / 8);
  for (uint32_t i = 0; i < dimension_; i += 8) {
    const float *signs = kSigns.ofByte[stored[i / 8]];
    for (uint32_t j = 0; j < 8; ++j)
      out[i + j] = factor * signs[j];
  }
}

void Qjl::addResidual(const uint8_t *stored, float *out) const {
  std::vector<float> weights(dimension_);
  estimateWeights(stored, weights.data());
  for (uint32_t i = 0; i < dimension_; ++i)
    addScaled(out, weights[i], &matrix_[size_t(i) * dimension_], dimension_);
}

} // namespace kvrt::codecs
