//===- Json.cpp - A bounded JSON reader -----------------------------------===//
#include "kvrt/Json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

namespace kvrt::json {

Value Value::makeBool(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.boolean_ = b;
  return v;
}
Value Value::makeNumber(double d, std::optional<int64_t> exact) {
  Value v;
  v.kind_ = Kind::Number;
  v.number_ = d;
  v.integer_ = exact;
  return v;
}
Value Value::makeString(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.string_ = std::move(s);
  return v;
}
Value Value::makeArray(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::Array;
  v.items_ = std::move(items);
  return v;
}
Value Value::makeObject(std::vector<Member> members) {
  Value v;
  v.kind_ = Kind::Object;
  v.members_ = std::move(members);
  return v;
}

const Value *Value::find(std::string_view key) const {
  for (const Member &m : members_)
    if (m.first == key)
      return &m.second;
  return nullptr;
}

const char *Value::kindName(Kind kind) {
  switch (kind) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "boolean";
  case Kind::Number:
    return "number";
  case Kind::String:
    return "string";
  case Kind::Array:
    return "array";
  case Kind::Object:
    return "object";
  }
  return "value";
}

/// Length of the UTF-8 sequence starting at s[i], or 0 when malformed.
static size_t utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b0 = byte(i);
  if (b0 < 0x80)
    return 1;
  size_t n;
  uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < n)
    return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static const uint32_t minForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < minForLength[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

bool isValidUtf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t n = utf8SequenceLength(bytes, i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

namespace {

/// "character 'x'", or "byte 0xff" when printing the byte itself would put
/// a control character or broken UTF-8 in the message.
std::string describe(char c) {
  if (c >= ' ' && c <= '~')
    return std::string("character '") + c + "'";
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", static_cast<uint8_t>(c));
  return std::string("byte ") + hex;
}

/// A key for a message: quoted, control characters escaped, long keys cut,
/// so that the message stays one printable line.
std::string quoteKey(const std::string &key) {
  constexpr size_t kMaxShown = 80;
  std::string out = "\"";
  for (size_t i = 0; i < key.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    // Cut before a character, never inside one.
    if (out.size() > kMaxShown && (c & 0xC0) != 0x80)
      return out + "...\"";
    if (c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\u%04x", c);
      out += hex;
    } else {
      out += key[i];
    }
  }
  return out + "\"";
}

class Parser {
public:
  Parser(std::string_view text, const std::string &source)
      : text_(text), source_(source) {}

  StatusOr<Value> parseDocument() {
    skipSpace();
    Value v;
    if (!parseValue(v, 0))
      return error();
    skipSpace();
    if (pos_ != text_.size()) {
      fail("unexpected data after the top-level value");
      return error();
    }
    return v;
  }

private:
  Status error() const {
    return Status::error(source_ + ": invalid JSON at byte " +
                         std::to_string(failPos_) + ": " + failMessage_);
  }
  bool fail(std::string message) {
    if (failMessage_.empty()) {
      failMessage_ = std::move(message);
      failPos_ = pos_;
    }
    return false;
  }
  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word)
      return false;
    pos_ += word.size();
    return true;
  }

  bool parseValue(Value &out, int depth) {
    if (pos_ >= text_.size())
      return fail("unexpected end of input");
    char c = text_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth)
        return fail("nesting deeper than " + std::to_string(kMaxDepth));
      return c == '{' ? parseObject(out, depth + 1)
                      : parseArray(out, depth + 1);
    }
    if (c == '"') {
      std::string s;
      if (!parseString(s))
        return false;
      out = Value::makeString(std::move(s));
      return true;
    }
    if (consume("true")) {
      out = Value::makeBool(true);
      return true;
    }
    if (consume("false")) {
      out = Value::makeBool(false);
      return true;
    }
    if (consume("null")) {
      out = Value();
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
      return parseNumber(out);
    return fail("unexpected " + describe(c));
  }

  bool parseObject(Value &out, int depth) {
    ++pos_; // '{'
    std::vector<Value::Member> members;
    std::unordered_set<std::string> seen;
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      out = Value::makeObject({});
      return true;
    }
    while (true) {
      skipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"')
        return fail("expected a string key");
      std::string key;
      if (!parseString(key))
        return false;
      if (!seen.insert(key).second)
        return fail("duplicate key " + quoteKey(key));
      skipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':')
        return fail("expected ':' after key " + quoteKey(key));
      ++pos_;
      skipSpace();
      Value v;
      if (!parseValue(v, depth))
        return false;
      members.emplace_back(std::move(key), std::move(v));
      skipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        out = Value::makeObject(std::move(members));
        return true;
      }
      return fail("expected ',' or '}' in object");
    }
  }

  bool parseArray(Value &out, int depth) {
    ++pos_; // '['
    std::vector<Value> items;
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      out = Value::makeArray({});
      return true;
    }
    while (true) {
      skipSpace();
      Value v;
      if (!parseValue(v, depth))
        return false;
      items.push_back(std::move(v));
      skipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        out = Value::makeArray(std::move(items));
        return true;
      }
      return fail("expected ',' or ']' in array");
    }
  }

  bool parseHex4(uint32_t &out) {
    if (text_.size() - pos_ < 4)
      return fail("truncated \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      char h = text_[pos_++];
      out <<= 4;
      if (h >= '0' && h <= '9')
        out |= h - '0';
      else if (h >= 'a' && h <= 'f')
        out |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        out |= h - 'A' + 10;
      else
        return fail("bad hex digit in \\u escape");
    }
    return true;
  }

  static void appendUtf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool parseString(std::string &out) {
    ++pos_; // '"'
    while (true) {
      if (pos_ >= text_.size())
        return fail("unterminated string");
      uint8_t c = static_cast<uint8_t>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20)
        return fail("control character in string");
      if (c == '\\') {
        if (++pos_ >= text_.size())
          return fail("unterminated escape");
        char e = text_[pos_++];
        switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!parseHex4(cp))
            return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (!consume("\\u") || !parseHex4(low) || low < 0xDC00 ||
                low > 0xDFFF)
              return fail("unpaired UTF-16 surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("unpaired UTF-16 surrogate in \\u escape");
          }
          appendUtf8(out, cp);
          break;
        }
        default:
          return fail("unknown escape \\ followed by " + describe(e));
        }
        continue;
      }
      size_t n = utf8SequenceLength(text_, pos_);
      if (n == 0)
        return fail("string is not valid UTF-8");
      out.append(text_.data() + pos_, n);
      pos_ += n;
    }
  }

  bool parseNumber(Value &out) {
    size_t start = pos_;
    bool integral = true;
    if (text_[pos_] == '-')
      ++pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9')
        ++pos_;
      return pos_ - from;
    };
    if (pos_ < text_.size() && text_[pos_] == '0')
      ++pos_;
    else if (digits() == 0)
      return fail("malformed number");
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (digits() == 0)
        return fail("malformed number");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-'))
        ++pos_;
      if (digits() == 0)
        return fail("malformed number");
    }
    std::string lexeme(text_.substr(start, pos_ - start));
    double d = std::strtod(lexeme.c_str(), nullptr);
    std::optional<int64_t> exact;
    if (integral) {
      errno = 0;
      long long v = std::strtoll(lexeme.c_str(), nullptr, 10);
      if (errno == 0)
        exact = static_cast<int64_t>(v);
    }
    out = Value::makeNumber(d, exact);
    return true;
  }

  std::string_view text_;
  const std::string &source_;
  size_t pos_ = 0;
  std::string failMessage_;
  size_t failPos_ = 0;
};

} // namespace

StatusOr<Value> parse(std::string_view text, const std::string &sourceName) {
  return Parser(text, sourceName).parseDocument();
}

} // namespace kvrt::json
