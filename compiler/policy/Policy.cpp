//===- Policy.cpp - A policy file and the passes it means -----------------===//
#include "compiler/policy/Policy.h"

#include "compiler/import/formats/Quote.h"
#include "compiler/policy/Budget.h"
#include "compiler/policy/LayerRange.h"
#include "compiler/policy/Yaml.h"

#include "kvrt/MappedFile.h"

#include <algorithm>
#include <cstdint>
#include <optional>

namespace kvopt::policy {

namespace {

/// How a setting's value is written.
enum class ValueKind {
  Word,     ///< a name of lowercase letters, digits and '_'
  Unsigned, ///< a whole number from `min` to `max`
  Bool,     ///< true or false
  Layers,   ///< a layer range, or a list of them
  Budget,   ///< a fraction in (0, 1] with a '.', or a token count
  Fraction, ///< a fraction in (0, 1) with a '.'
};

struct OptionSpec {
  std::string_view key;
  ValueKind kind;
  uint64_t min = 0;
  uint64_t max = 0;
};

/// A section: the pass its settings become, the options a setting may give
/// (the pass's own option names) and those every setting must give.
struct SectionSpec {
  std::string_view name;
  std::string_view pass;
  std::vector<std::string_view> required;
  std::vector<OptionSpec> options;
};

constexpr size_t kMaxWordBytes = 32;

/// The sections in the order the compiler runs their passes.
const std::vector<SectionSpec> &sections() {
  static const std::vector<SectionSpec> specs = {
      // Before quantize: a later kv-quantize encodes the latent.
      {"lowrank",
       "kv-lowrank",
       {},
       {{"method", ValueKind::Word},
        {"shared", ValueKind::Fraction},
        {"group", ValueKind::Unsigned, 1, UINT32_MAX},
        {"side", ValueKind::Word},
        {"ratio", ValueKind::Fraction},
        // rank=0 tells the pass "not given".
        {"rank", ValueKind::Unsigned, 1, UINT32_MAX},
        {"allocate", ValueKind::Word},
        {"value_basis", ValueKind::Word},
        {"fold", ValueKind::Bool},
        {"centre", ValueKind::Bool},
        {"sinks", ValueKind::Unsigned, 0, UINT32_MAX},
        {"window", ValueKind::Unsigned, 0, UINT32_MAX},
        {"layers", ValueKind::Layers}}},
      {"quantize",
       "kv-quantize",
       {"encoding"},
       {{"encoding", ValueKind::Word},
        // bits=0 tells the pass "not given": a policy that gives bits means
        // a width.
        {"bits", ValueKind::Unsigned, 1, UINT32_MAX},
        {"group", ValueKind::Unsigned, 0, UINT32_MAX},
        {"residual", ValueKind::Unsigned, 0, UINT32_MAX},
        {"seed", ValueKind::Unsigned, 0, UINT64_MAX},
        {"scale", ValueKind::Word},
        {"qjl", ValueKind::Bool},
        {"sinks", ValueKind::Unsigned, 0, UINT32_MAX},
        {"window", ValueKind::Unsigned, 0, UINT32_MAX},
        {"side", ValueKind::Word},
        {"layers", ValueKind::Layers}}},
      {"evict",
       "kv-evict",
       {"method", "budget"},
       {{"method", ValueKind::Word},
        {"budget", ValueKind::Budget},
        {"window", ValueKind::Unsigned, 0, UINT32_MAX},
        {"interval", ValueKind::Unsigned, 0, UINT32_MAX},
        {"sinks", ValueKind::Unsigned, 0, UINT32_MAX},
        // observe=0 and kernel=0 tell the pass "not given".
        {"observe", ValueKind::Unsigned, 1, UINT32_MAX},
        {"kernel", ValueKind::Unsigned, 1, UINT32_MAX},
        {"heads", ValueKind::Word},
        // horizon=0 tells the pass "not given".
        {"horizon", ValueKind::Unsigned, 1, UINT32_MAX},
        {"combine", ValueKind::Word},
        {"allocate", ValueKind::Word},
        // spread=0 tells the pass "not given".
        {"spread", ValueKind::Unsigned, 1, UINT32_MAX},
        {"layers", ValueKind::Layers}}},
  };
  return specs;
}

/// What a node is, for "got ..." in messages.
std::string describe(const YamlNode &node) {
  switch (node.kind) {
  case YamlNode::Kind::Null:
    return "nothing";
  case YamlNode::Kind::Mapping:
    return "a mapping";
  case YamlNode::Kind::Sequence:
    return "a list";
  case YamlNode::Kind::Scalar:
    return (node.quoted ? "the quoted string " : "") +
           formats::quote(node.text);
  }
  return "";
}

std::optional<uint64_t> parseUnsigned(std::string_view text) {
  if (text.empty() || text.size() > 20)
    return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    uint64_t digit = c - '0';
    if (value > (UINT64_MAX - digit) / 10)
      return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

bool isWord(std::string_view text) {
  return !text.empty() && text.size() <= kMaxWordBytes &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

class Reader {
public:
  explicit Reader(const std::string &name) : name_(name) {}

  kvrt::StatusOr<Policy> read(const YamlNode &root) {
    std::string allowed = sectionNames();
    if (root.kind == YamlNode::Kind::Null)
      return kvrt::Status::error(name_ +
                                 ": the policy is empty; give at "
                                 "least one section (" +
                                 allowed + ")");
    if (root.kind != YamlNode::Kind::Mapping)
      return errorAt(root, "a policy is a mapping of sections (" + allowed +
                               "), not " + describe(root));
    for (const YamlEntry &entry : root.entries)
      if (!findSection(entry.key))
        return errorAt(entry, "unknown section " + formats::quote(entry.key) +
                                  "; allowed: " + allowed);
    Policy policy;
    for (const SectionSpec &section : sections())
      for (const YamlEntry &entry : root.entries)
        if (entry.key == section.name)
          KVRT_RETURN_IF_ERROR(readSection(section, entry, policy));
    return policy;
  }

private:
  kvrt::Status errorAt(const YamlNode &node, const std::string &message) {
    return yamlError(name_, node.line, node.column, message);
  }
  kvrt::Status errorAt(const YamlEntry &entry, const std::string &message) {
    return yamlError(name_, entry.line, entry.column, message);
  }

  static std::string sectionNames() {
    std::string names;
    for (const SectionSpec &section : sections())
      names += (names.empty() ? "" : ", ") + std::string(section.name);
    return names;
  }

  static const SectionSpec *findSection(std::string_view name) {
    for (const SectionSpec &section : sections())
      if (section.name == name)
        return &section;
    return nullptr;
  }

  /// The section's setting for the whole model, then its overrides.
  kvrt::Status readSection(const SectionSpec &section, const YamlEntry &entry,
                           Policy &policy) {
    std::string where = "the " + std::string(section.name) + " section";
    if (entry.value.kind != YamlNode::Kind::Mapping)
      return errorAt(entry, where + " must be a mapping of settings, not " +
                                describe(entry.value));
    const YamlEntry *overrides = nullptr;
    KVRT_RETURN_IF_ERROR(
        readSetting(section, entry.value, where, &overrides, policy));
    if (!overrides)
      return kvrt::Status::ok();
    const YamlNode &list = overrides->value;
    if (list.kind != YamlNode::Kind::Sequence)
      return errorAt(*overrides, "'overrides' must be a list of settings, "
                                 "not " +
                                     describe(list));
    for (const YamlNode &item : list.items) {
      std::string itemWhere = "this " + std::string(section.name) + " override";
      if (item.kind != YamlNode::Kind::Mapping)
        return errorAt(item, itemWhere +
                                 " must be a mapping of settings, not " +
                                 describe(item));
      KVRT_RETURN_IF_ERROR(
          readSetting(section, item, itemWhere, nullptr, policy));
    }
    return kvrt::Status::ok();
  }

  /// One pass invocation from the mapping `node`. Where `overrides` is
  /// given, the setting may hold an `overrides` list, returned there.
  kvrt::Status readSetting(const SectionSpec &section, const YamlNode &node,
                           const std::string &where,
                           const YamlEntry **overrides, Policy &policy) {
    std::vector<std::optional<std::string>> values(section.options.size());
    for (const YamlEntry &entry : node.entries) {
      if (overrides && entry.key == "overrides") {
        *overrides = &entry;
        continue;
      }
      auto option = std::find_if(
          section.options.begin(), section.options.end(),
          [&](const OptionSpec &spec) { return spec.key == entry.key; });
      if (option == section.options.end())
        return errorAt(entry, "unknown key " + formats::quote(entry.key) +
                                  " in " + where + "; allowed: " +
                                  optionNames(section, overrides != nullptr));
      kvrt::StatusOr<std::string> value = readValue(*option, entry);
      if (!value)
        return value.status();
      values[option - section.options.begin()] = std::move(*value);
    }
    PassStep step{std::string(section.pass), {}};
    for (size_t i = 0; i < values.size(); ++i) {
      if (values[i])
        step.options.emplace_back(section.options[i].key, *values[i]);
      else if (std::find(section.required.begin(), section.required.end(),
                         section.options[i].key) != section.required.end())
        return errorAt(node, where + " has no '" +
                                 std::string(section.options[i].key) +
                                 "'; every setting names it");
    }
    policy.steps.push_back(std::move(step));
    return kvrt::Status::ok();
  }

  static std::string optionNames(const SectionSpec &section,
                                 bool withOverrides) {
    std::string names;
    for (const OptionSpec &option : section.options)
      names += (names.empty() ? "" : ", ") + std::string(option.key);
    return withOverrides ? names + ", overrides" : names;
  }

  /// The value of `entry` in pipeline syntax.
  kvrt::StatusOr<std::string> readValue(const OptionSpec &option,
                                        const YamlEntry &entry) {
    const YamlNode &value = entry.value;
    std::string key = "'" + std::string(option.key) + "'";
    if (value.kind == YamlNode::Kind::Null)
      return errorAt(entry, key + " has no value");
    bool plain = value.kind == YamlNode::Kind::Scalar && !value.quoted;
    switch (option.kind) {
    case ValueKind::Word:
      if (value.kind != YamlNode::Kind::Scalar || !isWord(value.text))
        return errorAt(value, key + " must be a name of at most " +
                                  std::to_string(kMaxWordBytes) +
                                  " lowercase letters, digits and '_', got " +
                                  describe(value));
      return value.text;
    case ValueKind::Unsigned: {
      std::optional<uint64_t> number =
          plain ? parseUnsigned(value.text) : std::nullopt;
      if (!number || *number < option.min || *number > option.max)
        return errorAt(value, key + " must be a whole number from " +
                                  std::to_string(option.min) + " to " +
                                  std::to_string(option.max) + ", got " +
                                  describe(value));
      return std::to_string(*number);
    }
    case ValueKind::Bool:
      if (!plain || (value.text != "true" && value.text != "false"))
        return errorAt(value,
                       key + " must be true or false, got " + describe(value));
      return value.text;
    case ValueKind::Layers:
      return readLayers(key, value);
    case ValueKind::Fraction: {
      kvrt::StatusOr<Budget> budget =
          plain ? parseBudget(value.text) : kvrt::StatusOr<Budget>(Budget{});
      if (!plain || !budget || !budget->isFraction || budget->fraction >= 1)
        return errorAt(value, key +
                                  " must be a fraction in (0, 1) with a '.' "
                                  "(0.5), got " +
                                  describe(value));
      return pipelineNumber(value.text);
    }
    case ValueKind::Budget: {
      if (!plain)
        return errorAt(value, key +
                                  " must be a fraction in (0, 1] with a "
                                  "'.' (0.25) or a token count (1024), "
                                  "got " +
                                  describe(value));
      kvrt::StatusOr<Budget> budget = parseBudget(value.text);
      if (!budget)
        return errorAt(value, key + ": " + budget.status().message());
      return pipelineNumber(value.text);
    }
    }
    return errorAt(value, key + " has a kind of value this reader lacks");
  }

  /// A layer range or a non-empty list of them, joined with commas as the
  /// pass's list option takes them.
  kvrt::StatusOr<std::string> readLayers(const std::string &key,
                                         const YamlNode &value) {
    if (value.kind == YamlNode::Kind::Sequence && value.items.empty())
      return errorAt(value, key + " is an empty list; leave it out to mean "
                                  "every layer");
    const std::vector<YamlNode> single = {value};
    const std::vector<YamlNode> &items =
        value.kind == YamlNode::Kind::Sequence ? value.items : single;
    std::string joined;
    for (const YamlNode &item : items) {
      if (item.kind != YamlNode::Kind::Scalar)
        return errorAt(item, key +
                                 " must be a layer range (N, -N or A-B) "
                                 "or a list of them, got " +
                                 describe(item));
      kvrt::StatusOr<LayerRange> range = parseLayerRange(item.text);
      if (!range)
        return errorAt(item, key + ": " + range.status().message());
      joined += (joined.empty() ? "" : ",") + item.text;
    }
    return joined;
  }

  const std::string &name_;
};

} // namespace

kvrt::StatusOr<Policy> parsePolicy(std::string_view text,
                                   const std::string &name) {
  kvrt::StatusOr<YamlNode> root = parseYaml(text, name);
  if (!root)
    return root.status();
  return Reader(name).read(*root);
}

kvrt::StatusOr<Policy> readPolicyFile(const std::string &path) {
  kvrt::StatusOr<std::shared_ptr<kvrt::MappedFile>> file =
      kvrt::MappedFile::open(path);
  if (!file)
    return file.status();
  std::string_view text(reinterpret_cast<const char *>((*file)->data()),
                        (*file)->size());
  return parsePolicy(text, path);
}

std::string pipelineText(const Policy &policy) {
  std::string text;
  for (const PassStep &step : policy.steps) {
    text += (text.empty() ? "" : ",") + step.pass;
    if (step.options.empty())
      continue;
    std::string options;
    for (const auto &[key, value] : step.options)
      options += (options.empty() ? "" : " ") + key + "=" + value;
    text += "{" + options + "}";
  }
  return text;
}

} // namespace kvopt::policy
