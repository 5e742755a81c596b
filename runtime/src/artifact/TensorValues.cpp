//===- TensorValues.cpp - Weights' element formats and their values -------===//
//
// The block formats round as ggml and gguf-py do: every product and sum is
// an f32 operation, not fused (this file is built with -ffp-contract=off),
// so a weight decoded here equals the one the compiler's importer decoded,
// bit for bit, and the CPU backend's kernels may decode blocks on the fly.
// The loops are written on eight-lane vectors so that the x86-64-v3 clone
// decodes a block in a few instructions: each lane does the same f32
// operations as the scalar definition.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Artifact.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Simd.h"

#include <cstring>

namespace kvrt {
namespace {

constexpr uint64_t kBlockElements = 32;

typedef int32_t Int8x32 __attribute__((vector_size(32)));
using cpu::Vec8;

// The helpers must be inlined into each clone of the decoders: a helper
// compiled apart is baseline x86-64 code, its eight-lane vectors split
// into SSE halves (4x slower, measured).
#define KVRT_INLINE __attribute__((always_inline)) inline

uint16_t load16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

/// Eight consecutive bytes as eight lanes.
KVRT_INLINE Int8x32 widen8(const uint8_t *p) {
  Int8x32 v;
  for (int i = 0; i < 8; ++i)
    v[i] = p[i];
  return v;
}

/// Every lane `value`, negative zero included (adding it to a vector of
/// zeros would make it positive).
KVRT_INLINE Vec8 splat(float value) {
  return Vec8{value, value, value, value, value, value, value, value};
}

KVRT_INLINE void store8(float *out, Vec8 v) { std::memcpy(out, &v, sizeof v); }

/// d * q, q a signed byte.
KVRT_MULTIVERSION
void decodeQ8_0(const uint8_t *blocks, uint64_t count, float *out) {
  for (uint64_t b = 0; b < count / kBlockElements; ++b) {
    const uint8_t *block = blocks + 34 * b;
    const Vec8 d = splat(cpu::f16ToFloat(load16(block)));
    for (int part = 0; part < 4; ++part) {
      Int8x32 q = widen8(block + 2 + 8 * part);
      q = (q ^ 0x80) - 0x80; // the bytes as int8
      store8(out + 32 * b + 8 * part, __builtin_convertvector(q, Vec8) * d);
    }
  }
}

/// d * (q - 8) (Q4_0) or d * q + m (Q4_1), the low nibbles being elements
/// 0-15 of a block and the high ones 16-31.
template <bool Offset>
KVRT_INLINE void decodeNibbles(const uint8_t *blocks, uint64_t count,
                               float *out) {
  constexpr uint64_t kBytes = Offset ? 20 : 18;
  for (uint64_t b = 0; b < count / kBlockElements; ++b) {
    const uint8_t *block = blocks + kBytes * b;
    const Vec8 d = splat(cpu::f16ToFloat(load16(block)));
    const Vec8 m = splat(Offset ? cpu::f16ToFloat(load16(block + 2)) : 0.0f);
    const uint8_t *codes = block + (Offset ? 4 : 2);
    for (int half = 0; half < 2; ++half) {
      const Int8x32 q = widen8(codes + 8 * half);
      Int8x32 low = q & 0xf, high = q >> 4;
      if (!Offset) {
        low -= 8;
        high -= 8;
      }
      Vec8 lowValues = __builtin_convertvector(low, Vec8) * d;
      Vec8 highValues = __builtin_convertvector(high, Vec8) * d;
      if (Offset) {
        lowValues += m;
        highValues += m;
      }
      store8(out + 32 * b + 8 * half, lowValues);
      store8(out + 32 * b + 16 + 8 * half, highValues);
    }
  }
}

KVRT_MULTIVERSION
void decodeQ4_0(const uint8_t *blocks, uint64_t count, float *out) {
  decodeNibbles<false>(blocks, count, out);
}

KVRT_MULTIVERSION
void decodeQ4_1(const uint8_t *blocks, uint64_t count, float *out) {
  decodeNibbles<true>(blocks, count, out);
}

} // namespace

uint64_t dtypeBlockElements(schema::DType dtype) {
  switch (dtype) {
  case schema::DTYPE_Q8_0:
  case schema::DTYPE_Q4_0:
  case schema::DTYPE_Q4_1:
    return kBlockElements;
  default:
    return 1;
  }
}

uint64_t dtypeBlockBytes(schema::DType dtype) {
  switch (dtype) {
  case schema::DTYPE_F32:
    return 4;
  case schema::DTYPE_F16:
  case schema::DTYPE_BF16:
    return 2;
  case schema::DTYPE_Q8_0:
    return 34;
  case schema::DTYPE_Q4_0:
    return 18;
  case schema::DTYPE_Q4_1:
    return 20;
  default:
    return 0;
  }
}

uint64_t tensorBytes(schema::DType dtype, uint64_t elements) {
  const uint64_t perBlock = dtypeBlockElements(dtype);
  if (elements % perBlock != 0)
    return 0;
  return elements / perBlock * dtypeBlockBytes(dtype);
}

void decodeValues(schema::DType dtype, const uint8_t *bytes, uint64_t count,
                  float *out) {
  switch (dtype) {
  case schema::DTYPE_F32:
    if (count != 0) // memcpy's pointers must be valid even for 0 bytes.
      std::memcpy(out, bytes, count * sizeof(float));
    return;
  case schema::DTYPE_F16:
    for (uint64_t i = 0; i < count; ++i)
      out[i] = cpu::f16ToFloat(load16(bytes + 2 * i));
    return;
  case schema::DTYPE_BF16:
    for (uint64_t i = 0; i < count; ++i)
      out[i] = cpu::bf16ToFloat(load16(bytes + 2 * i));
    return;
  case schema::DTYPE_Q8_0:
    return decodeQ8_0(bytes, count, out);
  case schema::DTYPE_Q4_0:
    return decodeQ4_0(bytes, count, out);
  case schema::DTYPE_Q4_1:
    return decodeQ4_1(bytes, count, out);
  default:
    return;
  }
}

const char *dtypeName(schema::DType dtype) {
  switch (dtype) {
  case schema::DTYPE_F32:
    return "f32";
  case schema::DTYPE_F16:
    return "f16";
  case schema::DTYPE_BF16:
    return "bf16";
  case schema::DTYPE_Q8_0:
    return "q8_0";
  case schema::DTYPE_Q4_0:
    return "q4_0";
  case schema::DTYPE_Q4_1:
    return "q4_1";
  default:
    return "unspecified";
  }
}

} // namespace kvrt
