//===- ArtifactWriter.cpp - Writing .kvpkg files atomically ---------------===//
#include "kvrt/ArtifactWriter.h"

#include "kvrt/Artifact.h"
#include "runtime/src/artifact/Format.h"
#include "runtime/src/artifact/Validate.h"
#include "runtime/src/support/XxHash.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kvrt {
namespace {

uint64_t alignUp(uint64_t v) {
  return (v + format::kSectionAlignment - 1) / format::kSectionAlignment *
         format::kSectionAlignment;
}

/// A file descriptor written through a buffer, so that producers may pass
/// tiny pieces without a system call each.
class OutputFile {
public:
  explicit OutputFile(const std::string &path)
      : path_(path), buffer_(1 << 20) {}
  ~OutputFile() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  /// Creates a new file named after `path_` with a unique suffix (writers
  /// of one destination must not share a temporary file); path() is then
  /// its name.
  Status open() {
    std::string name = path_ + ".XXXXXX";
    fd_ = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd_ < 0)
      return error("cannot create");
    path_ = name;
    // mkostemp creates 0600; an artifact is as readable as other outputs.
    if (::fchmod(fd_, 0644) != 0)
      return error("cannot set the mode of");
    return Status::ok();
  }
  const std::string &path() const { return path_; }
  Status write(const void *data, size_t size) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    while (size) {
      size_t n = std::min(size, buffer_.size() - used_);
      std::memcpy(buffer_.data() + used_, p, n);
      used_ += n;
      p += n;
      size -= n;
      if (used_ == buffer_.size())
        KVRT_RETURN_IF_ERROR(flush());
    }
    return Status::ok();
  }
  Status zeros(uint64_t count) {
    static const uint8_t zero[64] = {};
    for (; count; count -= std::min<uint64_t>(count, 64))
      KVRT_RETURN_IF_ERROR(write(zero, std::min<uint64_t>(count, 64)));
    return Status::ok();
  }
  Status writeAt(uint64_t offset, const void *data, size_t size) {
    KVRT_RETURN_IF_ERROR(flush());
    const uint8_t *p = static_cast<const uint8_t *>(data);
    while (size) {
      ssize_t n = ::pwrite(fd_, p, size, off_t(offset));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return error("cannot write");
      p += n;
      offset += uint64_t(n);
      size -= size_t(n);
    }
    return Status::ok();
  }
  Status syncAndClose() {
    KVRT_RETURN_IF_ERROR(flush());
    if (::fsync(fd_) != 0)
      return error("cannot sync");
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0 ? Status::ok() : error("cannot close");
  }

private:
  Status flush() {
    const uint8_t *p = buffer_.data();
    while (used_) {
      ssize_t n = ::write(fd_, p, used_);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return error("cannot write");
      p += n;
      used_ -= size_t(n);
    }
    return Status::ok();
  }
  Status error(const char *what) const {
    return Status::error(std::string(what) + " '" + path_ +
                         "': " + std::strerror(errno));
  }

  std::string path_;
  int fd_ = -1;
  std::vector<uint8_t> buffer_;
  size_t used_ = 0;
};

} // namespace

uint32_t ArtifactWriter::addBlob(const void *data, uint64_t size) {
  return addBlob(size, [data, size](const BlobSink &sink) {
    return sink(data, size_t(size));
  });
}

uint32_t ArtifactWriter::addBlob(uint64_t size, BlobProducer producer) {
  blobs_.push_back({size, std::move(producer)});
  return uint32_t(blobs_.size() - 1);
}

static uint64_t shapeBytes(schema::DType dtype,
                           const std::vector<int64_t> &shape) {
  uint64_t elements = 1;
  for (int64_t d : shape)
    elements *= uint64_t(d);
  return kvrt::tensorBytes(dtype, elements);
}

uint32_t ArtifactWriter::addTensor(const std::string &name, schema::DType dtype,
                                   const std::vector<int64_t> &shape,
                                   const void *data) {
  uint64_t bytes = shapeBytes(dtype, shape);
  return addTensor(name, dtype, shape, [data, bytes](const BlobSink &sink) {
    return sink(data, size_t(bytes));
  });
}

/// A new manifest tensor with no blob yet.
static schema::Tensor &newTensor(schema::Manifest &manifest,
                                 const std::string &name, schema::DType dtype,
                                 const std::vector<int64_t> &shape) {
  schema::Tensor &t = *manifest.add_tensors();
  t.set_name(name);
  t.set_dtype(dtype);
  for (int64_t d : shape)
    t.add_shape(d);
  return t;
}

uint32_t ArtifactWriter::addTensor(const std::string &name, schema::DType dtype,
                                   const std::vector<int64_t> &shape,
                                   BlobProducer producer) {
  newTensor(manifest_, name, dtype, shape)
      .set_blob(addBlob(shapeBytes(dtype, shape), std::move(producer)));
  return uint32_t(manifest_.tensors_size() - 1);
}

