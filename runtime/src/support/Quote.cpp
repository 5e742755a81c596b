//===- Quote.cpp - Names from a file, safe to put in a message ------------===//
#include "kvrt/Quote.h"

#include "kvrt/Json.h"

#include <cstdio>

namespace kvrt {

namespace {
/// Longer names are cut: a message names a field, it does not dump it.
constexpr size_t kMaxQuoted = 120;

/// Length of the UTF-8 sequence at the start of `s`, or 0 when malformed.
size_t sequenceLength(std::string_view s) {
  unsigned char c = s[0];
  size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || n > s.size() || !kvrt::json::isValidUtf8(s.substr(0, n)))
    return 0;
  return n;
}
} // namespace

std::string quote(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size();) {
    if (out.size() > kMaxQuoted)
      return out + "...' (" + std::to_string(text.size()) + " bytes)";
    unsigned char c = text[i];
    size_t n = sequenceLength(text.substr(i));
    if (n == 0 || c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out + "'";
}

} // namespace kvrt
