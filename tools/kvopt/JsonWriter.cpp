//===- JsonWriter.cpp -----------------------------------------------------===//
#include "tools/kvopt/JsonWriter.h"

#include "kvrt/Json.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace kvopt::cli {

void JsonWriter::newline() {
  if (compact_)
    return;
  os_ << '\n' << std::string(2 * empty_.size(), ' ');
}

void JsonWriter::beforeValue() {
  if (afterKey_) {
    afterKey_ = false;
    return;
  }
  if (empty_.empty())
    return;
  if (!empty_.back())
    os_ << ',';
  empty_.back() = false;
  newline();
}

void JsonWriter::open(char bracket) {
  beforeValue();
  os_ << bracket;
  empty_.push_back(true);
}

void JsonWriter::close(char bracket) {
  bool wasEmpty = empty_.back();
  empty_.pop_back();
  if (!wasEmpty)
    newline();
  os_ << bracket;
  if (empty_.empty() && !compact_)
    os_ << '\n';
}

void JsonWriter::key(std::string_view name) {
  beforeValue();
  writeString(name);
  os_ << (compact_ ? ":" : ": ");
  afterKey_ = true;
}

void JsonWriter::value(std::string_view text) {
  beforeValue();
  writeString(text);
}

void JsonWriter::value(double number) {
  beforeValue();
  if (!std::isfinite(number)) {
    os_ << "null";
    return;
  }
  // The shortest text that reads back as the same double.
  char text[32];
  std::to_chars_result end = std::to_chars(text, text + sizeof text, number);
  os_ << std::string_view(text, size_t(end.ptr - text));
}

void JsonWriter::null() {
  beforeValue();
  os_ << "null";
}

void JsonWriter::value(bool flag) {
  beforeValue();
  os_ << (flag ? "true" : "false");
}

void JsonWriter::writeString(std::string_view text) {
  os_ << '"';
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      // Copy a well-formed UTF-8 character whole; replace a stray byte.
      size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      std::string_view character = text.substr(i, length);
      if (character.size() == length && length > 1 &&
          kvrt::json::isValidUtf8(character)) {
        os_ << character;
        i += length;
      } else {
        os_ << "\xEF\xBF\xBD";
        ++i;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      os_ << '\\' << c;
    } else if (c < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", c);
      os_ << escape;
    } else {
      os_ << c;
    }
    ++i;
  }
  os_ << '"';
}

} // namespace kvopt::cli
