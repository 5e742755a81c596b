//===- Yaml.cpp - The YAML subset that policy files are written in --------===//
#include "compiler/policy/Yaml.h"

#include "compiler/import/formats/Quote.h"
#include "kvrt/Json.h"

#include <cstdio>
#include <optional>
#include <unordered_map>

namespace kvopt::policy {

kvrt::Status yamlError(const std::string &name, unsigned line, unsigned column,
                       const std::string &message) {
  return kvrt::Status::error(name + ":" + std::to_string(line) + ":" +
                             std::to_string(column) + ": " + message);
}

namespace {

/// A line that holds something: its number, its indentation in spaces and
/// the text after the indentation, trailing spaces removed.
struct Line {
  unsigned number = 0;
  unsigned indent = 0;
  std::string_view content;
};

bool isSequenceItem(std::string_view s) {
  return !s.empty() && s[0] == '-' && (s.size() == 1 || s[1] == ' ');
}

/// A comment starts with '#' at the start of the text or after a space.
bool isCommentAt(std::string_view s, size_t pos) {
  return pos < s.size() && s[pos] == '#' && (pos == 0 || s[pos - 1] == ' ');
}

bool atEndOrComment(std::string_view s, size_t pos) {
  return pos >= s.size() || isCommentAt(s, pos);
}

size_t skipSpaces(std::string_view s, size_t pos) {
  while (pos < s.size() && s[pos] == ' ')
    ++pos;
  return pos;
}

/// Why a plain scalar cannot start like `s`, where YAML gives the first
/// character a meaning this reader does not support.
std::optional<std::string> refusedStart(std::string_view s) {
  switch (s[0]) {
  case '&':
    return "anchors (&) are not supported";
  case '*':
    return "aliases (*) are not supported";
  case '!':
    return "tags (!) are not supported";
  case '|':
  case '>':
    return "block scalars (| and >) are not supported; write the value on "
           "one line";
  case '{':
    return "flow mappings ({...}) are not supported; write a block mapping";
  case '?':
    if (s.size() == 1 || s[1] == ' ')
      return "complex keys (?) are not supported";
    return std::nullopt;
  case '%':
  case '@':
  case '`':
  case ']':
  case '}':
  case ',':
    return std::string("a plain scalar cannot start with '") + s[0] +
           "'; quote it";
  default:
    return std::nullopt;
  }
}

/// The offset just past the quoted scalar that starts `s`, or npos when it
/// does not end on the line.
size_t quotedEnd(std::string_view s) {
  char quote = s[0];
  for (size_t p = 1; p < s.size(); ++p) {
    if (quote == '"' && s[p] == '\\') {
      ++p;
    } else if (s[p] == quote) {
      if (quote == '\'' && p + 1 < s.size() && s[p + 1] == '\'')
        ++p;
      else
        return p + 1;
    }
  }
  return std::string_view::npos;
}

/// The offset of the ':' that ends the key starting `s`, if `s` is a
/// `key: value` line.
std::optional<size_t> findKeyColon(std::string_view s) {
  auto isColonAt = [&](size_t pos) {
    return pos < s.size() && s[pos] == ':' &&
           (pos + 1 == s.size() || s[pos + 1] == ' ');
  };
  if (s.empty() || s[0] == '[' || s[0] == '{')
    return std::nullopt;
  if (s[0] == '"' || s[0] == '\'') {
    size_t end = quotedEnd(s);
    if (end == std::string_view::npos)
      return std::nullopt;
    size_t pos = skipSpaces(s, end);
    return isColonAt(pos) ? std::optional<size_t>(pos) : std::nullopt;
  }
  for (size_t pos = 0; pos < s.size() && !isCommentAt(s, pos); ++pos)
    if (isColonAt(pos))
      return pos;
  return std::nullopt;
}

class Parser {
public:
  explicit Parser(const std::string &name) : name_(name) {}

  kvrt::StatusOr<YamlNode> parse(std::string_view text) {
    if (text.size() > kMaxYamlBytes)
      return kvrt::Status::error(name_ + ": " + std::to_string(text.size()) +
                                 " bytes; a policy file holds at most " +
                                 std::to_string(kMaxYamlBytes));
    KVRT_RETURN_IF_ERROR(splitLines(text));
    YamlNode root;
    root.line = 1;
    root.column = 1;
    if (lines_.empty())
      return root;
    size_t i = 0;
    KVRT_RETURN_IF_ERROR(parseBlock(i, 1, root));
    if (i < lines_.size())
      return error(lines_[i], 0,
                   "unexpected text after the document; check the "
                   "indentation");
    return root;
  }

private:
  kvrt::Status error(const Line &line, size_t offset,
                     const std::string &message) const {
    return yamlError(name_, line.number, line.indent + offset + 1, message);
  }

