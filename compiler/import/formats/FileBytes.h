//===- FileBytes.h - A model file, mapped or in memory ----------*- C++ -*-===//
//
// The readers parse a FileBytes, so that mapped files and in-memory buffers
// (fuzzers, tests) go through the same validation code.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_FORMATS_FILEBYTES_H
#define KVOPT_COMPILER_IMPORT_FORMATS_FILEBYTES_H

#include "kvrt/MappedFile.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvopt::formats {

/// A whole file's bytes and what keeps them alive.
class FileBytes {
public:
  /// Maps the file at `path`.
  static kvrt::StatusOr<FileBytes> map(const std::string &path);
  /// Wraps `buffer`; `name` stands for the file in messages.
  static FileBytes
  fromBuffer(std::string name,
             std::shared_ptr<const std::vector<uint8_t>> buffer);

  /// The path, or the name given to a buffer.
  const std::string &name() const { return name_; }
  const uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }
  /// The mapping; null for a buffer.
  const std::shared_ptr<kvrt::MappedFile> &mapped() const { return mapped_; }

  /// True when [offset, offset + length) lies inside, computed without
  /// overflow.
  bool contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

private:
  std::string name_;
  const uint8_t *data_ = nullptr;
  uint64_t size_ = 0;
  std::shared_ptr<kvrt::MappedFile> mapped_;
  std::shared_ptr<const std::vector<uint8_t>> buffer_;
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_FORMATS_FILEBYTES_H
