//===- DType.cpp - Element types of model files ---------------------------===//
#include "compiler/import/formats/DType.h"

#include <cstring>

namespace kvopt::formats {

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
  case DType::Bool:
    return "BOOL";
  case DType::Q8_0:
    return "Q8_0";
  case DType::Q4_0:
    return "Q4_0";
  case DType::Q4_1:
    return "Q4_1";
  }
  return "?";
}

namespace {
constexpr uint64_t kBlock = 32;

/// Bytes per element for plain types, bytes per block for block types.
struct Layout {
  uint64_t bytes;
  bool blocked;
};

Layout layoutOf(DType type) {
  switch (type) {
  case DType::F64:
  case DType::I64:
    return {8, false};
  case DType::F32:
  case DType::I32:
    return {4, false};
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return {2, false};
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return {1, false};
  case DType::Q8_0:
    return {34, true};
  case DType::Q4_0:
    return {18, true};
  case DType::Q4_1:
    return {20, true};
  }
  return {0, false};
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000 | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal: normalise the mantissa.
    exponent = 113;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t load16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }
} // namespace

std::optional<uint64_t> dtypeByteSize(DType type, uint64_t count) {
  Layout l = layoutOf(type);
  if (l.blocked) {
    if (count % kBlock != 0)
      return std::nullopt;
    count /= kBlock;
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(count, l.bytes, &bytes))
    return std::nullopt;
  return bytes;
}

std::optional<uint64_t> elementCount(const int64_t *dims, size_t rank) {
  uint64_t n = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0 || __builtin_mul_overflow(n, uint64_t(dims[i]), &n))
      return std::nullopt;
  }
  return n;
}

kvrt::Status dequantizeToF32(DType type, const uint8_t *src, uint64_t count,
                             float *dst) {
  switch (type) {
  case DType::F32:
    std::memcpy(dst, src, count * 4);
    return kvrt::Status::ok();
  case DType::F16:
    for (uint64_t i = 0; i < count; ++i)
      dst[i] = halfToFloat(load16(src + 2 * i));
    return kvrt::Status::ok();
  case DType::BF16:
    for (uint64_t i = 0; i < count; ++i) {
      uint32_t bits = uint32_t(load16(src + 2 * i)) << 16;
      std::memcpy(&dst[i], &bits, 4);
    }
    return kvrt::Status::ok();
  case DType::Q8_0:
  case DType::Q4_0:
  case DType::Q4_1:
    break;
  default:
    return kvrt::Status::error(std::string("cannot convert ") +
                               dtypeName(type) + " tensors to float32");
  }
  if (count % kBlock != 0)
    return kvrt::Status::error(std::string(dtypeName(type)) +
                               " data must hold whole blocks of 32 values");
  uint64_t blockBytes = layoutOf(type).bytes;
  for (uint64_t b = 0; b < count / kBlock; ++b) {
    const uint8_t *block = src + b * blockBytes;
    float *out = dst + b * kBlock;
    float d = halfToFloat(load16(block));
    if (type == DType::Q8_0) {
      for (uint64_t i = 0; i < kBlock; ++i)
        out[i] = float(int8_t(block[2 + i])) * d;
    } else if (type == DType::Q4_0) {
      // Low nibbles are elements 0..15, high nibbles 16..31.
      for (uint64_t i = 0; i < kBlock / 2; ++i) {
        out[i] = float(int(block[2 + i] & 0x0F) - 8) * d;
        out[i + 16] = float(int(block[2 + i] >> 4) - 8) * d;
      }
    } else {
      float m = halfToFloat(load16(block + 2));
      for (uint64_t i = 0; i < kBlock / 2; ++i) {
        out[i] = float(block[4 + i] & 0x0F) * d + m;
        out[i + 16] = float(block[4 + i] >> 4) * d + m;
      }
    }
  }
  return kvrt::Status::ok();
}

} // namespace kvopt::formats
