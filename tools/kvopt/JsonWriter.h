//===- JsonWriter.h - Results as indented JSON ------------------*- C++ -*-===//
#ifndef KVOPT_TOOLS_KVOPT_JSONWRITER_H
#define KVOPT_TOOLS_KVOPT_JSONWRITER_H

#include <cstdint>
#include <ostream>
#include <string_view>
#include <type_traits>
#include <vector>

namespace kvopt::cli {

/// Writes one JSON value to a stream: indented by two spaces a level and
/// ended by a newline, or compact on one line (for one Server-Sent Event).
/// Callers nest begin/end calls properly and give every member of an object
/// a key; strings that are not valid UTF-8 have their bad bytes replaced by
/// U+FFFD, and numbers that are not finite are written as null.
class JsonWriter {
public:
  enum class Layout { Indented, Compact };
  explicit JsonWriter(std::ostream &os, Layout layout = Layout::Indented)
      : os_(os), compact_(layout == Layout::Compact) {}

  void beginObject() { open('{'); }
  void endObject() { close('}'); }
  void beginArray() { open('['); }
  void endArray() { close(']'); }
  /// The key of the next member of the current object.
  void key(std::string_view name);

  void value(std::string_view text);
  void value(const char *text) { value(std::string_view(text)); }
  void value(double number);
  void value(bool flag);
  void null();
  template <typename Integer,
            typename = std::enable_if_t<std::is_integral_v<Integer> &&
                                        !std::is_same_v<Integer, bool>>>
  void value(Integer number) {
    beforeValue();
    os_ << +number;
  }

  /// key(name) then value(v).
  template <typename T> void member(std::string_view name, const T &v) {
    key(name);
    value(v);
  }

private:
  void open(char bracket);
  void close(char bracket);
  void beforeValue();
  void newline();
  void writeString(std::string_view text);

  std::ostream &os_;
  const bool compact_;
  /// Per open object or array: whether it has no element yet.
  std::vector<bool> empty_;
  bool afterKey_ = false;
};

} // namespace kvopt::cli

#endif // KVOPT_TOOLS_KVOPT_JSONWRITER_H
