//===- PairRotations.h - RoPE's rotations in double from tables -*- C++ -*-===//
//
// Low-rank keys are stored before RoPE (LowRank.cpp): an arriving key is
// rotated back from its position, and a stored one rotated to it. Below
// 2^24 a position's rotation of each frequency pair comes from three
// tables of 256 angles each (position = a 2^16 + b 2^8 + c, the rotations
// multiplied in double), a few multiplies per pair instead of a sine and a
// cosine; beyond, directly. The CUDA append (Append.cu) rotates back with
// these same tables and operations, so both write the same bytes.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_PAIRROTATIONS_H
#define KVRT_CACHE_CODECS_PAIRROTATIONS_H

#include "runtime/src/backends/cpu/Kernels.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace kvrt::codecs {

class PairRotations {
public:
  static constexpr size_t kLevels = 3;

  explicit PairRotations(const cpu::RopeFrequencies &f);

  /// y = x rotated by `position` (back when `inverse`), head_dim values.
  void rotate(const float *x, int32_t position, bool inverse, float *y) const;

  /// Level l's table: entry step * pairs + p is (cos, sin) of (step << 8 l)
  /// times pair p's frequency.
  const std::vector<std::pair<double, double>> &table(size_t level) const {
    return tables_[level];
  }

private:
  std::vector<double> inverse_;
  double factor_;
  bool interleaved_;
  std::array<std::vector<std::pair<double, double>>, kLevels> tables_;
};

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_PAIRROTATIONS_H
