//===- TensorInfo.h - Where a tensor lies in a model file -------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_TENSORINFO_H
#define KVOPT_COMPILER_IMPORT_FORMATS_TENSORINFO_H

#include "compiler/import/formats/DType.h"

#include <string>
#include <vector>

namespace kvopt::formats {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  /// Row-major, slowest dimension first (PyTorch order).
  std::vector<int64_t> shape;
  /// Absolute byte offset in the file, and byte count; checked in bounds.
  uint64_t offset = 0;
  uint64_t byteSize = 0;

  uint64_t numElements() const {
    return *elementCount(shape.data(), shape.size());
  }
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_TENSORINFO_H
