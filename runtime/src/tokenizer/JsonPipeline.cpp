//===- JsonPipeline.cpp - Recognising tokenizer.json components -----------===//
#include "runtime/src/tokenizer/JsonPipeline.h"

#include "kvrt/Quote.h"
#include "runtime/src/tokenizer/SpecCheck.h"
#include "runtime/src/tokenizer/Unicode.h"

#include <vector>

namespace kvrt::tokenizer {
namespace {

using Kind = json::Value::Kind;

// The pre-tokenizer regexes as tokenizer.json files spell them.
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+)"
    R"(|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// A component and where it sits, for error messages.
struct Component {
  const json::Value *value;
  std::string field;
  std::string type;
};

/// The components of `key`, with Sequences (listed under `listKey`)
/// flattened; empty when the key is absent or null.
Status flatten(const json::Value *value, const std::string &field,
               const char *listKey, const JsonFields &f,
               std::vector<Component> &out) {
  if (!value)
    return Status::ok();
  KVRT_RETURN_IF_ERROR(f.expect(*value, Kind::Object, field));
  std::string type = JsonFields::typeOf(*value);
  if (type != "Sequence") {
    out.push_back(Component{value, field, type});
    return Status::ok();
  }
  const json::Value *list = JsonFields::member(*value, listKey);
  std::string listField = field + "." + listKey;
  if (!list)
    return f.error(listField, "is missing");
  KVRT_RETURN_IF_ERROR(f.expect(*list, Kind::Array, listField));
  for (size_t i = 0; i < list->items().size(); ++i)
    KVRT_RETURN_IF_ERROR(flatten(&list->items()[i],
                                 listField + "[" + std::to_string(i) + "]",
                                 listKey, f, out));
  return Status::ok();
}

/// The literal of a {"String": ...} pattern, or nothing.
std::optional<std::string> stringPattern(const json::Value &component) {
  const json::Value *pattern = JsonFields::member(component, "pattern");
  const json::Value *s =
      pattern ? JsonFields::member(*pattern, "String") : nullptr;
  if (!s || !s->isString())
    return std::nullopt;
  return s->asString();
}

bool stringMember(const json::Value &component, std::string_view key,
                  std::string_view expected) {
  const json::Value *v = JsonFields::member(component, key);
  return v && v->isString() && v->asString() == expected;
}

/// Normalizer: none, or Replace(' ', '▁') with an optional Prepend('▁').
Status readNormalizer(const json::Value &root, const JsonFields &f,
                      bool &metaspace, bool &prepend) {
  std::vector<Component> parts;
  KVRT_RETURN_IF_ERROR(flatten(JsonFields::member(root, "normalizer"),
                               "normalizer", "normalizers", f, parts));
  metaspace = prepend = false;
  for (const Component &c : parts) {
    if (c.type == "Replace" && !metaspace &&
        stringPattern(*c.value) == std::optional<std::string>(" ") &&
        stringMember(*c.value, "content", kMetaspace)) {
      metaspace = true;
    } else if (c.type == "Prepend" && !prepend &&
               stringMember(*c.value, "prepend", kMetaspace)) {
      prepend = true;
    } else {
      return f.error(c.field, "(" + quote(c.type) +
                                  ") is not supported; the supported "
                                  "normalizers are none, or Replace(' ', "
                                  "'\u2581') with Prepend('\u2581')");
    }
  }
  if (prepend && !metaspace)
    return f.error("normalizer", "prepends '\u2581' without replacing spaces "
                                 "by it, which is not supported");
  return Status::ok();
}

/// Pre-tokenizer: none, or one of the byte-level pipelines.
Status readPreTokenizer(const json::Value &root, const JsonFields &f,
                        JsonPipeline &out, bool &byteLevel) {
  std::vector<Component> parts;
  KVRT_RETURN_IF_ERROR(flatten(JsonFields::member(root, "pre_tokenizer"),
                               "pre_tokenizer", "pretokenizers", f, parts));
  byteLevel = false;
  if (parts.empty())
    return Status::ok();
  const Component &last = parts.back();
  if (last.type != "ByteLevel")
    return f.error(last.field, "(" + quote(last.type) +
                                   ") is not supported; byte-level "
                                   "pipelines end with ByteLevel");
  byteLevel = true;
  bool useRegex = true;
  out.addSpacePrefix = true; // tokenizers' defaults
  KVRT_RETURN_IF_ERROR(f.optionalBool(*last.value, "use_regex",
                                      last.field + ".use_regex", useRegex));
  KVRT_RETURN_IF_ERROR(f.optionalBool(*last.value, "add_prefix_space",
                                      last.field + ".add_prefix_space",
                                      out.addSpacePrefix));
  std::string unsupported =
      "is not supported; the supported byte-level pre-tokenizers are "
      "ByteLevel, Digits(individual) + ByteLevel, and Split(the GPT-2, "
      "Llama-3 or Qwen2 regex) + ByteLevel(use_regex = false)";
  if (parts.size() == 1) {
    out.preTokenizer =
        useRegex ? PreTokenizerKind::Gpt2 : PreTokenizerKind::None;
    return Status::ok();
  }
  if (parts.size() != 2)
    return f.error("pre_tokenizer", unsupported);
  const Component &first = parts[0];
  if (first.type == "Digits" && useRegex) {
    bool individual = false;
    KVRT_RETURN_IF_ERROR(f.optionalBool(*first.value, "individual_digits",
                                        first.field + ".individual_digits",
                                        individual));
    if (!individual)
      return f.error(first.field, "keeps digit runs together, which is not "
                                  "supported (only individual_digits)");
    out.preTokenizer = PreTokenizerKind::SmolLM;
    return Status::ok();
  }
  if (first.type != "Split" || useRegex)
    return f.error("pre_tokenizer", unsupported);
  const json::Value *pattern = JsonFields::member(*first.value, "pattern");
  const json::Value *regex =
      pattern ? JsonFields::member(*pattern, "Regex") : nullptr;
  bool invert = false;
  KVRT_RETURN_IF_ERROR(
      f.optionalBool(*first.value, "invert", first.field + ".invert", invert));
  if (!regex || !regex->isString() || invert ||
      !stringMember(*first.value, "behavior", "Isolated"))
    return f.error(first.field, "must split on a regex, Isolated, not "
                                "inverted");
  const std::string &r = regex->asString();
  if (r == kGpt2Regex)
    out.preTokenizer = PreTokenizerKind::Gpt2;
  else if (r == kLlama3Regex)
    out.preTokenizer = PreTokenizerKind::Llama3;
  else if (r == kQwen2Regex)
    out.preTokenizer = PreTokenizerKind::Qwen2;
  else
    return f.error(first.field + ".pattern.Regex",
                   quote(r) + " is not the GPT-2, Llama-3 or Qwen2 "
                              "regex");
  return Status::ok();
}

/// Decoder: ByteLevel for byte-level models; Replace('▁', ' '),
/// ByteFallback, Fuse, Strip(' ', 1, 0) for metaspace ones.
Status readDecoder(const json::Value &root, const JsonFields &f,
                   const JsonPipeline &p, bool byteFallback) {
  std::vector<Component> parts;
  KVRT_RETURN_IF_ERROR(flatten(JsonFields::member(root, "decoder"), "decoder",
                               "decoders", f, parts));
  std::vector<std::string> types;
  for (const Component &c : parts)
    types.push_back(c.type);
  if (p.model == TokenizerModelKind::ByteLevelBpe) {
    if (types != std::vector<std::string>{"ByteLevel"})
      return f.error("decoder", "must be ByteLevel for a byte-level model");
    return Status::ok();
  }
  std::vector<std::string> expected = {"Replace"};
  if (byteFallback)
    expected.push_back("ByteFallback");
  expected.push_back("Fuse");
  if (p.addSpacePrefix)
    expected.push_back("Strip");
  bool ok = types == expected &&
            stringPattern(*parts[0].value) ==
                std::optional<std::string>(kMetaspace) &&
            stringMember(*parts[0].value, "content", " ");
  if (ok && p.addSpacePrefix) {
    const json::Value &strip = *parts.back().value;
    const json::Value *start = JsonFields::member(strip, "start");
    const json::Value *stop = JsonFields::member(strip, "stop");
    ok = stringMember(strip, "content", " ") && start && stop &&
         start->asInt() == 1 && stop->asInt() == 0;
  }
  if (!ok)
    return f.error("decoder",
                   std::string("must be Replace('\u2581', ' ')") +
                       (byteFallback ? ", ByteFallback" : "") + ", Fuse" +
                       (p.addSpacePrefix ? ", Strip(' ', 1, 0)" : "") +
                       " to undo this model's normalizer");
  return Status::ok();
}

/// The single id a TemplateProcessing special token stands for.
Status templateTokenId(const json::Value &processor, const json::Value &item,
                       const std::string &field, const JsonFields &f,
                       int64_t &id) {
  const json::Value *name = JsonFields::member(item, "id");
  if (!name || !name->isString())
    return f.error(field + ".id", "must be a string");
  const json::Value *specials = JsonFields::member(processor, "special_tokens");
  const json::Value *entry =
      specials ? JsonFields::member(*specials, name->asString()) : nullptr;
  const json::Value *ids = entry ? JsonFields::member(*entry, "ids") : nullptr;
  if (!ids || !ids->isArray() || ids->items().size() != 1 ||
      !ids->items()[0].asInt())
    return f.error(field, "names " + quote(name->asString()) +
                              ", which special_tokens does not give as one "
                              "integer id");
  id = *ids->items()[0].asInt();
  return Status::ok();
}

/// Post-processor: nothing, ByteLevel (offsets only) and/or a
/// TemplateProcessing that puts at most one token before and after.
Status readPostProcessor(const json::Value &root, const JsonFields &f,
                         JsonPipeline &out) {
  std::vector<Component> parts;
  KVRT_RETURN_IF_ERROR(flatten(JsonFields::member(root, "post_processor"),
                               "post_processor", "processors", f, parts));
  for (const Component &c : parts) {
    if (c.type == "ByteLevel")
      continue;
    if (c.type != "TemplateProcessing")
      return f.error(c.field, "(" + quote(c.type) +
                                  ") is not supported; the supported "
                                  "post-processors are ByteLevel and "
                                  "TemplateProcessing");
    const json::Value *single = JsonFields::member(*c.value, "single");
    std::string field = c.field + ".single";
    if (!single)
      return f.error(field, "is missing");
    KVRT_RETURN_IF_ERROR(f.expect(*single, Kind::Array, field));
    bool seenSequence = false;
    for (size_t i = 0; i < single->items().size(); ++i) {
      const json::Value &item = single->items()[i];
      std::string itemField = field + "[" + std::to_string(i) + "]";
      KVRT_RETURN_IF_ERROR(f.expect(item, Kind::Object, itemField));
      if (JsonFields::member(item, "Sequence")) {
        if (seenSequence)
          return f.error(itemField, "repeats the sequence");
        seenSequence = true;
        continue;
      }
      const json::Value *special = JsonFields::member(item, "SpecialToken");
      if (!special)
        return f.error(itemField, "is neither SpecialToken nor Sequence");
      int64_t id = 0;
      KVRT_RETURN_IF_ERROR(templateTokenId(*c.value, *special,
                                           itemField + ".SpecialToken", f, id));
      std::optional<int64_t> &slot = seenSequence ? out.eosId : out.bosId;
      if (slot)
        return f.error(itemField, "adds a second token on the same side; "
                                  "only one BOS and one EOS are supported");
      slot = id;
    }
    if (!seenSequence)
      return f.error(field, "has no Sequence");
  }
  return Status::ok();
}

} // namespace

StatusOr<JsonPipeline> readJsonPipeline(const json::Value &root,
                                        bool byteFallback,
                                        const JsonFields &f) {
  JsonPipeline p;
  bool metaspace, prepend, byteLevel;
  KVRT_RETURN_IF_ERROR(readNormalizer(root, f, metaspace, prepend));
  KVRT_RETURN_IF_ERROR(readPreTokenizer(root, f, p, byteLevel));
  if (byteLevel && metaspace)
    return f.error("normalizer", "replaces spaces by '\u2581' in a byte-level "
                                 "model, which is not supported");
  if (!byteLevel && !metaspace)
    return f.error("pre_tokenizer", "is neither ByteLevel nor paired with a "
                                    "'\u2581' normalizer; the model kind is "
                                    "not supported");
  if (metaspace) {
    p.model = TokenizerModelKind::MetaspaceBpe;
    p.addSpacePrefix = prepend;
  }
  KVRT_RETURN_IF_ERROR(readDecoder(root, f, p, byteFallback));
  KVRT_RETURN_IF_ERROR(readPostProcessor(root, f, p));
  return p;
}

} // namespace kvrt::tokenizer
