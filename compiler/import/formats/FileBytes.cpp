//===- FileBytes.cpp - The bytes of a model file --------------------------===//
#include "compiler/import/formats/FileBytes.h"

namespace kvopt::formats {

kvrt::StatusOr<FileBytes> FileBytes::map(const std::string &path) {
  kvrt::StatusOr<std::shared_ptr<kvrt::MappedFile>> mapped =
      kvrt::MappedFile::open(path);
  if (!mapped)
    return mapped.status();
  FileBytes bytes;
  bytes.name_ = path;
  bytes.mapped_ = std::move(*mapped);
  bytes.data_ = bytes.mapped_->data();
  bytes.size_ = bytes.mapped_->size();
  return bytes;
}

FileBytes
FileBytes::fromBuffer(std::string name,
                      std::shared_ptr<const std::vector<uint8_t>> buffer) {
  FileBytes bytes;
  bytes.name_ = std::move(name);
  bytes.buffer_ = std::move(buffer);
  bytes.data_ = bytes.buffer_->data();
  bytes.size_ = bytes.buffer_->size();
  return bytes;
}

} // namespace kvopt::formats
