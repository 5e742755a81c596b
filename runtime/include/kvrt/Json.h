//===- Json.h - A bounded JSON reader for hostile input ---------*- C++ -*-===//
//
// config.json, tokenizer.json and safetensors headers come from outside. This
// reader validates UTF-8, rejects duplicate keys, bounds nesting depth and
// never allocates more than a constant factor of the input it was given.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_JSON_H
#define KVRT_JSON_H

#include "kvrt/Status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvrt::json {

class Value {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };
  using Member = std::pair<std::string, Value>;

  Value() = default;
  static Value makeBool(bool b);
  static Value makeNumber(double d, std::optional<int64_t> exact);
  static Value makeString(std::string s);
  static Value makeArray(std::vector<Value> items);
  static Value makeObject(std::vector<Member> members);

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::Null; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isNumber() const { return kind_ == Kind::Number; }
  bool isString() const { return kind_ == Kind::String; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isObject() const { return kind_ == Kind::Object; }

  bool asBool() const { return boolean_; }
  double asDouble() const { return number_; }
  /// The number as an integer when it was written without fraction or
  /// exponent and fits in int64.
  std::optional<int64_t> asInt() const { return integer_; }
  const std::string &asString() const { return string_; }
  const std::vector<Value> &items() const { return items_; }
  /// Members in file order.
  const std::vector<Member> &members() const { return members_; }
  /// The member named `key`, or null when absent or not an object.
  const Value *find(std::string_view key) const;

  /// "object", "string", ...: for error messages.
  static const char *kindName(Kind kind);

private:
  Kind kind_ = Kind::Null;
  bool boolean_ = false;
  double number_ = 0;
  std::optional<int64_t> integer_;
  std::string string_;
  std::vector<Value> items_;
  std::vector<Member> members_;
};

/// Deepest nesting of arrays and objects accepted.
constexpr int kMaxDepth = 128;

/// Parses `text`; errors name `sourceName` and the byte offset.
StatusOr<Value> parse(std::string_view text, const std::string &sourceName);

/// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates).
bool isValidUtf8(std::string_view bytes);

} // namespace kvrt::json

#endif // KVRT_JSON_H
