//===- ArtifactWriter.h - Writing .kvpkg artifacts --------------*- C++ -*-===//
//
// The compiler's exporter (and tests) build an artifact by adding blobs,
// filling in the manifest and calling write(). The file appears at its
// destination only once complete: it is written to a new `path.tmp.XXXXXX`,
// synced and renamed, and the temporary file is removed on any error.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_ARTIFACTWRITER_H
#define KVRT_ARTIFACTWRITER_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kvrt {

/// Receives the bytes of one blob, in order, in pieces of any size.
using BlobSink = std::function<Status(const void *data, size_t size)>;
/// Produces a blob by calling the sink until it has passed exactly the size
/// given to addBlob.
using BlobProducer = std::function<Status(const BlobSink &sink)>;

class ArtifactWriter {
public:
  /// Adds a blob of `size` bytes copied from `data` when write() runs (so
  /// `data` must stay valid until then: mapped weights are never copied in
  /// memory). Returns its blob index.
  uint32_t addBlob(const void *data, uint64_t size);
  /// Adds a blob of `size` bytes that `producer` streams when write() runs.
  uint32_t addBlob(uint64_t size, BlobProducer producer);
  /// Adds a blob from `data` and a manifest tensor describing it; returns
  /// the tensor's index. The blob's size is the shape's size in `dtype`.
  uint32_t addTensor(const std::string &name, schema::DType dtype,
                     const std::vector<int64_t> &shape, const void *data);
  /// The same, with the blob streamed by `producer`.
  uint32_t addTensor(const std::string &name, schema::DType dtype,
                     const std::vector<int64_t> &shape, BlobProducer producer);
  /// Adds a manifest tensor without a blob, whose values the runtime
  /// generates as `values` says; returns its index.
  uint32_t addSyntheticTensor(const std::string &name, schema::DType dtype,
                              const std::vector<int64_t> &shape,
                              const schema::SyntheticValues &values);

  /// The manifest to fill in. write() sets its format version.
  schema::Manifest &manifest() { return manifest_; }

  /// Validates the manifest as the reader would, then writes the artifact
  /// to `path` atomically. Errors name `path`.
  Status write(const std::string &path);

private:
  struct Blob {
    uint64_t size;
    BlobProducer producer;
  };
  std::vector<Blob> blobs_;
  schema::Manifest manifest_;
};

} // namespace kvrt

#endif // KVRT_ARTIFACTWRITER_H
