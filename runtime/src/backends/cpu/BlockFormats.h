//===- BlockFormats.h - ggml blocks as vectors ------------------*- C++ -*-===//
//
// One definition of each block format's values, used both to decode a
// weight ahead (kvrt::decodeValues) and inside the linear kernel, which
// decodes a block into registers and multiplies it at once. Every value
// is exact whatever the compiler fuses: a code has at most 8 significant
// bits and an f16 scale 11, so d * q is an f32 without rounding and
// d * q + m rounds once, fused or not. That is what lets a kernel built
// with contraction (Linear.cpp) give ggml's and gguf-py's values bit for
// bit.
//
// The helpers are always inlined: each clone of a KVRT_MULTIVERSION
// caller must get them in its own instruction set (a helper compiled apart
// is baseline x86-64 code, its eight-lane vectors split into SSE halves:
// 4x slower, measured).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_BLOCKFORMATS_H
#define KVRT_BACKENDS_CPU_BLOCKFORMATS_H

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Simd.h"

#include <cstdint>
#include <cstring>

namespace kvrt::cpu {

/// Elements of every block format's block.
constexpr int64_t kBlockElements = 32;

typedef int32_t Int8x32 __attribute__((vector_size(32)));

/// Eight consecutive bytes as eight lanes, unsigned or as int8 (one
/// widening load either way).
template <typename Byte> KVRT_INLINE Int8x32 widen8(const uint8_t *p) {
  Int8x32 v;
  for (int i = 0; i < 8; ++i)
    v[i] = Byte(p[i]);
  return v;
}

/// The binary16 at p in every lane. _Float16 converts with one instruction
/// where the clone has F16C (exactly, as every f16 is an f32); the bits are
/// broadcast as integers, since a float broadcast written as `0 + x` would
/// make -0 positive.
KVRT_INLINE Vec8 halfInEveryLane(const uint8_t *p) {
  _Float16 half;
  std::memcpy(&half, p, sizeof half);
  const float value = float(half);
  int32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const Int8x32 lanes = Int8x32{} + bits;
  Vec8 v;
  std::memcpy(&v, &lanes, sizeof v);
  return v;
}

/// A format's block at `block` as four vectors, elements 0-7, 8-15, 16-23
/// and 24-31.
template <schema::DType Format> struct Blocks;

/// d * q, q a signed byte.
template <> struct Blocks<schema::DTYPE_Q8_0> {
  static constexpr int64_t kBytes = 34;
  KVRT_INLINE static void decode(const uint8_t *block, Vec8 (&parts)[4]) {
    const Vec8 d = halfInEveryLane(block);
    for (int part = 0; part < 4; ++part) {
      const Int8x32 q = widen8<int8_t>(block + 2 + 8 * part);
      parts[part] = __builtin_convertvector(q, Vec8) * d;
    }
  }
};

/// d * (q - 8), the low nibbles being elements 0-15 and the high ones 16-31.
template <> struct Blocks<schema::DTYPE_Q4_0> {
  static constexpr int64_t kBytes = 18;
  KVRT_INLINE static void decode(const uint8_t *block, Vec8 (&parts)[4]) {
    const Vec8 d = halfInEveryLane(block);
    for (int half = 0; half < 2; ++half) {
      const Int8x32 q = widen8<uint8_t>(block + 2 + 8 * half);
      parts[half] = __builtin_convertvector((q & 0xf) - 8, Vec8) * d;
      parts[2 + half] = __builtin_convertvector((q >> 4) - 8, Vec8) * d;
    }
  }
};

/// d * q + m, the nibbles laid out as Q4_0's.
template <> struct Blocks<schema::DTYPE_Q4_1> {
  static constexpr int64_t kBytes = 20;
  KVRT_INLINE static void decode(const uint8_t *block, Vec8 (&parts)[4]) {
    const Vec8 d = halfInEveryLane(block);
    const Vec8 m = halfInEveryLane(block + 2);
    for (int half = 0; half < 2; ++half) {
      const Int8x32 q = widen8<uint8_t>(block + 4 + 8 * half);
      parts[half] = __builtin_convertvector(q & 0xf, Vec8) * d + m;
      parts[2 + half] = __builtin_convertvector(q >> 4, Vec8) * d + m;
    }
  }
};

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_BLOCKFORMATS_H
