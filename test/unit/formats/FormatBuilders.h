//===- FormatBuilders.h - Model files for the reader tests ------*- C++ -*-===//
//
// Byte-level builders for safetensors and GGUF files, valid or not, and a
// temporary folder to write them into.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TEST_UNIT_FORMATS_FORMATBUILDERS_H
#define KVOPT_TEST_UNIT_FORMATS_FORMATBUILDERS_H

#include "kvrt/Status.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvopt::formats::testing {

/// A fresh folder for one test, removed afterwards.
class TempDir {
public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "kvopt-formats-XXXXXX";
    root_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(root_); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  std::string path(const std::string &name) const { return root_ + "/" + name; }
  /// Writes `bytes` to `name` in the folder and returns its path.
  std::string write(const std::string &name,
                    const std::vector<uint8_t> &bytes) const {
    std::string p = path(name);
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    return p;
  }

private:
  std::string root_;
};

/// Opens `bytes`, written to `name` in `dir`, both through File::open and
/// File::openBuffer: the two must agree, and a refusal must start with the
/// file it is about.
template <typename File>
kvrt::StatusOr<File> openBothWays(const TempDir &dir, const std::string &name,
                                  const std::vector<uint8_t> &bytes) {
  std::string path = dir.write(name, bytes);
  auto fromFile = File::open(path);
  auto fromBuffer = File::openBuffer(
      path, std::make_shared<const std::vector<uint8_t>>(bytes));
  EXPECT_EQ(fromFile.isOk(), fromBuffer.isOk());
  if (!fromFile && !fromBuffer) {
    EXPECT_EQ(fromFile.status().message(), fromBuffer.status().message());
    EXPECT_EQ(fromFile.status().message().rfind(path + ": ", 0), 0u)
        << fromFile.status().message();
  }
  return fromFile;
}

/// A little-endian byte writer.
class Bytes {
public:
  template <typename T> Bytes &put(T value) {
    size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &value, sizeof(T));
    return *this;
  }
  Bytes &u8(uint8_t v) { return put(v); }
  Bytes &u16(uint16_t v) { return put(v); }
  Bytes &u32(uint32_t v) { return put(v); }
  Bytes &u64(uint64_t v) { return put(v); }
  Bytes &raw(std::string_view s) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  /// A GGUF string: u64 length, then the bytes.
  Bytes &str(std::string_view s) { return u64(s.size()).raw(s); }
  Bytes &append(const std::vector<uint8_t> &more) {
    bytes.insert(bytes.end(), more.begin(), more.end());
    return *this;
  }

  std::vector<uint8_t> bytes;
};

/// A safetensors file: the header length, `header`, then `data`.
inline std::vector<uint8_t> safetensors(std::string_view header,
                                        const std::vector<uint8_t> &data) {
  return Bytes().u64(header.size()).raw(header).append(data).bytes;
}

/// GGUF value type ids, as in the file.
enum GgufId : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

/// ggml tensor type ids.
enum GgmlId : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ4_1 = 3,
  kGgmlQ8_0 = 8,
  kGgmlBF16 = 30,
};

/// Assembles a GGUF file: header, metadata, tensor infos, padding to
/// `alignment`, data. The counts are those of what was added unless
/// overridden.
class GgufBuilder {
public:
  /// Starts a metadata pair; append the value to the returned writer.
  Bytes &key(std::string_view name, uint32_t type) {
    ++pairs;
    return metadata.str(name).u32(type);
  }
  /// A tensor info; `ne` is fastest-varying first, as GGUF stores it.
  GgufBuilder &tensor(std::string_view name, std::vector<uint64_t> ne,
                      uint32_t ggmlType, uint64_t offset) {
    ++tensors;
    infos.str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne)
      infos.u64(d);
    infos.u32(ggmlType).u64(offset);
    return *this;
  }

  std::vector<uint8_t> build() const {
    Bytes out;
    out.raw("GGUF").u32(version);
    out.u64(tensorCount ? *tensorCount : tensors);
    out.u64(pairCount ? *pairCount : pairs);
    out.append(metadata.bytes).append(infos.bytes);
    while (out.bytes.size() % alignment)
      out.u8(0);
    return out.append(data.bytes).bytes;
  }

  uint32_t version = 3;
  uint64_t alignment = 32;
  std::optional<uint64_t> tensorCount, pairCount;
  Bytes metadata, infos, data;
  uint64_t pairs = 0, tensors = 0;
};

/// Checks that `status` failed with a message holding every one of
/// `parts` (the file name, the field, what is wrong).
inline void expectError(const kvrt::Status &status,
                        std::initializer_list<std::string_view> parts) {
  ASSERT_FALSE(status.isOk())
      << "accepted, expected an error with " << *parts.begin();
  for (std::string_view part : parts)
    EXPECT_NE(status.message().find(part), std::string::npos)
        << "'" << part << "' is not in: " << status.message();
}

} // namespace kvopt::formats::testing

#endif // KVOPT_TEST_UNIT_FORMATS_FORMATBUILDERS_H
