//===- ByteLevel.cpp - GPT-2's bytes as printable characters --------------===//
#include "runtime/src/tokenizer/ByteLevel.h"

#include "runtime/src/tokenizer/Unicode.h"

#include <array>

namespace kvrt::tokenizer {
namespace {

/// Printable Latin-1: the bytes GPT-2 writes as themselves.
bool standsForItself(uint32_t c) {
  return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) ||
         (c >= 0xAE && c <= 0xFF);
}

/// Printable Latin-1 bytes stand for themselves; the others, in order, for
/// U+0100 onwards.
struct ByteTable {
  std::array<char32_t, 256> charOf;
  std::array<std::string, 256> textOf;
  ByteTable() {
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      charOf[b] = standsForItself(b) ? static_cast<char32_t>(b) : next++;
      appendUtf8(textOf[b], charOf[b]);
    }
  }
};

const ByteTable &table() {
  static const ByteTable t;
  return t;
}

} // namespace

char32_t byteLevelChar(uint8_t b) { return table().charOf[b]; }

const std::string &byteLevelText(uint8_t b) { return table().textOf[b]; }

int byteLevelByte(char32_t c) {
  if (c < 0x100)
    return standsForItself(c) ? static_cast<int>(c) : -1;
  // U+0100 + k stands for the k-th non-printable byte.
  static const std::array<int, 68> nonPrintable = [] {
    std::array<int, 68> bytes{};
    int k = 0;
    for (int b = 0; b < 256; ++b)
      if (table().charOf[b] >= 0x100)
        bytes[k++] = b;
    return bytes;
  }();
  if (c - 0x100 < nonPrintable.size())
    return nonPrintable[c - 0x100];
  return -1;
}

std::string byteLevelDecode(std::string_view token) {
  std::string bytes;
  for (size_t pos = 0; pos < token.size();) {
    char32_t c;
    pos += decodeUtf8(token, pos, c);
    int b = byteLevelByte(c);
    if (b < 0)
      return std::string(token);
    bytes += static_cast<char>(b);
  }
  return bytes;
}

} // namespace kvrt::tokenizer
