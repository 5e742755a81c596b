//===- Yaml.h - The YAML subset of policy files -----------------*- C++ -*-===//
//
// Policy files are written by hand and come from outside. This reader takes
// block mappings, block sequences, one-line flow sequences of scalars, plain
// and quoted scalars and comments; it refuses the rest of YAML (anchors,
// aliases, tags, flow mappings, block and multi-line scalars, several
// documents, tabs) by name rather than guess. Input size, nesting depth and
// scalar length are bounded; errors read `FILE:LINE:COLUMN: message`. It
// links no MLIR, so a fuzzer can drive it alone.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_POLICY_YAML_H
#define KVOPT_COMPILER_POLICY_YAML_H

#include "kvrt/Status.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kvopt::policy {

struct YamlEntry;

/// A node and where it starts: 1-based line and byte column.
struct YamlNode {
  enum class Kind { Null, Scalar, Mapping, Sequence };
  Kind kind = Kind::Null;
  unsigned line = 0;
  unsigned column = 0;
  /// Scalar: the text, with quotes and escapes resolved.
  std::string text;
  /// Scalar: written in quotes, so a string even where it reads as a number.
  bool quoted = false;
  /// Mapping: the entries in file order; no two share a key.
  std::vector<YamlEntry> entries;
  /// Sequence: the items in file order.
  std::vector<YamlNode> items;
};

/// A mapping entry; `line` and `column` are those of its key.
struct YamlEntry {
  std::string key;
  unsigned line = 0;
  unsigned column = 0;
  YamlNode value;
};

/// A policy is a few dozen lines; these bounds are far above any real one.
inline constexpr size_t kMaxYamlBytes = 256 * 1024;
inline constexpr unsigned kMaxYamlDepth = 16;
inline constexpr size_t kMaxYamlScalarBytes = 1024;

/// Parses the YAML document `text`; `name` stands for the file in messages.
/// A document of only comments and blank lines is a Null node.
kvrt::StatusOr<YamlNode> parseYaml(std::string_view text,
                                   const std::string &name);

/// The error "name:LINE:COLUMN: message".
kvrt::Status yamlError(const std::string &name, unsigned line, unsigned column,
                       const std::string &message);

} // namespace kvopt::policy

#endif // KVOPT_COMPILER_POLICY_YAML_H
