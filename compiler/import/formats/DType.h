//===- DType.h - Element types of model files -------------------*- C++ -*-===//
//
// The element types that safetensors and GGUF tensors are stored in, their
// sizes, and their conversion to float32.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_DTYPE_H
#define KVOPT_COMPILER_IMPORT_FORMATS_DTYPE_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"

#include <cstdint>
#include <optional>

namespace kvopt::formats {

/// Element types of safetensors and GGUF tensors. The block formats store
/// 32 elements per block, as ggml does: Q8_0 = fp16 scale d + 32 int8
/// (34 bytes); Q4_0 = fp16 d + 16 bytes of nibbles (18 bytes); Q4_1 =
/// fp16 d, fp16 minimum m + 16 bytes of nibbles (20 bytes).
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
  BOOL,
  Q8_0,
  Q4_0,
  Q4_1
};

/// "F32", "BF16", "Q4_1": the safetensors and ggml spellings.
const char *dtypeName(DType type);

/// A float32 as the shortest decimal that reads back to it, then as a
/// double: an epsilon stored as 1e-5f becomes 1e-5, as config.json has it,
/// so that every importer of the same model agrees on its hyper-parameters.
double widenFloat32(float value);

/// Elements per block: 32 for the block formats, 1 for the others.
uint64_t dtypeBlockElements(DType type);

/// Bytes per block (per element for the types that have no blocks).
uint64_t dtypeBlockBytes(DType type);

/// Bytes that `count` elements occupy, or nothing when `count` is not a
/// whole number of blocks or the size overflows 64 bits.
std::optional<uint64_t> dtypeByteSize(DType type, uint64_t count);

/// The artifact's name for `type` where an artifact can hold it (F32, F16,
/// BF16 and the block formats Q8_0, Q4_0, Q4_1), else nothing.
std::optional<kvrt::schema::DType> artifactDType(DType type);

/// Converts `count` elements at `src` (dtypeByteSize(type, count) bytes, no
/// alignment needed) to float32 exactly as ggml and gguf-py do. F32, F16,
/// BF16, Q8_0, Q4_0 and Q4_1 are supported; other types are refused.
kvrt::Status dequantizeToF32(DType type, const uint8_t *src, uint64_t count,
                             float *dst);

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_DTYPE_H
