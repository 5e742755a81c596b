//===- GgufMetadata.cpp - Typed getters for GGUF metadata -----------------===//
#include "compiler/import/gguf/GgufFile.h"

#include "compiler/import/formats/Quote.h"

#include <cmath>
#include <limits>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::formats {

namespace {

/// "uint32 7", "string": what was found, for messages.
std::string describe(const GgufValue &v) {
  std::string s = v.typeName();
  if (std::optional<int64_t> i = v.asInt())
    return s + " " + std::to_string(*i);
  if (std::optional<uint64_t> u = v.asUInt())
    return s + " " + std::to_string(*u);
  return s;
}

/// A number of any numeric type as a double.
std::optional<double> asNumber(const GgufValue &v) {
  if (std::optional<double> f = v.asFloat())
    return f;
  if (std::optional<int64_t> i = v.asInt())
    return double(*i);
  if (std::optional<uint64_t> u = v.asUInt())
    return double(*u);
  return std::nullopt;
}

} // namespace

StatusOr<const GgufValue *> GgufFile::lookup(std::string_view key) const {
  if (const GgufValue *v = get(key))
    return v;
  return Status::error(path() + ": metadata " + quote(key) + " is missing");
}

Status GgufFile::typeError(std::string_view key, const std::string &expected,
                           const GgufValue &found) const {
  return Status::error(path() + ": metadata " + quote(key) + " must be " +
                       expected + ", got " + describe(found));
}

StatusOr<std::string> GgufFile::getString(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  if (const std::string *s = (*v)->asString())
    return *s;
  return typeError(key, "a string", **v);
}

StatusOr<bool> GgufFile::getBool(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  if (std::optional<bool> b = (*v)->asBool())
    return *b;
  return typeError(key, "a bool", **v);
}

StatusOr<uint64_t> GgufFile::getUInt(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  if (std::optional<uint64_t> u = (*v)->asUInt())
    return *u;
  return typeError(key, "an unsigned integer", **v);
}

StatusOr<int64_t> GgufFile::getInt(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  if (std::optional<int64_t> i = (*v)->asInt())
    return *i;
  return typeError(key, "an integer that fits in int64", **v);
}

StatusOr<int64_t> GgufFile::getPositiveInt(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  std::optional<int64_t> i = (*v)->asInt();
  if (i && *i >= 1 && *i <= std::numeric_limits<int32_t>::max())
    return *i;
  return typeError(key, "a positive integer below 2^31", **v);
}

StatusOr<double> GgufFile::getFloat(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  std::optional<double> x = asNumber(**v);
  if (x && std::isfinite(*x))
    return *x;
  return typeError(key, "a finite number", **v);
}

StatusOr<std::vector<std::string>>
GgufFile::getStringArray(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  if (const std::vector<std::string> *items = (*v)->asStringArray())
    return *items;
  return typeError(key, "an array of string", **v);
}

StatusOr<std::vector<float>>
GgufFile::getFloatArray(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  const GgufValue &array = **v;
  if (array.type() != GgufType::Array ||
      (array.elementType() != GgufType::Float32 &&
       array.elementType() != GgufType::Float64))
    return typeError(key, "an array of float32", array);
  std::vector<float> out;
  out.reserve(array.size());
  for (uint64_t i = 0; i < array.size(); ++i)
    out.push_back(float(*array.element(i).asFloat()));
  return out;
}

StatusOr<std::vector<int32_t>>
GgufFile::getInt32Array(std::string_view key) const {
  StatusOr<const GgufValue *> v = lookup(key);
  if (!v)
    return v.status();
  const GgufValue &array = **v;
  if (array.type() != GgufType::Array ||
      ggufScalarBytes(array.elementType()) == 0 ||
      array.elementType() == GgufType::Float32 ||
      array.elementType() == GgufType::Float64 ||
      array.elementType() == GgufType::Bool)
    return typeError(key, "an array of int32", array);
  std::vector<int32_t> out;
  out.reserve(array.size());
  for (uint64_t i = 0; i < array.size(); ++i) {
    GgufValue item = array.element(i);
    std::optional<int64_t> x = item.asInt();
    if (!x || *x < std::numeric_limits<int32_t>::min() ||
        *x > std::numeric_limits<int32_t>::max())
      return Status::error(path() + ": metadata " + quote(key) + " element " +
                           std::to_string(i) + " is " + describe(item) +
                           ", which does not fit in int32");
    out.push_back(int32_t(*x));
  }
  return out;
}

} // namespace kvopt::formats