  kvrt::Status errorAt(unsigned line, size_t column,
                       const std::string &message) const {
    return yamlError(name_, line, column, message);
  }

  /// Checks every byte and keeps the lines that hold something.
  kvrt::Status splitLines(std::string_view text) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF")
      text.remove_prefix(3);
    bool sawMarker = false;
    unsigned number = 0;
    for (size_t start = 0; start <= text.size();) {
      size_t end = std::min(text.find('\n', start), text.size());
      std::string_view raw = text.substr(start, end - start);
      start = end + 1;
      ++number;
      if (!raw.empty() && raw.back() == '\r')
        raw.remove_suffix(1);
      if (!kvrt::json::isValidUtf8(raw))
        return errorAt(number, 1, "the line is not valid UTF-8");
      for (size_t c = 0; c < raw.size(); ++c) {
        unsigned char byte = raw[c];
        if (byte == '\t')
          return errorAt(number, c + 1,
                         "a tab; indent and separate with spaces");
        if (byte < 0x20 || byte == 0x7F) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", byte);
          return errorAt(number, c + 1,
                         std::string("control character ") + hex);
        }
      }
      size_t indent = raw.find_first_not_of(' ');
      if (indent == std::string_view::npos || raw[indent] == '#')
        continue;
      std::string_view content = raw.substr(indent);
      content = content.substr(0, content.find_last_not_of(' ') + 1);
      Line line{number, static_cast<unsigned>(indent), content};
      if (indent == 0 && content.substr(0, 3) == "---" &&
          atEndOrComment(content, skipSpaces(content, 3)) &&
          (content.size() == 3 || content[3] == ' ')) {
        if (sawMarker || !lines_.empty())
          return error(line, 0,
                       "a second document; a policy is one YAML "
                       "document");
        sawMarker = true;
        continue;
      }
      if (indent == 0 && content.substr(0, 3) == "---")
        return error(line, 0,
                     "text after '---'; start the document on the next line");
      if (indent == 0 && content.substr(0, 3) == "..." &&
          (content.size() == 3 || content[3] == ' '))
        return error(line, 0, "document end markers (...) are not supported");
      if (indent == 0 && content[0] == '%')
        return error(line, 0, "directives (%) are not supported");
      lines_.push_back(line);
    }
    return kvrt::Status::ok();
  }

  /// The collection or scalar whose first line is lines_[i].
  kvrt::Status parseBlock(size_t &i, unsigned depth, YamlNode &out) {
    Line line = lines_[i];
    if (isSequenceItem(line.content))
      return parseSequence(i, depth, out);
    if (findKeyColon(line.content))
      return parseMapping(i, depth, out);
    size_t pos = 0;
    KVRT_RETURN_IF_ERROR(parseInline(line, pos, out));
    ++i;
    return checkNotDeeper(i, line.indent);
  }

  /// Refuses a line indented deeper than `indent` where nothing can nest.
  kvrt::Status checkNotDeeper(size_t i, unsigned indent) const {
    if (i < lines_.size() && lines_[i].indent > indent)
      return error(lines_[i], 0,
                   "unexpected indentation; a value cannot continue on the "
                   "next line");
    return kvrt::Status::ok();
  }

  kvrt::Status checkDepth(const Line &line, unsigned depth) const {
    if (depth > kMaxYamlDepth)
      return error(line, 0,
                   "collections nested deeper than " +
                       std::to_string(kMaxYamlDepth) + " levels");
    return kvrt::Status::ok();
  }

  /// The value of a `key:` or `-` with nothing after it on its line: the
  /// deeper block that follows, a sequence at the key's own indentation
  /// (`key:` then `- item`, where `compactSequence`), or null.
  kvrt::Status parseNestedValue(size_t &i, unsigned ownerIndent,
                                bool compactSequence, unsigned depth,
                                YamlNode &out) {
    if (i >= lines_.size())
      return kvrt::Status::ok();
    if (lines_[i].indent > ownerIndent)
      return parseBlock(i, depth + 1, out);
    if (compactSequence && lines_[i].indent == ownerIndent &&
        isSequenceItem(lines_[i].content))
      return parseSequence(i, depth + 1, out);
    return kvrt::Status::ok();
  }

