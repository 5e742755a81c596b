//===- Artifact.cpp - Opening and checking .kvpkg files -------------------===//
#include "kvrt/Artifact.h"

#include "kvrt/MappedFile.h"
#include "kvrt/Synthetic.h"
#include "runtime/src/artifact/Format.h"
#include "runtime/src/artifact/Validate.h"
#include "runtime/src/support/XxHash.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <new>
#include <optional>

namespace kvrt {

using format::SectionEntry;
using format::SectionKind;

namespace {

std::string str(uint64_t v) { return std::to_string(v); }

} // namespace

Artifact::~Artifact() = default;

StatusOr<std::shared_ptr<const Artifact>>
Artifact::open(const std::string &path, const ArtifactOptions &options) {
  StatusOr<std::shared_ptr<MappedFile>> file = MappedFile::open(path);
  if (!file)
    return file.status();
  std::unique_ptr<Artifact> artifact(new Artifact);
  artifact->name_ = path;
  artifact->file_ = *file;
  artifact->data_ = (*file)->data();
  artifact->size_ = (*file)->size();
  return parse(std::move(artifact), options);
}

StatusOr<std::shared_ptr<const Artifact>>
Artifact::fromMemory(const std::string &name, const void *data, size_t size,
                     const ArtifactOptions &options) {
  std::unique_ptr<Artifact> artifact(new Artifact);
  artifact->name_ = name;
  // Aligned like a mapped file, so blobs are as aligned as the format says.
  size_t rounded =
      (size / format::kSectionAlignment + 1) * format::kSectionAlignment;
  artifact->copy_.reset(std::aligned_alloc(format::kSectionAlignment, rounded));
  if (!artifact->copy_)
    return Status::error(name + ": cannot allocate " + str(size) +
                         " bytes to hold the artifact");
  if (size)
    std::memcpy(artifact->copy_.get(), data, size);
  artifact->data_ = static_cast<const uint8_t *>(artifact->copy_.get());
  artifact->size_ = size;
  return parse(std::move(artifact), options);
}

StatusOr<std::shared_ptr<const Artifact>>
Artifact::parse(std::unique_ptr<Artifact> artifact,
                const ArtifactOptions &options) {
  // Sizes are validated before anything is allocated, but a hostile
  // manifest could still ask protobuf for more memory than there is.
  try {
    KVRT_RETURN_IF_ERROR(artifact->parseContainer());
    std::vector<uint64_t> blobSizes;
    for (const Blob &b : artifact->blobs_)
      blobSizes.push_back(b.size);
    KVRT_RETURN_IF_ERROR(validateManifest(artifact->manifest_, blobSizes,
                                          artifact->name_, artifact->major_,
                                          artifact->minor_));
    for (const schema::Tensor &t : artifact->manifest_.tensors()) {
      if (!t.has_synthetic())
        continue;
      // Validated: at most 2^40 elements, so this does not overflow.
      uint64_t elements = 1;
      for (int64_t d : t.shape())
        elements *= uint64_t(d);
      const uint64_t bytes = tensorBytes(t.dtype(), elements);
      if (bytes > options.maxSyntheticTensorBytes)
        return Status::error(
            artifact->name_ + ": synthetic tensor \"" + t.name() + "\" of " +
            std::to_string(bytes) + " bytes exceeds the " +
            std::to_string(options.maxSyntheticTensorBytes) +
            " that ArtifactOptions::maxSyntheticTensorBytes allows");
    }
    if (options.verifyBlobsEagerly)
      KVRT_RETURN_IF_ERROR(artifact->verifyBlobs());
  } catch (const std::bad_alloc &) {
    return Status::error(artifact->name_ +
                         ": out of memory while reading the manifest");
  } catch (const std::exception &e) {
    return Status::error(artifact->name_ + ": cannot read the manifest (" +
                         e.what() + ")");
  }
  return std::shared_ptr<const Artifact>(std::move(artifact));
}

Status Artifact::parseContainer() {
  const std::string &n = name_;
  if (size_ < format::kHeaderBytes)
    return Status::error(n + ": file is " + str(size_) +
                         " bytes, shorter than the 64-byte kvpkg header");
  if (std::memcmp(data_, format::kMagic, sizeof(format::kMagic)) != 0)
    return Status::error(n + ": not a kvpkg artifact (wrong magic bytes)");
  format::Header h = format::decodeHeader(data_);
  major_ = h.major;
  minor_ = h.minor;
  std::string version = str(h.major) + "." + str(h.minor);
  if (h.major > kFormatMajor)
    return Status::error(n + ": format version " + version +
                         " is newer than this runtime (" + str(kFormatMajor) +
                         ".x); rebuild with a newer kvopt");
  if (h.major < kFormatMajor)
    return Status::error(n + ": format version " + version +
                         " is older than any this runtime reads (" +
                         str(kFormatMajor) + ".x)");
  if (h.headerBytes < format::kHeaderBytes || h.headerBytes > size_)
    return Status::error(n + ": header size " + str(h.headerBytes) +
                         " is not between 64 and the file size (" + str(size_) +
                         " bytes)");
  if (h.fileSize != size_)
    return Status::error(n + ": the header records a file of " +
                         str(h.fileSize) + " bytes but it has " + str(size_) +
                         " (truncated or appended to)");

  // Dividing first keeps count * entry size from overflowing.
  uint64_t maxEntries = size_ / format::kSectionEntryBytes;
  uint64_t tableBytes = h.sectionCount * format::kSectionEntryBytes;
  if (h.sectionCount > maxEntries || h.sectionTableOffset < h.headerBytes ||
      h.sectionTableOffset > size_ || tableBytes > size_ - h.sectionTableOffset)
    return Status::error(n + ": the section table (" + str(h.sectionCount) +
                         " entries at offset " + str(h.sectionTableOffset) +
                         ") does not lie between the header and the end of "
                         "the file (" +
                         str(size_) + " bytes)");
  const uint8_t *table = data_ + h.sectionTableOffset;
  if (xxHash64(table, tableBytes) != h.sectionTableChecksum)
    return Status::error(n + ": section table checksum mismatch (the file is "
                             "corrupted)");

  struct Extent {
    uint64_t begin, end;
    std::string what;
  };
  std::vector<Extent> extents = {{0, h.headerBytes, "the header"},
                                 {h.sectionTableOffset,
                                  h.sectionTableOffset + tableBytes,
                                  "the section table"}};
  std::optional<SectionEntry> manifest;
  for (uint64_t i = 0; i < h.sectionCount; ++i) {
    SectionEntry e =
        format::decodeEntry(table + i * format::kSectionEntryBytes);
    std::string what = "section " + str(i);
    if (e.offset % format::kSectionAlignment != 0)
      return Status::error(n + ": " + what + " starts at offset " +
                           str(e.offset) + ", which is not a multiple of 64");
    if (e.offset > size_ || e.size > size_ - e.offset)
      return Status::error(n + ": " + what + " (offset " + str(e.offset) +
                           ", " + str(e.size) +
                           " bytes) extends past the end of the file (" +
                           str(size_) + " bytes)");
    extents.push_back({e.offset, e.offset + e.size, what});
    if (e.kind == uint32_t(SectionKind::Manifest)) {
      if (manifest)
        return Status::error(n + ": sections hold more than one manifest");
      manifest = e;
    } else if (e.kind == uint32_t(SectionKind::Blob)) {
      blobs_.push_back({e.offset, e.size, e.checksum});
    }
    // Other kinds come from newer minor versions; this reader skips them.
  }
  std::sort(extents.begin(), extents.end(),
            [](const Extent &a, const Extent &b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  for (size_t i = 1; i < extents.size(); ++i)
    if (extents[i].begin < extents[i - 1].end)
      return Status::error(n + ": " + extents[i - 1].what + " and " +
                           extents[i].what + " overlap");
  if (!manifest)
    return Status::error(n + ": the file has no manifest section");

  const uint8_t *bytes = data_ + manifest->offset;
  manifestSize_ = manifest->size;
  if (xxHash64(bytes, manifest->size) != manifest->checksum)
    return Status::error(n + ": manifest checksum mismatch (the file is "
                             "corrupted)");
  if (manifest->size > uint64_t(INT_MAX) ||
      !manifest_.ParseFromArray(bytes, int(manifest->size)))
    return Status::error(n + ": the manifest section is not a valid kvpkg "
                             "manifest");
  blobStates_.reset(new std::atomic<uint8_t>[blobs_.size()]);
  for (size_t i = 0; i < blobs_.size(); ++i)
    blobStates_[i].store(Unchecked);
  return Status::ok();
}

StatusOr<ByteView> Artifact::blob(uint32_t index) const {
  if (index >= blobs_.size())
    return Status::error(name_ + ": blob " + str(index) +
                         " does not exist (the file has " + str(blobs_.size()) +
                         ")");
  const Blob &b = blobs_[index];
  uint8_t state = blobStates_[index].load(std::memory_order_acquire);
  if (state == Unchecked) {
    // Two threads may both hash the same blob; both reach the same answer.
    state = xxHash64(data_ + b.offset, b.size) == b.checksum ? Good : Bad;
    blobStates_[index].store(state, std::memory_order_release);
  }
  if (state == Bad)
    return Status::error(name_ + ": blob " + str(index) + " (offset " +
                         str(b.offset) + ", " + str(b.size) +
                         " bytes) fails its checksum (the file is corrupted)");
  return ByteView{data_ + b.offset, b.size};
}

StatusOr<ByteView> Artifact::tensorData(uint32_t index) const {
  if (index >= uint32_t(manifest_.tensors_size()))
    return Status::error(name_ + ": tensor " + str(index) +
                         " does not exist (the manifest has " +
                         str(manifest_.tensors_size()) + ")");
  const schema::Tensor &t = manifest_.tensors(int(index));
  if (t.has_synthetic())
    return syntheticData(index);
  StatusOr<ByteView> bytes = blob(t.blob());
  // open() checked the blob index, so only the checksum can fail here.
  if (!bytes)
    return Status::error(name_ + ": tensor \"" + t.name() + "\" (blob " +
                         str(t.blob()) +
                         ") fails its checksum (the file is corrupted)");
  return bytes;
}

StatusOr<ByteView> Artifact::syntheticData(uint32_t index) const {
  const schema::Tensor &t = manifest_.tensors(int(index));
  const bool bf16 = t.dtype() == schema::DTYPE_BF16;
  uint64_t count = 1;
  for (int64_t d : t.shape())
    count *= uint64_t(d);
  const uint64_t bytes = count * (bf16 ? 2 : 4);
  std::lock_guard<std::mutex> lock(syntheticMutex_);
  auto found = synthetic_.find(index);
  if (found != synthetic_.end())
    return ByteView{found->second.get(), bytes};
  // At most ArtifactOptions::maxSyntheticTensorBytes (checked when the
  // artifact was opened); the allocation may still fail.
  std::unique_ptr<uint8_t[]> data(new (std::nothrow) uint8_t[bytes]);
  if (!data)
    return Status::error(name_ + ": cannot allocate " + std::to_string(bytes) +
                         " bytes for the values of synthetic tensor \"" +
                         t.name() + "\"");
  const schema::SyntheticValues &v = t.synthetic();
  const float step = std::ldexp(v.bound(), -23);
  for (uint64_t i = 0; i < count; ++i) {
    const float value =
        v.bound() > 0 ? syntheticValue(v.seed(), i, step) : v.constant();
    if (bf16) {
      const uint16_t h = syntheticBf16(value);
      std::memcpy(data.get() + 2 * i, &h, 2);
    } else {
      std::memcpy(data.get() + 4 * i, &value, 4);
    }
  }
  ByteView view{data.get(), bytes};
  synthetic_.emplace(index, std::move(data));
  return view;
}

Status Artifact::verifyBlobs() const {
  for (uint32_t i = 0; i < blobs_.size(); ++i) {
    StatusOr<ByteView> b = blob(i);
    if (!b)
      return b.status();
  }
  return Status::ok();
}

const char *encodingName(schema::EncodingKind kind) {
  switch (kind) {
  case schema::ENCODING_BF16:
    return "bf16";
  case schema::ENCODING_F32:
    return "f32";
  case schema::ENCODING_FP8:
    return "fp8";
  case schema::ENCODING_NVFP4:
    return "nvfp4";
  case schema::ENCODING_INT:
    return "int";
  case schema::ENCODING_POLAR:
    return "polar";
  case schema::ENCODING_LOWRANK:
    return "lowrank";
  default:
    return "unspecified";
  }
}

} // namespace kvrt
