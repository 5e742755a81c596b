//===- LatentKeyOperands.cpp - Low-rank keys' operands for the kernels ----===//
#include "runtime/src/backends/cuda/LatentKeyOperands.h"

#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/cache/codecs/Minifloat.h"
#include "runtime/src/cache/codecs/PairRotations.h"

#include <cmath>
#include <cstring>

namespace kvrt::cuda {

uint32_t latentKeyRankSteps(uint32_t headDim, uint32_t rank) {
  if (rank == 0 || rank >= headDim)
    return 0;
  return rank <= 32 ? 2 : rank <= 64 ? 4 : 8;
}

uint32_t latentKeyCoordinate(uint32_t c, uint32_t headDim, bool interleaved) {
  if (!interleaved)
    return c;
  const uint32_t half = headDim / 2;
  return c < half ? 2 * c : 2 * (c - half) + 1;
}

uint32_t latentKeyOperandBytes(uint32_t headDim, uint32_t rankSteps) {
  return headDim / 8 * rankSteps * 32 * 8 + headDim * 4 + headDim / 2 * 16;
}

LatentKeyOperands latentKeyOperands(const std::vector<float> &basis,
                                    uint32_t kvHeads, uint32_t headDim,
                                    uint32_t rank,
                                    const cpu::RopeFrequencies &rope) {
  const uint32_t steps = latentKeyRankSteps(headDim, rank);
  LatentKeyOperands operands;
  operands.axes.reserve(size_t(kvHeads) * headDim * (steps * 32 * 2 / 8 + 1));
  const float factor = float(rope.attentionFactor);
  // The basis row of head h's key coordinate held as c.
  auto row = [&](uint32_t h, uint32_t c) {
    return basis.data() + (size_t(h) * headDim +
                           latentKeyCoordinate(c, headDim, rope.interleaved)) *
                              (rank + 2);
  };
  // W[c][j] of head h: axis j of the key coordinate held as c, over its
  // weight, times the attention factor; zero past the rank.
  auto w = [&](uint32_t h, uint32_t c, uint32_t j) {
    if (j >= rank)
      return 0.0f;
    return row(h, c)[j] * factor / row(h, c)[rank];
  };
  // (W[c][j], W[c][j + 1]) as an f16 pair, j in the low half.
  auto pair = [&](uint32_t h, uint32_t c, uint32_t j) {
    return uint32_t(codecs::encodeMinifloat(w(h, c, j), codecs::kF16)) |
           uint32_t(codecs::encodeMinifloat(w(h, c, j + 1), codecs::kF16))
               << 16;
  };
  for (uint32_t h = 0; h < kvHeads; ++h) {
    for (uint32_t n = 0; n < headDim / 8; ++n)
      for (uint32_t s = 0; s < steps; ++s)
        for (uint32_t lane = 0; lane < 32; ++lane) {
          // B's column g (coordinate 8n + g) at k 2t, 2t + 1 and 2t + 8,
          // 2t + 9 of k-step s.
          const uint32_t g = lane / 4, t = lane % 4, c = 8 * n + g;
          operands.axes.push_back(pair(h, c, 16 * s + 2 * t));
          operands.axes.push_back(pair(h, c, 16 * s + 2 * t + 8));
        }
    for (uint32_t c = 0; c < headDim; ++c) {
      const float mean = row(h, c)[rank + 1] * factor;
      uint32_t bits;
      std::memcpy(&bits, &mean, 4);
      operands.axes.push_back(bits);
    }
  }
  // theta / (2 pi) as a 64-bit fraction of a turn: theta is a double, and
  // a long double's 64 bits lose nothing it holds.
  const long double kTurn = 6.283185307179586476925286766559005768L;
  for (uint32_t f = 0; f < headDim / 2; ++f) {
    const double theta = rope.inverse[f];
    long double fraction = (long double)theta / kTurn;
    fraction -= std::floor(fraction);
    const uint64_t bits = uint64_t(
        std::fmin(std::round(std::ldexp(fraction, 64)), 0x1p64L - 1.0L));
    const float cosine = float(std::cos(8 * theta)),
                sine = float(std::sin(8 * theta));
    uint32_t cosineBits, sineBits;
    std::memcpy(&cosineBits, &cosine, 4);
    std::memcpy(&sineBits, &sine, 4);
    operands.frequencies.insert(
        operands.frequencies.end(),
        {uint32_t(bits), uint32_t(bits >> 32), cosineBits, sineBits});
  }
  // The CPU codec's own tables; Append.cu walks three levels of them.
  static_assert(codecs::PairRotations::kLevels == 3,
                "Append.cu composes three tables' rotations");
  const codecs::PairRotations rotations(rope);
  for (size_t level = 0; level < codecs::PairRotations::kLevels; ++level)
    for (const auto &[cosine, sine] : rotations.table(level))
      operands.rotations.insert(operands.rotations.end(), {cosine, sine});
  operands.ropeInverse.assign(rope.inverse.begin(),
                              rope.inverse.begin() + headDim / 2);
  operands.rotationScale = 1.0 / rope.attentionFactor;
  return operands;
}

} // namespace kvrt::cuda
