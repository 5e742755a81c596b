//===- GgufValue.h - GGUF metadata values -----------------------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_GGUF_GGUFVALUE_H
#define KVOPT_COMPILER_IMPORT_GGUF_GGUFVALUE_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kvopt::formats {

/// The value types of GGUF metadata, numbered as in the file.
enum class GgufType : uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};

/// The number of GGUF value types: type ids at or above it are invalid.
constexpr uint32_t kGgufTypeCount = 13;

/// "uint32", "float32", "string", ...: gguf-py's names in lower case.
const char *ggufTypeName(GgufType type);

/// Bytes of one value of a number or boolean type; 0 for the others.
uint64_t ggufScalarBytes(GgufType type);

/// One metadata value: a number, boolean or string, or an array of values
/// of one type. Arrays of numbers and booleans keep their little-endian
/// bytes, so a hostile array costs about as much memory as the file holds.
class GgufValue {
public:
  GgufValue() = default;
  static GgufValue makeUInt(GgufType type, uint64_t value);
  static GgufValue makeInt(GgufType type, int64_t value);
  static GgufValue makeFloat(GgufType type, double value);
  static GgufValue makeBool(bool value);
  static GgufValue makeString(std::string value);
  /// An array of `elementType` numbers or booleans, given as the
  /// ggufScalarBytes(elementType) * n little-endian bytes of the file.
  static GgufValue makeScalarArray(GgufType elementType,
                                   std::vector<uint8_t> bytes);
  static GgufValue makeStringArray(std::vector<std::string> items);
  /// An array of arrays (each of its own element type).
  static GgufValue makeArrayArray(std::vector<GgufValue> items);

  GgufType type() const { return type_; }
  /// "uint32", "array of string": for messages.
  std::string typeName() const;

  /// The value of an integer type when it is not negative.
  std::optional<uint64_t> asUInt() const;
  /// The value of an integer type when it fits in int64.
  std::optional<int64_t> asInt() const;
  /// The value of a float32 or float64.
  std::optional<double> asFloat() const;
  std::optional<bool> asBool() const;
  /// The string, or null when the value is not one.
  const std::string *asString() const;

  /// Arrays: their element type, element count, and element `i` (< size())
  /// as a value of its own.
  GgufType elementType() const;
  uint64_t size() const;
  GgufValue element(uint64_t i) const;
  /// The items of an array of strings, or null.
  const std::vector<std::string> *asStringArray() const;

private:
  struct ArrayData;
  using Payload = std::variant<uint64_t, int64_t, double, bool, std::string,
                               std::shared_ptr<const ArrayData>>;
  GgufValue(GgufType type, Payload payload)
      : type_(type), payload_(std::move(payload)) {}
  const ArrayData *array() const;

  GgufType type_ = GgufType::UInt8;
  Payload payload_ = uint64_t(0);
};

} // namespace kvopt::formats

#endif // KVOPT_COMPILER_IMPORT_GGUF_GGUFVALUE_H
