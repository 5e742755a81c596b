//===- DType.cpp - Element types of model files ---------------------------===//
//
// The conversions must match ggml and gguf-py bit for bit: both compute in
// float32, so every product and sum below is a float32 operation (the
// library is built with -ffp-contract=off so that d * q + m is not fused).
//
//===----------------------------------------------------------------------===//
#include "compiler/import/formats/DType.h"

#include <charconv>
#include <cstdlib>

#include <cstring>
#include <string>

namespace kvopt::formats {

namespace {

constexpr uint64_t kBlockElements = 32;

uint16_t load16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

float fromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// IEEE binary16 to binary32; exact for every input, NaN payloads kept.
float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  if (exponent == 0x1F)
    return fromBits(sign | 0x7F800000 | (mantissa << 13));
  if (exponent != 0)
    return fromBits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
  // Zero and subnormals: mantissa * 2^-24 is exact in float32.
  float magnitude = float(mantissa) * 0x1p-24f;
  return sign ? -magnitude : magnitude;
}

float bf16ToFloat(uint16_t h) { return fromBits(uint32_t(h) << 16); }

void dequantizeQ8_0(const uint8_t *block, float *out) {
  float d = halfToFloat(load16(block));
  for (uint64_t i = 0; i < kBlockElements; ++i)
    out[i] = float(int8_t(block[2 + i])) * d;
}

/// Low nibbles hold elements 0..15 of the block, high nibbles 16..31.
void dequantizeQ4_0(const uint8_t *block, float *out) {
  float d = halfToFloat(load16(block));
  const uint8_t *qs = block + 2;
  for (uint64_t i = 0; i < kBlockElements / 2; ++i) {
    out[i] = float(int(qs[i] & 0x0F) - 8) * d;
    out[i + kBlockElements / 2] = float(int(qs[i] >> 4) - 8) * d;
  }
}

void dequantizeQ4_1(const uint8_t *block, float *out) {
  float d = halfToFloat(load16(block));
  float m = halfToFloat(load16(block + 2));
  const uint8_t *qs = block + 4;
  for (uint64_t i = 0; i < kBlockElements / 2; ++i) {
    out[i] = float(qs[i] & 0x0F) * d + m;
    out[i + kBlockElements / 2] = float(qs[i] >> 4) * d + m;
  }
}

} // namespace

double widenFloat32(float value) {
  char text[32];
  char *end = std::to_chars(text, text + sizeof text - 1, value).ptr;
  *end = '\0';
  return std::strtod(text, nullptr);
}

const char *dtypeName(DType type) {
  switch (type) {
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::F64:
    return "F64";
  case DType::I8:
    return "I8";
  case DType::I16:
    return "I16";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  case DType::U8:
    return "U8";
  case DType::BOOL:
    return "BOOL";
  case DType::Q8_0:
    return "Q8_0";
  case DType::Q4_0:
    return "Q4_0";
  case DType::Q4_1:
    return "Q4_1";
  }
  return "unknown";
}

uint64_t dtypeBlockElements(DType type) {
  switch (type) {
  case DType::Q8_0:
  case DType::Q4_0:
  case DType::Q4_1:
    return kBlockElements;
  default:
    return 1;
  }
}

uint64_t dtypeBlockBytes(DType type) {
  switch (type) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::BOOL:
    return 1;
  case DType::Q8_0:
    return 34;
  case DType::Q4_0:
    return 18;
  case DType::Q4_1:
    return 20;
  }
  return 0;
}

std::optional<uint64_t> dtypeByteSize(DType type, uint64_t count) {
  uint64_t perBlock = dtypeBlockElements(type);
  if (count % perBlock != 0)
    return std::nullopt;
  uint64_t bytes;
  if (__builtin_mul_overflow(count / perBlock, dtypeBlockBytes(type), &bytes))
    return std::nullopt;
  return bytes;
}

kvrt::Status dequantizeToF32(DType type, const uint8_t *src, uint64_t count,
                             float *dst) {
  if (count % dtypeBlockElements(type) != 0)
    return kvrt::Status::error(std::string("cannot convert ") +
                               std::to_string(count) + " " + dtypeName(type) +
                               " elements to float32: not a whole number of "
                               "blocks of 32");
  switch (type) {
  case DType::F32:
    if (count != 0) // memcpy's pointers must be valid even for 0 bytes.
      std::memcpy(dst, src, count * sizeof(float));
    return kvrt::Status::ok();
  case DType::F16:
    for (uint64_t i = 0; i < count; ++i)
      dst[i] = halfToFloat(load16(src + 2 * i));
    return kvrt::Status::ok();
  case DType::BF16:
    for (uint64_t i = 0; i < count; ++i)
      dst[i] = bf16ToFloat(load16(src + 2 * i));
    return kvrt::Status::ok();
  case DType::Q8_0:
  case DType::Q4_0:
  case DType::Q4_1: {
    void (*decode)(const uint8_t *, float *) =
        type == DType::Q8_0   ? dequantizeQ8_0
        : type == DType::Q4_0 ? dequantizeQ4_0
                              : dequantizeQ4_1;
    uint64_t blockBytes = dtypeBlockBytes(type);
    for (uint64_t b = 0; b < count / kBlockElements; ++b)
      decode(src + b * blockBytes, dst + b * kBlockElements);
    return kvrt::Status::ok();
  }
  default:
    return kvrt::Status::error(std::string("cannot convert ") +
                               dtypeName(type) +
                               " tensors to float32: only F32, F16, BF16, "
                               "Q8_0, Q4_0 and Q4_1 are converted");
  }
}

} // namespace kvopt::formats
