//===- GgufValue.cpp - GGUF metadata values -------------------------------===//
#include "compiler/import/gguf/GgufValue.h"

#include <cstring>
#include <limits>

namespace kvopt::formats {

struct GgufValue::ArrayData {
  GgufType elementType = GgufType::UInt8;
  std::vector<uint8_t> scalars;
  std::vector<std::string> strings;
  std::vector<GgufValue> arrays;
};

const char *ggufTypeName(GgufType type) {
  switch (type) {
  case GgufType::UInt8:
    return "uint8";
  case GgufType::Int8:
    return "int8";
  case GgufType::UInt16:
    return "uint16";
  case GgufType::Int16:
    return "int16";
  case GgufType::UInt32:
    return "uint32";
  case GgufType::Int32:
    return "int32";
  case GgufType::Float32:
    return "float32";
  case GgufType::Bool:
    return "bool";
  case GgufType::String:
    return "string";
  case GgufType::Array:
    return "array";
  case GgufType::UInt64:
    return "uint64";
  case GgufType::Int64:
    return "int64";
  case GgufType::Float64:
    return "float64";
  }
  return "unknown";
}

uint64_t ggufScalarBytes(GgufType type) {
  switch (type) {
  case GgufType::UInt8:
  case GgufType::Int8:
  case GgufType::Bool:
    return 1;
  case GgufType::UInt16:
  case GgufType::Int16:
    return 2;
  case GgufType::UInt32:
  case GgufType::Int32:
  case GgufType::Float32:
    return 4;
  case GgufType::UInt64:
  case GgufType::Int64:
  case GgufType::Float64:
    return 8;
  case GgufType::String:
  case GgufType::Array:
    return 0;
  }
  return 0;
}

GgufValue GgufValue::makeUInt(GgufType type, uint64_t value) {
  return GgufValue(type, value);
}
GgufValue GgufValue::makeInt(GgufType type, int64_t value) {
  return GgufValue(type, value);
}
GgufValue GgufValue::makeFloat(GgufType type, double value) {
  return GgufValue(type, value);
}
GgufValue GgufValue::makeBool(bool value) {
  return GgufValue(GgufType::Bool, value);
}
GgufValue GgufValue::makeString(std::string value) {
  return GgufValue(GgufType::String, std::move(value));
}

GgufValue GgufValue::makeScalarArray(GgufType elementType,
                                     std::vector<uint8_t> bytes) {
  auto data = std::make_shared<ArrayData>();
  data->elementType = elementType;
  data->scalars = std::move(bytes);
  return GgufValue(GgufType::Array, std::move(data));
}

GgufValue GgufValue::makeStringArray(std::vector<std::string> items) {
  auto data = std::make_shared<ArrayData>();
  data->elementType = GgufType::String;
  data->strings = std::move(items);
  return GgufValue(GgufType::Array, std::move(data));
}

GgufValue GgufValue::makeArrayArray(std::vector<GgufValue> items) {
  auto data = std::make_shared<ArrayData>();
  data->elementType = GgufType::Array;
  data->arrays = std::move(items);
  return GgufValue(GgufType::Array, std::move(data));
}

const GgufValue::ArrayData *GgufValue::array() const {
  auto *data = std::get_if<std::shared_ptr<const ArrayData>>(&payload_);
  return data ? data->get() : nullptr;
}

std::string GgufValue::typeName() const {
  if (const ArrayData *a = array())
    return std::string("array of ") + ggufTypeName(a->elementType);
  return ggufTypeName(type_);
}

std::optional<uint64_t> GgufValue::asUInt() const {
  if (auto *u = std::get_if<uint64_t>(&payload_))
    return *u;
  if (auto *i = std::get_if<int64_t>(&payload_); i && *i >= 0)
    return uint64_t(*i);
  return std::nullopt;
}

std::optional<int64_t> GgufValue::asInt() const {
  if (auto *i = std::get_if<int64_t>(&payload_))
    return *i;
  if (auto *u = std::get_if<uint64_t>(&payload_);
      u && *u <= uint64_t(std::numeric_limits<int64_t>::max()))
    return int64_t(*u);
  return std::nullopt;
}

std::optional<double> GgufValue::asFloat() const {
  if (auto *f = std::get_if<double>(&payload_))
    return *f;
  return std::nullopt;
}

std::optional<bool> GgufValue::asBool() const {
  if (auto *b = std::get_if<bool>(&payload_))
    return *b;
  return std::nullopt;
}

const std::string *GgufValue::asString() const {
  return std::get_if<std::string>(&payload_);
}

GgufType GgufValue::elementType() const {
  const ArrayData *a = array();
  return a ? a->elementType : GgufType::UInt8;
}

uint64_t GgufValue::size() const {
  const ArrayData *a = array();
  if (!a)
    return 0;
  if (uint64_t bytes = ggufScalarBytes(a->elementType))
    return a->scalars.size() / bytes;
  return a->elementType == GgufType::String ? a->strings.size()
                                            : a->arrays.size();
}

const std::vector<std::string> *GgufValue::asStringArray() const {
  const ArrayData *a = array();
  return a && a->elementType == GgufType::String ? &a->strings : nullptr;
}

GgufValue GgufValue::element(uint64_t i) const {
  const ArrayData &a = *array();
  if (a.elementType == GgufType::String)
    return makeString(a.strings[i]);
  if (a.elementType == GgufType::Array)
    return a.arrays[i];
  const uint8_t *p = a.scalars.data() + i * ggufScalarBytes(a.elementType);
  auto load = [p](auto value) {
    std::memcpy(&value, p, sizeof value);
    return value;
  };
  switch (a.elementType) {
  case GgufType::UInt8:
    return makeUInt(a.elementType, load(uint8_t()));
  case GgufType::Int8:
    return makeInt(a.elementType, load(int8_t()));
  case GgufType::UInt16:
    return makeUInt(a.elementType, load(uint16_t()));
  case GgufType::Int16:
    return makeInt(a.elementType, load(int16_t()));
  case GgufType::UInt32:
    return makeUInt(a.elementType, load(uint32_t()));
  case GgufType::Int32:
    return makeInt(a.elementType, load(int32_t()));
  case GgufType::UInt64:
    return makeUInt(a.elementType, load(uint64_t()));
  case GgufType::Int64:
    return makeInt(a.elementType, load(int64_t()));
  case GgufType::Float32:
    return makeFloat(a.elementType, load(float()));
  case GgufType::Float64:
    return makeFloat(a.elementType, load(double()));
  case GgufType::Bool:
    return makeBool(load(uint8_t()) != 0);
  case GgufType::String:
  case GgufType::Array:
    break;
  }
  return GgufValue();
}

} // namespace kvopt::formats
