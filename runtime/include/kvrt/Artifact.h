//===- Artifact.h - Reading .kvpkg artifacts --------------------*- C++ -*-===//
//
// An Artifact is a validated, memory-mapped .kvpkg file: its header, section
// table and manifest are checked when it is opened, so everything after
// open() can trust the manifest's indices and shapes. docs/kvpkg-format.md
// specifies the file.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_ARTIFACT_H
#define KVRT_ARTIFACT_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvrt {

class MappedFile;

/// The format version this runtime writes. It reads every minor version of
/// this major one (newer minors only add fields and section kinds that older
/// readers ignore).
constexpr uint16_t kFormatMajor = 1;
/// 1.1: a low-rank key basis ends each row with the keys' mean.
constexpr uint16_t kFormatMinor = 1;

/// Bytes inside an artifact; valid while the Artifact lives.
struct ByteView {
  const uint8_t *data = nullptr;
  uint64_t size = 0;
};

struct ArtifactOptions {
  /// Verify every blob's checksum in open(). When false (the default) the
  /// manifest is verified in open() and each blob on its first use, so that
  /// opening a large artifact to inspect it does not read every weight.
  bool verifyBlobsEagerly = false;
  /// The largest synthetic tensor (kvopt compile --synthetic-weights
  /// generated) the artifact may declare: its values are made in memory
  /// when first read, from a file that holds none of them. 4 GiB holds the
  /// largest tensor of a 70B Llama (its 2.1 GB embedding) twice over.
  uint64_t maxSyntheticTensorBytes = uint64_t(1) << 32;
};

/// A validated .kvpkg artifact. Thread-safe: blob() may be called from
/// several threads.
class Artifact {
public:
  /// Maps and validates the file at `path`.
  static StatusOr<std::shared_ptr<const Artifact>>
  open(const std::string &path, const ArtifactOptions &options = {});
  /// Validates a copy of the `size` bytes at `data`, reporting errors under
  /// `name`. Shares every check with open(); used by the fuzzer and tests.
  static StatusOr<std::shared_ptr<const Artifact>>
  fromMemory(const std::string &name, const void *data, size_t size,
             const ArtifactOptions &options = {});

  ~Artifact();
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;

  /// The path or name errors mention.
  const std::string &name() const { return name_; }
  uint16_t formatMajor() const { return major_; }
  uint16_t formatMinor() const { return minor_; }
  uint64_t fileSize() const { return size_; }
  const schema::Manifest &manifest() const { return manifest_; }

  size_t blobCount() const { return blobs_.size(); }
  /// Bytes of blob `index` (< blobCount()), without reading them.
  uint64_t blobSize(uint32_t index) const { return blobs_[index].size; }
  /// Bytes of the manifest section.
  uint64_t manifestSize() const { return manifestSize_; }
  /// The bytes of blob `index`, after checking its checksum once.
  StatusOr<ByteView> blob(uint32_t index) const;
  /// The bytes of tensor `index` of the manifest: its blob or, for a
  /// synthetic tensor, its values generated on first use and kept.
  StatusOr<ByteView> tensorData(uint32_t index) const;
  /// Checks every blob's checksum that has not been checked yet.
  Status verifyBlobs() const;

private:
  struct Blob {
    uint64_t offset;
    uint64_t size;
    uint64_t checksum;
  };
  enum BlobState : uint8_t { Unchecked, Good, Bad };

  Artifact() = default;
  static StatusOr<std::shared_ptr<const Artifact>>
  parse(std::unique_ptr<Artifact> artifact, const ArtifactOptions &options);
  Status parseContainer();
  StatusOr<ByteView> syntheticData(uint32_t index) const;

  std::string name_;
  /// Exactly one of these owns the bytes.
  std::shared_ptr<MappedFile> file_;
  std::unique_ptr<void, void (*)(void *)> copy_{nullptr, std::free};
  const uint8_t *data_ = nullptr;
  uint64_t size_ = 0;

  uint16_t major_ = 0, minor_ = 0;
  uint64_t manifestSize_ = 0;
  std::vector<Blob> blobs_;
  mutable std::unique_ptr<std::atomic<uint8_t>[]> blobStates_;
  schema::Manifest manifest_;
  /// Synthetic tensors' values, by tensor index.
  mutable std::mutex syntheticMutex_;
  mutable std::unordered_map<uint32_t, std::unique_ptr<uint8_t[]>> synthetic_;
};

/// Elements of one block of `dtype`: 32 for ggml's block formats (Q8_0,
/// Q4_0, Q4_1), 1 for the others.
uint64_t dtypeBlockElements(schema::DType dtype);
/// Bytes of one block of `dtype` (of one element for f32, f16 and bf16; 0
/// for DTYPE_UNSPECIFIED or unknown values).
uint64_t dtypeBlockBytes(schema::DType dtype);
/// Bytes of `elements` values of `dtype`, or 0 where that is not a whole
/// number of blocks or the dtype is unknown (`elements` at most 2^40, as
/// validated shapes are).
uint64_t tensorBytes(schema::DType dtype, uint64_t elements);
/// Values of `count` elements from `bytes` (at a block's start, `count` a
/// multiple of dtypeBlockElements) as f32, computed in f32 as ggml and
/// gguf-py do (no fused multiply-add), so the result is exact and the same
/// wherever it is decoded: the compiler's importers and the runtime's
/// kernels share it.
void decodeValues(schema::DType dtype, const uint8_t *bytes, uint64_t count,
                  float *out);
/// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1".
const char *dtypeName(schema::DType dtype);
/// "bf16", "polar", ...: the names the compiler's dialect prints.
const char *encodingName(schema::EncodingKind kind);
/// Bytes one token takes in the pages of `layout` (keys and values of all
/// its KV heads, metadata included), as libkvrt stores them; or why this
/// runtime cannot store that layout.
StatusOr<double> cacheBytesPerToken(const schema::CacheLayout &layout);
/// The same, keys and values apart.
struct CacheSideBytes {
  double keys = 0, values = 0;
};
StatusOr<CacheSideBytes>
cacheSideBytesPerToken(const schema::CacheLayout &layout);
/// Bytes one token adds to the block summaries of a layer of `layout` that
/// selects with `select` (kv-sparse-select): per KV head and block, an FP8
/// code for each coordinate's least and greatest key and one exponent.
double summaryBytesPerToken(const schema::CacheLayout &layout,
                            const schema::SelectParams &select);

} // namespace kvrt

#endif // KVRT_ARTIFACT_H
