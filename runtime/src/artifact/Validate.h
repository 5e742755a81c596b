//===- Validate.h - Checking a manifest before anything uses it -*- C++ -*-===//
#ifndef KVRT_ARTIFACT_VALIDATE_H
#define KVRT_ARTIFACT_VALIDATE_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvrt {

/// Checks every field of `manifest` against itself and the sizes of the
/// file's blobs: indices in range, shapes consistent with blob sizes and
/// with each kernel's contract, slots written once before they are read.
/// Errors are one sentence starting with `fileName`. The writer runs the
/// same check, so it never writes a file the reader refuses.
Status validateManifest(const schema::Manifest &manifest,
                        const std::vector<uint64_t> &blobSizes,
                        const std::string &fileName, uint16_t major,
                        uint16_t minor);

} // namespace kvrt

#endif // KVRT_ARTIFACT_VALIDATE_H
