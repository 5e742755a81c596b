//===- Unicode.cpp - Character classes and UTF-8 --------------------------===//
#include "runtime/src/tokenizer/Unicode.h"

#include <algorithm>
#include <iterator>

namespace kvrt::tokenizer {
namespace {

/// A run of code points with the same classes, lasting until the next run.
struct ClassRun {
  uint32_t first;
  uint8_t classes;
};

constexpr ClassRun kRuns[] = {
#include "runtime/src/tokenizer/UnicodeTables.inc"
};

/// ASCII is most of most inputs: answer it without a search.
struct AsciiClasses {
  uint8_t bits[128] = {};
  AsciiClasses() {
    for (uint32_t c = 0; c < 128; ++c) {
      auto next = std::upper_bound(
          std::begin(kRuns), std::end(kRuns), c,
          [](uint32_t v, const ClassRun &r) { return v < r.first; });
      bits[c] = std::prev(next)->classes;
    }
  }
};

/// Bytes consumed at `bytes[pos]`: the length of a well-formed sequence
/// (`valid` set) or of the maximal malformed subpart that one U+FFFD
/// replaces, as Unicode's "substitution of maximal subparts" says.
size_t scanUtf8(std::string_view bytes, size_t pos, bool &valid) {
  auto at = [&](size_t k) { return static_cast<uint8_t>(bytes[k]); };
  uint8_t b0 = at(pos);
  valid = true;
  if (b0 < 0x80)
    return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF; // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0)
      lo = 0xA0;
    else if (b0 == 0xED)
      hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0)
      lo = 0x90;
    else if (b0 == 0xF4)
      hi = 0x8F;
  } else {
    valid = false;
    return 1;
  }
  size_t k = 1;
  for (; k < need && pos + k < bytes.size(); ++k) {
    uint8_t b = at(pos + k);
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h)
      break;
  }
  valid = k == need;
  return k;
}

} // namespace

uint8_t charClasses(char32_t cp) {
  static const AsciiClasses ascii;
  if (cp < 128)
    return ascii.bits[cp];
  auto next = std::upper_bound(
      std::begin(kRuns), std::end(kRuns), static_cast<uint32_t>(cp),
      [](uint32_t v, const ClassRun &r) { return v < r.first; });
  return std::prev(next)->classes;
}

size_t decodeUtf8(std::string_view text, size_t pos, char32_t &cp) {
  auto at = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  uint8_t b0 = at(pos);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  if (b0 < 0xE0) {
    cp = (char32_t(b0 & 0x1F) << 6) | (at(pos + 1) & 0x3F);
    return 2;
  }
  if (b0 < 0xF0) {
    cp = (char32_t(b0 & 0x0F) << 12) | (char32_t(at(pos + 1) & 0x3F) << 6) |
         (at(pos + 2) & 0x3F);
    return 3;
  }
  cp = (char32_t(b0 & 0x07) << 18) | (char32_t(at(pos + 1) & 0x3F) << 12) |
       (char32_t(at(pos + 2) & 0x3F) << 6) | (at(pos + 3) & 0x3F);
  return 4;
}

char32_t lastChar(std::string_view text) {
  size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80)
    --pos;
  char32_t cp;
  decodeUtf8(text, pos, cp);
  return cp;
}

void appendUtf8(std::string &out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool endsInsideCharacter(std::string_view bytes) {
  // The last sequence starts at most three bytes from the end.
  size_t from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t pos = bytes.size(); pos > from;) {
    --pos;
    if ((static_cast<uint8_t>(bytes[pos]) & 0xC0) == 0x80)
      continue;
    bool valid;
    size_t n = scanUtf8(bytes, pos, valid);
    uint8_t lead = static_cast<uint8_t>(bytes[pos]);
    return !valid && pos + n == bytes.size() && lead >= 0xC2 && lead <= 0xF4;
  }
  return false;
}

std::string toValidUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    bool valid;
    size_t n = scanUtf8(bytes, pos, valid);
    if (valid)
      out.append(bytes.substr(pos, n));
    else
      appendUtf8(out, kReplacementChar);
    pos += n;
  }
  return out;
}

} // namespace kvrt::tokenizer
