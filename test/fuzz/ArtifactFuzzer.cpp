//===- ArtifactFuzzer.cpp - kvrt::Artifact on arbitrary bytes -------------===//
//
// Each input is tried twice: as a whole .kvpkg file, and as the bytes of a
// manifest packed with valid checksums beside a few fixed blobs, so that
// mutations reach the manifest validation behind the checksums. Whatever
// the bytes, opening (every blob verified), reading every tensor and
// preparing the CPU backend either succeed or refuse with one sentence, and
// never crash.
//
//===----------------------------------------------------------------------===//
#include "FuzzCheck.h"

#include "kvrt/Artifact.h"
#include "kvrt/Runtime.h"
#include "runtime/src/artifact/Format.h"
#include "runtime/src/support/XxHash.h"

#include <cstdint>
#include <vector>

namespace {

const std::string kName = "fuzz.kvpkg";

/// A file holding `manifest` and blobs of 4, 64, 256 and 4096 bytes.
std::vector<uint8_t> packManifest(const uint8_t *manifest, size_t size) {
  namespace f = kvrt::format;
  std::vector<std::vector<uint8_t>> sections = {
      std::vector<uint8_t>(manifest, manifest + size)};
  for (size_t blob : {4, 64, 256, 4096}) {
    std::vector<uint8_t> bytes(blob);
    for (size_t i = 0; i < blob; ++i)
      bytes[i] = uint8_t(i * 37 + blob);
    sections.push_back(std::move(bytes));
  }
  auto align = [](uint64_t v) { return (v + 63) / 64 * 64; };
  std::vector<uint8_t> file(
      align(f::kHeaderBytes + f::kSectionEntryBytes * sections.size()));
  std::vector<uint8_t> table(f::kSectionEntryBytes * sections.size());
  for (size_t i = 0; i < sections.size(); ++i) {
    file.resize(align(file.size()));
    f::SectionEntry e;
    e.kind = uint32_t(i ? f::SectionKind::Blob : f::SectionKind::Manifest);
    e.offset = file.size();
    e.size = sections[i].size();
    e.checksum = kvrt::xxHash64(sections[i].data(), sections[i].size());
    f::encodeEntry(e, table.data() + i * f::kSectionEntryBytes);
    file.insert(file.end(), sections[i].begin(), sections[i].end());
  }
  std::copy(table.begin(), table.end(), file.begin() + f::kHeaderBytes);
  f::Header h;
  h.major = kvrt::kFormatMajor;
  h.minor = kvrt::kFormatMinor;
  h.headerBytes = f::kHeaderBytes;
  h.sectionCount = sections.size();
  h.sectionTableOffset = f::kHeaderBytes;
  h.fileSize = file.size();
  h.sectionTableChecksum = kvrt::xxHash64(table.data(), table.size());
  f::encodeHeader(h, file.data());
  return file;
}

void tryOpen(const uint8_t *data, size_t size) {
  kvrt::ArtifactOptions options;
  options.verifyBlobsEagerly = true;
  // Synthetic tensors are made in memory when read: a mutated manifest
  // declaring gigabytes of them is refused rather than filled.
  options.maxSyntheticTensorBytes = 1 << 20;
  auto artifact = kvrt::Artifact::fromMemory(kName, data, size, options);
  if (!artifact) {
    kvopt::fuzz::checkRefusal(artifact.status(), kName);
    return;
  }
  const kvrt::schema::Manifest &m = (*artifact)->manifest();
  for (int i = 0; i < m.tensors_size(); ++i) {
    auto bytes = (*artifact)->tensorData(uint32_t(i));
    kvopt::fuzz::require(bytes.isOk(), "a verified tensor fails to read");
    uint64_t elements = 1;
    for (int64_t d : m.tensors(i).shape())
      elements *= uint64_t(d);
    const uint64_t expected = kvrt::tensorBytes(m.tensors(i).dtype(), elements);
    kvopt::fuzz::require(bytes->size == expected,
                         "an accepted tensor's blob does not hold its shape");
  }
  kvrt::EngineOptions engineOptions;
  engineOptions.threads = 1;
  engineOptions.cacheTokens = 64;
  auto engine = kvrt::Engine::create(*artifact, engineOptions);
  if (!engine)
    kvopt::fuzz::checkRefusal(engine.status(), kName);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tryOpen(data, size);
  std::vector<uint8_t> packed = packManifest(data, size);
  tryOpen(packed.data(), packed.size());
  return 0;
}
