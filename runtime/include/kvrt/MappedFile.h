//===- MappedFile.h - Read-only memory-mapped files -------------*- C++ -*-===//
#ifndef KVRT_MAPPEDFILE_H
#define KVRT_MAPPEDFILE_H

#include "kvrt/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kvrt {

/// A whole file mapped read-only. Shared so that views into it (weights,
/// blobs) can keep it alive.
class MappedFile {
public:
  static StatusOr<std::shared_ptr<MappedFile>> open(const std::string &path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

  /// True when [offset, offset + length) lies inside the file, computed
  /// without overflow.
  bool contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

private:
  MappedFile(std::string path, const uint8_t *data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t *data_;
  size_t size_;
};

} // namespace kvrt

#endif // KVRT_MAPPEDFILE_H
