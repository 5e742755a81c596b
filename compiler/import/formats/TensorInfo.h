//===- TensorInfo.h - Where a tensor lies in a model file -------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_TENSORINFO_H
#define KVOPT_COMPILER_IMPORT_FORMATS_TENSORINFO_H

#include "compiler/import/formats/DType.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvopt::formats {

/// The element count of `shape`, or nothing when a dimension is negative or
/// the product overflows 64 bits.
inline std::optional<uint64_t> elementCount(const std::vector<int64_t> &shape) {
  uint64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, uint64_t(d), &n))
      return std::nullopt;
  return n;
}

/// "[49152, 576]": for messages.
inline std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// One tensor of a model file, as the readers validated it: its bytes lie
/// inside the file and its shape's element count fits in 64 bits.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  /// Row-major, slowest dimension first (PyTorch order).
  std::vector<int64_t> shape;
  /// Absolute byte offset in the file.
  uint64_t offset = 0;
  uint64_t byteSize = 0;

  uint64_t numElements() const { return elementCount(shape).value_or(0); }
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_TENSORINFO_H
