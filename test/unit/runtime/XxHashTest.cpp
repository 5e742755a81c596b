//===- XxHashTest.cpp - XXH64 against the reference implementation --------===//
#include "runtime/src/support/XxHash.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

// Expected values from the xxHash project's reference implementation
// (python-xxhash's xxh64, seed 0).
TEST(XxHash64, MatchesKnownVectors) {
  EXPECT_EQ(kvrt::xxHash64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(kvrt::xxHash64("a", 1), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(kvrt::xxHash64("abc", 3), 0x44BC2CF5AD770999ULL);
  std::string text = "Nobody inspects the spammish repetition";
  EXPECT_EQ(kvrt::xxHash64(text.data(), text.size()), 0xFBCEA83C8A378BF1ULL);
}

std::vector<uint8_t> longInput() {
  // bytes(range(256)) * 3 + b"xyz": 771 bytes, several stripes and a tail.
  std::vector<uint8_t> bytes;
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 256; ++i)
      bytes.push_back(uint8_t(i));
  for (char c : std::string("xyz"))
    bytes.push_back(uint8_t(c));
  return bytes;
}

TEST(XxHash64, MatchesLongVector) {
  std::vector<uint8_t> bytes = longInput();
  EXPECT_EQ(kvrt::xxHash64(bytes.data(), bytes.size()), 0xE921A1B45BD779F8ULL);
}

TEST(XxHash64, StreamingEqualsOneShot) {
  std::vector<uint8_t> bytes = longInput();
  for (size_t piece : {1u, 3u, 31u, 32u, 33u, 100u}) {
    kvrt::XxHash64 hash;
    for (size_t i = 0; i < bytes.size(); i += piece)
      hash.update(bytes.data() + i, std::min(piece, bytes.size() - i));
    EXPECT_EQ(hash.digest(), 0xE921A1B45BD779F8ULL) << "pieces of " << piece;
  }
}

} // namespace
