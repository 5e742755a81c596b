//===- JsonFields.h - Typed access to tokenizer.json fields -----*- C++ -*-===//
//
// Reading tokenizer.json and tokenizer_config.json means checking the type of
// every field it uses; these helpers do it and word the errors alike:
// "<file>: <field path> <problem>".
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TOKENIZER_JSONFIELDS_H
#define KVRT_TOKENIZER_JSONFIELDS_H

#include "kvrt/Json.h"
#include "kvrt/Status.h"

#include <optional>
#include <string>
#include <string_view>

namespace kvrt::tokenizer {

/// Reads fields of one JSON document named `source`.
class JsonFields {
public:
  explicit JsonFields(std::string source) : source_(std::move(source)) {}

  const std::string &source() const { return source_; }

  /// "<source>: <field> <problem>".
  Status error(const std::string &field, const std::string &problem) const {
    return Status::error(source_ + ": " + field + " " + problem);
  }

  /// The member `key` of `object`, or null when absent or JSON null.
  static const json::Value *member(const json::Value &object,
                                   std::string_view key) {
    const json::Value *v = object.find(key);
    return v && !v->isNull() ? v : nullptr;
  }

  /// Fails unless `value` (at `field`) has kind `kind`.
  Status expect(const json::Value &value, json::Value::Kind kind,
                const std::string &field) const {
    if (value.kind() == kind)
      return Status::ok();
    return error(field, std::string("is a ") +
                            json::Value::kindName(value.kind()) +
                            ", expected a " + json::Value::kindName(kind));
  }

  /// Reads an optional boolean member; `out` keeps its value when absent.
  Status optionalBool(const json::Value &object, std::string_view key,
                      const std::string &field, bool &out) const {
    const json::Value *v = member(object, key);
    if (!v)
      return Status::ok();
    KVRT_RETURN_IF_ERROR(expect(*v, json::Value::Kind::Bool, field));
    out = v->asBool();
    return Status::ok();
  }

  /// Reads an optional string member.
  Status optionalString(const json::Value &object, std::string_view key,
                        const std::string &field,
                        std::optional<std::string> &out) const {
    const json::Value *v = member(object, key);
    if (!v)
      return Status::ok();
    KVRT_RETURN_IF_ERROR(expect(*v, json::Value::Kind::String, field));
    out = v->asString();
    return Status::ok();
  }

  /// The "type" of a component object ("" when it has none).
  static std::string typeOf(const json::Value &component) {
    const json::Value *t = member(component, "type");
    return t && t->isString() ? t->asString() : "";
  }

private:
  std::string source_;
};

} // namespace kvrt::tokenizer

#endif // KVRT_TOKENIZER_JSONFIELDS_H
