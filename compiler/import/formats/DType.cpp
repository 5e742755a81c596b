//===- DType.cpp - Element types of model files ---------------------------===//
//
// The conversions are the runtime's (kvrt::decodeValues), which match
// ggml and gguf-py bit for bit: the artifact may then keep a GGUF file's
// blocks and the runtime decode them to the values the compiler saw.
//
//===----------------------------------------------------------------------===//
#include "compiler/import/formats/DType.h"
#include "kvrt/Artifact.h"

#include <charconv>
#include <cstdlib>

#include <cstring>
#include <string>

namespace kvopt::formats {

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
    // The block formats are defined once, by the runtime that reads them.
    return kvrt::dtypeBlockElements(*artifactDType(type));
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
  case DType::Q4_0:
  case DType::Q4_1:
    return kvrt::dtypeBlockBytes(*artifactDType(type));
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

std::optional<kvrt::schema::DType> artifactDType(DType type) {
  switch (type) {
  case DType::F32:
    return kvrt::schema::DTYPE_F32;
  case DType::F16:
    return kvrt::schema::DTYPE_F16;
  case DType::BF16:
    return kvrt::schema::DTYPE_BF16;
  case DType::Q8_0:
    return kvrt::schema::DTYPE_Q8_0;
  case DType::Q4_0:
    return kvrt::schema::DTYPE_Q4_0;
  case DType::Q4_1:
    return kvrt::schema::DTYPE_Q4_1;
  default:
    return std::nullopt;
  }
}

kvrt::Status dequantizeToF32(DType type, const uint8_t *src, uint64_t count,
                             float *dst) {
  if (count % dtypeBlockElements(type) != 0)
    return kvrt::Status::error(std::string("cannot convert ") +
                               std::to_string(count) + " " + dtypeName(type) +
                               " elements to float32: not a whole number of "
                               "blocks of 32");
  std::optional<kvrt::schema::DType> runtimeType = artifactDType(type);
  if (!runtimeType)
    return kvrt::Status::error(std::string("cannot convert ") +
                               dtypeName(type) +
                               " tensors to float32: only F32, F16, BF16, "
                               "Q8_0, Q4_0 and Q4_1 are converted");
  kvrt::decodeValues(*runtimeType, src, count, dst);
  return kvrt::Status::ok();
}

} // namespace kvopt::formats