  kvrt::Status parseMapping(size_t &i, unsigned depth, YamlNode &out) {
    const Line first = lines_[i];
    KVRT_RETURN_IF_ERROR(checkDepth(first, depth));
    out.kind = YamlNode::Kind::Mapping;
    out.line = first.number;
    out.column = first.indent + 1;
    std::unordered_map<std::string, unsigned> keyLines;
    while (i < lines_.size() && lines_[i].indent == first.indent) {
      const Line line = lines_[i];
      if (isSequenceItem(line.content))
        return error(line, 0, "expected 'key: value', found a sequence item");
      std::optional<size_t> colon = findKeyColon(line.content);
      if (!colon)
        return error(line, 0, "expected 'key: value'");
      YamlEntry entry;
      entry.line = line.number;
      entry.column = line.indent + 1;
      entry.value.line = entry.line;
      entry.value.column = entry.column;
      KVRT_RETURN_IF_ERROR(parseKey(line, *colon, entry.key));
      auto [previous, isNew] = keyLines.emplace(entry.key, line.number);
      if (!isNew)
        return error(line, 0,
                     "duplicate key " + formats::quote(entry.key) +
                         " (first on line " + std::to_string(previous->second) +
                         ")");
      size_t pos = skipSpaces(line.content, *colon + 1);
      ++i;
      if (atEndOrComment(line.content, pos)) {
        KVRT_RETURN_IF_ERROR(
            parseNestedValue(i, line.indent, true, depth, entry.value));
      } else {
        KVRT_RETURN_IF_ERROR(parseInline(line, pos, entry.value));
        KVRT_RETURN_IF_ERROR(checkNotDeeper(i, line.indent));
      }
      out.entries.push_back(std::move(entry));
    }
    return checkNotDeeper(i, first.indent);
  }

  kvrt::Status parseSequence(size_t &i, unsigned depth, YamlNode &out) {
    const Line first = lines_[i];
    KVRT_RETURN_IF_ERROR(checkDepth(first, depth));
    out.kind = YamlNode::Kind::Sequence;
    out.line = first.number;
    out.column = first.indent + 1;
    while (i < lines_.size() && lines_[i].indent == first.indent &&
           isSequenceItem(lines_[i].content)) {
      const Line line = lines_[i];
      YamlNode item;
      item.line = line.number;
      item.column = line.indent + 1;
      size_t pos = skipSpaces(line.content, 1);
      std::string_view rest = line.content.substr(pos);
      if (atEndOrComment(line.content, pos)) {
        ++i;
        KVRT_RETURN_IF_ERROR(
            parseNestedValue(i, line.indent, false, depth, item));
      } else if (isSequenceItem(rest) || findKeyColon(rest)) {
        // A collection that starts on the dash's line continues at the
        // column of its first character.
        lines_[i] =
            Line{line.number, line.indent + static_cast<unsigned>(pos), rest};
        KVRT_RETURN_IF_ERROR(parseBlock(i, depth + 1, item));
      } else {
        KVRT_RETURN_IF_ERROR(parseInline(line, pos, item));
        ++i;
        KVRT_RETURN_IF_ERROR(checkNotDeeper(i, line.indent));
      }
      out.items.push_back(std::move(item));
    }
    return checkNotDeeper(i, first.indent);
  }

  kvrt::Status parseKey(const Line &line, size_t colon, std::string &key) {
    std::string_view raw = line.content.substr(0, colon);
    if (raw[0] == '"' || raw[0] == '\'') {
      size_t pos = 0;
      return parseQuoted(line, pos, key);
    }
    raw = raw.substr(0, raw.find_last_not_of(' ') + 1);
    if (raw.empty())
      return error(line, 0, "an empty key");
    if (std::optional<std::string> why = refusedStart(raw))
      return error(line, 0, *why);
    if (raw.size() > kMaxYamlScalarBytes)
      return error(line, 0, scalarTooLong());
    key = raw;
    return kvrt::Status::ok();
  }

  static std::string scalarTooLong() {
    return "a scalar longer than " + std::to_string(kMaxYamlScalarBytes) +
           " bytes";
  }

  /// A scalar or a flow sequence from `pos` to the end of the line (or a
  /// comment).
  kvrt::Status parseInline(const Line &line, size_t &pos, YamlNode &out) {
    std::string_view s = line.content;
    out.line = line.number;
    out.column = line.indent + pos + 1;
    if (s[pos] == '[') {
      KVRT_RETURN_IF_ERROR(parseFlowSequence(line, pos, out));
    } else if (s[pos] == '"' || s[pos] == '\'') {
      out.kind = YamlNode::Kind::Scalar;
      out.quoted = true;
      KVRT_RETURN_IF_ERROR(parseQuoted(line, pos, out.text));
    } else {
      if (isSequenceItem(s.substr(pos)))
        return error(line, pos,
                     "a block sequence cannot start on its key's line; start "
                     "it on the next line");
      if (std::optional<std::string> why = refusedStart(s.substr(pos)))
        return error(line, pos, *why);
      size_t end = pos;
      while (end < s.size() && !isCommentAt(s, end))
        ++end;
      std::string_view text = s.substr(pos, end - pos);
      text = text.substr(0, text.find_last_not_of(' ') + 1);
      if (std::optional<size_t> colon = findKeyColon(text))
        return error(line, pos + *colon,
                     "a mapping cannot start on its key's line; write it on "
                     "the next lines, indented");
      if (text.size() > kMaxYamlScalarBytes)
        return error(line, pos, scalarTooLong());
      out.kind = YamlNode::Kind::Scalar;
      out.text = text;
      pos = end;
    }
    pos = skipSpaces(s, pos);
    if (!atEndOrComment(s, pos))
      return error(line, pos, "unexpected text after the value");
    return kvrt::Status::ok();
  }

