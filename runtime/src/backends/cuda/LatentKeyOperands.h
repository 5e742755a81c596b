//===- LatentKeyOperands.h - Low-rank keys' operands ------------*- C++ -*-===//
//
// A low-rank key is stored before RoPE as its latent z (rank bf16
// coordinates) and rebuilt as k = R_p (U z / s + mu) * factor (the CPU
// codec, codecs/LowRank.cpp: U the head's axes, s its coordinates'
// weights, mu the mean the latent was taken around, R_p RoPE at the
// entry's position p, factor YaRN's attention factor). The GroupMma kernel
// rebuilds a tile of 16 keys with mma.sync.m16n8k16 in f16 (A the latents,
// B = W^T with W = U * factor / s, C the mean times factor in fp32) and
// rotates them in registers; this file prepares, on the host, what it
// reads:
//
//   axes:        per KV head, W^T rounded to f16 as B fragments in the
//                kernel's lane order, [headDim / 8 n-tiles][rankSteps][32
//                lanes] x 2 words, rows past the rank zero; then the mean
//                times factor, headDim floats. Coordinates are reordered
//                so that RoPE's pairs lie half a head apart (GPT-J's
//                interleaved pairs too); the kernel reads the query in the
//                same order.
//   frequencies: per RoPE frequency theta, 4 words: theta / (2 pi) as a
//                64-bit fraction of a turn (low word, high word), so that
//                position * that mod 2^64 is the angle to 2^-32 of a turn
//                at any position; then cos and sin of 8 theta (floats),
//                which turn a token's rotation into that of the token 8
//                positions on.
//
// and what the append (Append.cu) needs to rotate an arriving key back as
// the CPU codec does, bit for bit: its tables of rotations in double and
// the frequencies.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_LATENTKEYOPERANDS_H
#define KVRT_BACKENDS_CUDA_LATENTKEYOPERANDS_H

#include <cstdint>
#include <vector>

namespace kvrt::cpu {
struct RopeFrequencies;
}

namespace kvrt::cuda {

/// k-steps of 16 latent coordinates the rebuild takes for `rank`: the rank
/// rounded up to 32, 64 or 128 (one kernel instance each), or 0 when it is
/// not below `headDim`.
uint32_t latentKeyRankSteps(uint32_t headDim, uint32_t rank);

/// The key coordinate (in the model's order) that the kernels hold as
/// rebuilt coordinate c: c itself, or with interleaved RoPE 2c for the
/// first half and 2 (c - headDim / 2) + 1 for the second.
uint32_t latentKeyCoordinate(uint32_t c, uint32_t headDim, bool interleaved);

/// Bytes of one KV head's operands as a block holds them in shared memory:
/// its axes and mean, then the frequencies.
uint32_t latentKeyOperandBytes(uint32_t headDim, uint32_t rankSteps);

struct LatentKeyOperands {
  /// [kvHeads] x ([headDim / 8][rankSteps][32][2] words, then headDim
  /// floats' bits).
  std::vector<uint32_t> axes;
  /// [headDim / 2][4] words.
  std::vector<uint32_t> frequencies;
  /// The CPU codec's tables (codecs/LowRank.cpp, PairRotations): [3
  /// levels][256 steps][headDim / 2][cos, sin] of (step << 8 level) theta.
  std::vector<double> rotations;
  /// theta of each pair, and 1 / the attention factor.
  std::vector<double> ropeInverse;
  double rotationScale = 1.0;
};

/// The operands of a layer whose keys are low-rank latents of `rank` on
/// `basis` ([kvHeads][headDim][rank + 2]: each coordinate's axes, then its
/// weight and mean, as the codec holds them), rotated by `rope`.
LatentKeyOperands latentKeyOperands(const std::vector<float> &basis,
                                    uint32_t kvHeads, uint32_t headDim,
                                    uint32_t rank,
                                    const cpu::RopeFrequencies &rope);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_LATENTKEYOPERANDS_H