uint32_t
ArtifactWriter::addSyntheticTensor(const std::string &name, schema::DType dtype,
                                   const std::vector<int64_t> &shape,
                                   const schema::SyntheticValues &values) {
  *newTensor(manifest_, name, dtype, shape).mutable_synthetic() = values;
  return uint32_t(manifest_.tensors_size() - 1);
}

Status ArtifactWriter::write(const std::string &path) {
  manifest_.mutable_format()->set_major(kFormatMajor);
  manifest_.mutable_format()->set_minor(kFormatMinor);
  std::vector<uint64_t> sizes;
  for (const Blob &b : blobs_)
    sizes.push_back(b.size);
  KVRT_RETURN_IF_ERROR(
      validateManifest(manifest_, sizes, path, kFormatMajor, kFormatMinor));
  std::string manifestBytes;
  if (!manifest_.SerializeToString(&manifestBytes))
    return Status::error(path + ": the manifest cannot be serialized (over "
                                "2 GiB?)");

  // Layout: header, section table, then the manifest and the blobs, each
  // starting on a 64-byte boundary.
  std::vector<format::SectionEntry> sections(blobs_.size() + 1);
  uint64_t tableBytes = sections.size() * format::kSectionEntryBytes;
  uint64_t offset = alignUp(format::kHeaderBytes + tableBytes);
  sections[0] = {uint32_t(format::SectionKind::Manifest), 0, offset,
                 manifestBytes.size(),
                 xxHash64(manifestBytes.data(), manifestBytes.size())};
  offset += manifestBytes.size();
  for (size_t i = 0; i < blobs_.size(); ++i) {
    offset = alignUp(offset);
    sections[i + 1] = {uint32_t(format::SectionKind::Blob), 0, offset,
                       blobs_[i].size, 0};
    offset += blobs_[i].size;
  }
  uint64_t fileSize = offset;

  // Set once the temporary file exists.
  std::string tmp;
  auto attempt = [&]() -> Status {
    OutputFile out(path + ".tmp");
    KVRT_RETURN_IF_ERROR(out.open());
    tmp = out.path();
    // Header and table are written last, once the checksums are known.
    KVRT_RETURN_IF_ERROR(out.zeros(sections[0].offset));
    KVRT_RETURN_IF_ERROR(out.write(manifestBytes.data(), manifestBytes.size()));
    uint64_t at = sections[0].offset + manifestBytes.size();
    for (size_t i = 0; i < blobs_.size(); ++i) {
      format::SectionEntry &s = sections[i + 1];
      KVRT_RETURN_IF_ERROR(out.zeros(s.offset - at));
      XxHash64 hash;
      uint64_t passed = 0;
      BlobSink sink = [&](const void *data, size_t size) -> Status {
        if (size > s.size - passed)
          return Status::error(path + ": blob " + std::to_string(i) +
                               " is longer than the " + std::to_string(s.size) +
                               " bytes declared");
        hash.update(data, size);
        passed += size;
        return out.write(data, size);
      };
      KVRT_RETURN_IF_ERROR(blobs_[i].producer(sink));
      if (passed != s.size)
        return Status::error(path + ": blob " + std::to_string(i) + " has " +
                             std::to_string(passed) + " of the " +
                             std::to_string(s.size) + " bytes declared");
      s.checksum = hash.digest();
      at = s.offset + s.size;
    }
    std::vector<uint8_t> table(tableBytes);
    for (size_t i = 0; i < sections.size(); ++i)
      format::encodeEntry(sections[i],
                          table.data() + i * format::kSectionEntryBytes);
    format::Header header;
    header.major = kFormatMajor;
    header.minor = kFormatMinor;
    header.headerBytes = format::kHeaderBytes;
    header.sectionCount = sections.size();
    header.sectionTableOffset = format::kHeaderBytes;
    header.fileSize = fileSize;
    header.sectionTableChecksum = xxHash64(table.data(), table.size());
    uint8_t headerBytes[format::kHeaderBytes];
    format::encodeHeader(header, headerBytes);
    KVRT_RETURN_IF_ERROR(out.writeAt(0, headerBytes, sizeof(headerBytes)));
    KVRT_RETURN_IF_ERROR(
        out.writeAt(format::kHeaderBytes, table.data(), table.size()));
    return out.syncAndClose();
  };
  Status status = Status::ok();
  // An exception (out of memory, or thrown by a producer) must still remove
  // the temporary file, and must not cross the API.
  try {
    status = attempt();
  } catch (const std::exception &e) {
    status = Status::error(path + ": writing failed: " + e.what());
  }
  if (status && ::rename(tmp.c_str(), path.c_str()) != 0)
    status = Status::error("cannot rename '" + tmp + "' to '" + path +
                           "': " + std::strerror(errno));
  if (!status) {
    if (!tmp.empty())
      ::unlink(tmp.c_str());
    return status;
  }
  // Sync the directory too, so the rename itself survives a crash.
  std::string dir = path.find('/') == std::string::npos
                        ? "."
                        : path.substr(0, path.rfind('/') + 1);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  return Status::ok();
}

} // namespace kvrt
