//===- XxHash.h - XXH64 checksums of artifact sections ----------*- C++ -*-===//
//
// XXH64 (seed 0) as specified by the xxHash project: fast enough to verify
// gigabytes of weights at load, and simple enough that a second reader of the
// .kvpkg format can implement it from docs/kvpkg-format.md.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SUPPORT_XXHASH_H
#define KVRT_SUPPORT_XXHASH_H

#include <cstddef>
#include <cstdint>

namespace kvrt {

/// Streaming XXH64: feed bytes with update(), read the hash with digest().
class XxHash64 {
public:
  explicit XxHash64(uint64_t seed = 0);
  void update(const void *data, size_t size);
  uint64_t digest() const;

private:
  uint64_t acc_[4];
  uint64_t seed_;
  uint64_t totalSize_ = 0;
  /// Bytes of an incomplete 32-byte stripe.
  uint8_t buffer_[32];
  size_t buffered_ = 0;
};

/// XXH64 of one buffer.
uint64_t xxHash64(const void *data, size_t size, uint64_t seed = 0);

} // namespace kvrt

#endif // KVRT_SUPPORT_XXHASH_H