  /// A quoted scalar starting at `pos`; only \" and \\ escape in double
  /// quotes, '' in single quotes.
  kvrt::Status parseQuoted(const Line &line, size_t &pos, std::string &text) {
    std::string_view s = line.content;
    char quote = s[pos];
    size_t p = pos + 1;
    text.clear();
    for (;;) {
      if (p >= s.size())
        return error(line, pos, "a quoted scalar must end on its line");
      char c = s[p];
      if (c == quote && quote == '\'' && p + 1 < s.size() && s[p + 1] == '\'')
        ++p;
      else if (c == quote)
        break;
      else if (quote == '"' && c == '\\') {
        if (p + 1 < s.size() && (s[p + 1] == '"' || s[p + 1] == '\\'))
          c = s[++p];
        else
          return error(line, p,
                       "an escape other than \\\" and \\\\; write the "
                       "character itself");
      }
      text += c;
      ++p;
      if (text.size() > kMaxYamlScalarBytes)
        return error(line, pos, scalarTooLong());
    }
    pos = p + 1;
    return kvrt::Status::ok();
  }

  /// `[a, b, ...]` on one line, of scalars only.
  kvrt::Status parseFlowSequence(const Line &line, size_t &pos, YamlNode &out) {
    std::string_view s = line.content;
    size_t open = pos;
    out.kind = YamlNode::Kind::Sequence;
    pos = skipSpaces(s, pos + 1);
    if (pos < s.size() && s[pos] == ']') {
      ++pos;
      return kvrt::Status::ok();
    }
    for (;;) {
      pos = skipSpaces(s, pos);
      if (atEndOrComment(s, pos))
        return error(line, open, "a flow sequence must close on its line");
      YamlNode item;
      item.kind = YamlNode::Kind::Scalar;
      item.line = line.number;
      item.column = line.indent + pos + 1;
      if (s[pos] == '"' || s[pos] == '\'') {
        item.quoted = true;
        KVRT_RETURN_IF_ERROR(parseQuoted(line, pos, item.text));
      } else {
        KVRT_RETURN_IF_ERROR(parseFlowItem(line, pos, item.text));
      }
      out.items.push_back(std::move(item));
      pos = skipSpaces(s, pos);
      if (pos < s.size() && s[pos] == ']') {
        ++pos;
        return kvrt::Status::ok();
      }
      if (atEndOrComment(s, pos))
        return error(line, open, "a flow sequence must close on its line");
      if (s[pos] != ',')
        return error(line, pos, "expected ',' or ']' in a flow sequence");
      pos = skipSpaces(s, pos + 1);
      if (pos < s.size() && s[pos] == ']')
        return error(line, pos, "a trailing comma in a flow sequence");
    }
  }

  /// A plain scalar inside a flow sequence, up to ',' or ']'.
  kvrt::Status parseFlowItem(const Line &line, size_t &pos, std::string &text) {
    std::string_view s = line.content;
    if (s[pos] == ',' || s[pos] == ']')
      return error(line, pos, "an empty item in a flow sequence");
    if (s[pos] == '[')
      return error(line, pos, "nested flow sequences are not supported");
    if (std::optional<std::string> why = refusedStart(s.substr(pos)))
      return error(line, pos, *why);
    size_t end = pos;
    for (; end < s.size() && s[end] != ',' && s[end] != ']' &&
           !isCommentAt(s, end);
         ++end) {
      if (s[end] == '[' || s[end] == '{' || s[end] == '}')
        return error(line, end,
                     std::string("'") + s[end] +
                         "' inside a flow sequence item; quote the item");
      if (s[end] == ':' && (end + 1 == s.size() || s[end + 1] == ' '))
        return error(line, end, "flow mappings are not supported");
    }
    std::string_view item = s.substr(pos, end - pos);
    item = item.substr(0, item.find_last_not_of(' ') + 1);
    if (item.size() > kMaxYamlScalarBytes)
      return error(line, pos, scalarTooLong());
    text = item;
    pos = end;
    return kvrt::Status::ok();
  }

  const std::string &name_;
  std::vector<Line> lines_;
};

} // namespace

kvrt::StatusOr<YamlNode> parseYaml(std::string_view text,
                                   const std::string &name) {
  return Parser(name).parse(text);
}

} // namespace kvopt::policy
