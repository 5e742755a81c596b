//===- TensorValues.cpp - Weights' element formats and their values -------===//
//
// The block formats decode as ggml and gguf-py do, through the definitions
// the CPU backend's linear kernel decodes with (BlockFormats.h), so a weight
// decoded here equals the one the kernel multiplies, bit for bit.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Artifact.h"
#include "runtime/src/backends/cpu/BlockFormats.h"
#include "runtime/src/backends/cpu/Float16.h"

#include <cstring>

namespace kvrt {
namespace {

uint16_t load16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

template <schema::DType Format>
KVRT_INLINE void decodeBlocks(const uint8_t *blocks, uint64_t count,
                              float *out) {
  using Blocks = cpu::Blocks<Format>;
  for (uint64_t b = 0; b < count / cpu::kBlockElements; ++b) {
    cpu::Vec8 parts[4];
    Blocks::decode(blocks + Blocks::kBytes * b, parts);
    std::memcpy(out + cpu::kBlockElements * b, parts, sizeof parts);
  }
}

KVRT_MULTIVERSION
void decodeQ8_0(const uint8_t *blocks, uint64_t count, float *out) {
  decodeBlocks<schema::DTYPE_Q8_0>(blocks, count, out);
}

KVRT_MULTIVERSION
void decodeQ4_0(const uint8_t *blocks, uint64_t count, float *out) {
  decodeBlocks<schema::DTYPE_Q4_0>(blocks, count, out);
}

KVRT_MULTIVERSION
void decodeQ4_1(const uint8_t *blocks, uint64_t count, float *out) {
  decodeBlocks<schema::DTYPE_Q4_1>(blocks, count, out);
}

} // namespace

uint64_t dtypeBlockElements(schema::DType dtype) {
  switch (dtype) {
  case schema::DTYPE_Q8_0:
  case schema::DTYPE_Q4_0:
  case schema::DTYPE_Q4_1:
    return cpu::kBlockElements;
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
    return cpu::Blocks<schema::DTYPE_Q8_0>::kBytes;
  case schema::DTYPE_Q4_0:
    return cpu::Blocks<schema::DTYPE_Q4_0>::kBytes;
  case schema::DTYPE_Q4_1:
    return cpu::Blocks<schema::DTYPE_Q4_1>::kBytes;
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
