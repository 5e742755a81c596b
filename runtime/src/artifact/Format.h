//===- Format.h - The byte layout of a .kvpkg file --------------*- C++ -*-===//
//
// docs/kvpkg-format.md is the specification; this header is its encoding.
// Every integer is little-endian and encoded byte by byte, so neither the
// host's byte order nor alignment matters.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_ARTIFACT_FORMAT_H
#define KVRT_ARTIFACT_FORMAT_H

#include <cstdint>

namespace kvrt::format {

/// "KVPKG\r\n\x1a": the CR LF and ^Z catch files mangled by text-mode
/// transfers, as PNG's signature does.
constexpr uint8_t kMagic[8] = {'K', 'V', 'P', 'K', 'G', '\r', '\n', 0x1a};
constexpr uint32_t kHeaderBytes = 64;
constexpr uint32_t kSectionEntryBytes = 32;
/// Every section starts at a multiple of this, so mapped blobs are aligned
/// for any element type and for SIMD loads.
constexpr uint64_t kSectionAlignment = 64;

enum class SectionKind : uint32_t { Manifest = 1, Blob = 2 };

struct Header {
  uint16_t major = 0;
  uint16_t minor = 0;
  uint32_t headerBytes = 0;
  uint64_t sectionCount = 0;
  uint64_t sectionTableOffset = 0;
  uint64_t fileSize = 0;
  uint64_t sectionTableChecksum = 0;
};

struct SectionEntry {
  uint32_t kind = 0;
  uint32_t flags = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
};

inline void put16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
inline void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = uint8_t(v >> (8 * i));
}
inline void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = uint8_t(v >> (8 * i));
}
inline uint16_t get16(const uint8_t *p) { return uint16_t(p[0] | p[1] << 8); }
inline uint32_t get32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}
inline uint64_t get64(const uint8_t *p) {
  return uint64_t(get32(p)) | uint64_t(get32(p + 4)) << 32;
}

/// Writes the 64-byte header (magic included, reserved bytes zero).
inline void encodeHeader(const Header &h, uint8_t *out) {
  for (int i = 0; i < 64; ++i)
    out[i] = i < 8 ? kMagic[i] : 0;
  put16(out + 8, h.major);
  put16(out + 10, h.minor);
  put32(out + 12, h.headerBytes);
  put64(out + 16, h.sectionCount);
  put64(out + 24, h.sectionTableOffset);
  put64(out + 32, h.fileSize);
  put64(out + 40, h.sectionTableChecksum);
}

/// Reads the header fields; the magic is checked by the caller.
inline Header decodeHeader(const uint8_t *in) {
  Header h;
  h.major = get16(in + 8);
  h.minor = get16(in + 10);
  h.headerBytes = get32(in + 12);
  h.sectionCount = get64(in + 16);
  h.sectionTableOffset = get64(in + 24);
  h.fileSize = get64(in + 32);
  h.sectionTableChecksum = get64(in + 40);
  return h;
}

inline void encodeEntry(const SectionEntry &e, uint8_t *out) {
  put32(out, e.kind);
  put32(out + 4, e.flags);
  put64(out + 8, e.offset);
  put64(out + 16, e.size);
  put64(out + 24, e.checksum);
}

inline SectionEntry decodeEntry(const uint8_t *in) {
  SectionEntry e;
  e.kind = get32(in);
  e.flags = get32(in + 4);
  e.offset = get64(in + 8);
  e.size = get64(in + 16);
  e.checksum = get64(in + 24);
  return e;
}

} // namespace kvrt::format

#endif // KVRT_ARTIFACT_FORMAT_H
