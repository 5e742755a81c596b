//===- DType.h - Element types of model files -------------------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_DTYPE_H
#define KVOPT_COMPILER_IMPORT_FORMATS_DTYPE_H

#include "kvrt/Status.h"

#include <cstdint>
#include <optional>

namespace kvopt::formats {

/// Element types of safetensors and GGUF tensors. The block formats store
/// 32 elements per block: Q8_0 = fp16 scale + 32 int8 (34 bytes); Q4_0 =
/// fp16 scale + 16 bytes of nibbles (18 bytes); Q4_1 = fp16 scale, fp16 min
/// + 16 bytes of nibbles (20 bytes).
enum class DType {
  F32,
  F16,
  BF16,
  F64,
  I8,
  I16,
  I32,
  I64,
  U8,
  Bool,
  Q8_0,
  Q4_0,
  Q4_1
};

const char *dtypeName(DType type);

/// Bytes that `count` elements occupy, or nothing when the count overflows
/// or is not a whole number of blocks.
std::optional<uint64_t> dtypeByteSize(DType type, uint64_t count);

/// Converts `count` elements at `src` to float32 exactly as ggml and
/// gguf-py do. Integer and f64 types are refused.
kvrt::Status dequantizeToF32(DType type, const uint8_t *src, uint64_t count,
                             float *dst);

/// The element count of `shape`, or nothing when a dimension is negative or
/// the product overflows.
std::optional<uint64_t> elementCount(const int64_t *dims, size_t rank);

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_DTYPE_H
