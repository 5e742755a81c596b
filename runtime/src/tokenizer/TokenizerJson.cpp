//===- TokenizerJson.cpp - TokenizerSpec from tokenizer.json --------------===//
//
// Reads the BPE model, the added tokens and the special token names of a
// Hugging Face tokenizer.json and its tokenizer_config.json. Ids are checked
// before anything is allocated from them: together, model.vocab and
// added_tokens must name ids 0 to N-1 exactly once.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Tokenizer.h"

#include "kvrt/Quote.h"
#include "runtime/src/tokenizer/JsonFields.h"
#include "runtime/src/tokenizer/JsonPipeline.h"
#include "runtime/src/tokenizer/SpecCheck.h"

#include <algorithm>
#include <unordered_map>

namespace kvrt {

using namespace tokenizer;

namespace {

using Kind = json::Value::Kind;

constexpr SpecFieldNames kJsonFieldNames = {
    "model.vocab", "token types", "scores", "model.merges", "added_tokens"};

/// An id read from the file, not yet trusted.
Status readId(const json::Value &v, const std::string &field,
              const JsonFields &f, int32_t &id) {
  std::optional<int64_t> n = v.asInt();
  if (!v.isNumber() || !n)
    return f.error(field, "must be an integer id");
  if (*n < 0 || *n >= static_cast<int64_t>(kMaxVocabSize))
    return f.error(field, "is " + std::to_string(*n) + "; ids are 0 to " +
                              std::to_string(kMaxVocabSize - 1));
  id = static_cast<int32_t>(*n);
  return Status::ok();
}

/// The BPE model's own fields.
struct JsonModel {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  std::optional<std::string> unkToken;
  bool byteFallback = false;
  bool fuseUnknown = false;
  bool ignoreMerges = false;
};

Status readMerges(const json::Value &model, const JsonFields &f,
                  JsonModel &out) {
  const json::Value *merges = JsonFields::member(model, "merges");
  if (!merges)
    return f.error("model.merges", "is missing");
  KVRT_RETURN_IF_ERROR(f.expect(*merges, Kind::Array, "model.merges"));
  out.merges.reserve(merges->items().size());
  for (size_t i = 0; i < merges->items().size(); ++i) {
    const json::Value &m = merges->items()[i];
    std::string field = "model.merges[" + std::to_string(i) + "]";
    if (m.isString()) {
      // "left right" with exactly one space, as tokenizers requires.
      const std::string &s = m.asString();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != s.npos)
        return f.error(field,
                       quote(s) + " is not two tokens separated by one space");
      out.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.isArray() && m.items().size() == 2 &&
               m.items()[0].isString() && m.items()[1].isString()) {
      out.merges.emplace_back(m.items()[0].asString(), m.items()[1].asString());
    } else {
      return f.error(field, "must be a \"left right\" string or a pair of "
                            "strings");
    }
  }
  return Status::ok();
}

Status readModel(const json::Value &root, const JsonFields &f, JsonModel &out) {
  const json::Value *model = JsonFields::member(root, "model");
  if (!model)
    return f.error("model", "is missing");
  KVRT_RETURN_IF_ERROR(f.expect(*model, Kind::Object, "model"));
  std::string type = JsonFields::typeOf(*model);
  if (!type.empty() && type != "BPE")
    return f.error("model.type",
                   "is " + quote(type) + "; only BPE models are supported");
  if (const json::Value *dropout = JsonFields::member(*model, "dropout"))
    if (!dropout->isNumber() || dropout->asDouble() != 0)
      return f.error("model.dropout", "is set; BPE dropout makes encoding "
                                      "random and is not supported");
  for (const char *affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json::Value *v = JsonFields::member(*model, affix))
      if (!v->isString() || !v->asString().empty())
        return f.error(std::string("model.") + affix, "is not supported");

  const json::Value *vocab = JsonFields::member(*model, "vocab");
  if (!vocab)
    return f.error("model.vocab", "is missing");
  KVRT_RETURN_IF_ERROR(f.expect(*vocab, Kind::Object, "model.vocab"));
  out.vocab.reserve(vocab->members().size());
  for (const auto &[text, idValue] : vocab->members()) {
    int32_t id;
    KVRT_RETURN_IF_ERROR(
        readId(idValue, "model.vocab[" + quote(text) + "]", f, id));
    out.vocab.emplace_back(text, id);
  }
  KVRT_RETURN_IF_ERROR(readMerges(*model, f, out));
  KVRT_RETURN_IF_ERROR(
      f.optionalString(*model, "unk_token", "model.unk_token", out.unkToken));
  KVRT_RETURN_IF_ERROR(f.optionalBool(*model, "byte_fallback",
                                      "model.byte_fallback", out.byteFallback));
  KVRT_RETURN_IF_ERROR(
      f.optionalBool(*model, "fuse_unk", "model.fuse_unk", out.fuseUnknown));
  return f.optionalBool(*model, "ignore_merges", "model.ignore_merges",
                        out.ignoreMerges);
}

Status readAddedTokens(const json::Value &root, const JsonFields &f,
                       std::vector<AddedTokenSpec> &out) {
  const json::Value *added = JsonFields::member(root, "added_tokens");
  if (!added)
    return Status::ok();
  KVRT_RETURN_IF_ERROR(f.expect(*added, Kind::Array, "added_tokens"));
  for (size_t i = 0; i < added->items().size(); ++i) {
    const json::Value &t = added->items()[i];
    std::string field = "added_tokens[" + std::to_string(i) + "]";
    KVRT_RETURN_IF_ERROR(f.expect(t, Kind::Object, field));
    AddedTokenSpec spec;
    const json::Value *id = JsonFields::member(t, "id");
    if (!id)
      return f.error(field + ".id", "is missing");
    KVRT_RETURN_IF_ERROR(readId(*id, field + ".id", f, spec.id));
    std::optional<std::string> content;
    KVRT_RETURN_IF_ERROR(
        f.optionalString(t, "content", field + ".content", content));
    if (!content || content->empty())
      return f.error(field + ".content", "is missing or empty");
    spec.content = std::move(*content);
    // tokenizers' defaults for absent flags.
    spec.normalized = true;
    KVRT_RETURN_IF_ERROR(
        f.optionalBool(t, "special", field + ".special", spec.special));
    KVRT_RETURN_IF_ERROR(
        f.optionalBool(t, "lstrip", field + ".lstrip", spec.lstrip));
    KVRT_RETURN_IF_ERROR(
        f.optionalBool(t, "rstrip", field + ".rstrip", spec.rstrip));
    KVRT_RETURN_IF_ERROR(f.optionalBool(t, "normalized", field + ".normalized",
                                        spec.normalized));
    KVRT_RETURN_IF_ERROR(f.optionalBool(
        t, "single_word", field + ".single_word", spec.singleWord));
    out.push_back(std::move(spec));
  }
  return Status::ok();
}

/// Lays model.vocab and added_tokens out by id, checking they cover ids 0 to
/// N-1 once each, and marks added tokens the BPE model does not know.
Status layOutVocabulary(JsonModel &model, std::vector<AddedTokenSpec> &added,
                        const JsonFields &f, TokenizerSpec &spec) {
  // Sorting a copy of the ids finds duplicates and holes before any table
  // sized by the largest id exists.
  std::vector<std::pair<int32_t, std::string_view>> byId;
  byId.reserve(model.vocab.size());
  for (const auto &[text, id] : model.vocab)
    byId.emplace_back(id, text);
  std::sort(byId.begin(), byId.end());
  for (size_t i = 1; i < byId.size(); ++i)
    if (byId[i].first == byId[i - 1].first)
      return f.error("model.vocab",
                     "gives id " + std::to_string(byId[i].first) + " to both " +
                         quote(byId[i - 1].second) + " and " +
                         quote(byId[i].second));
  std::unordered_map<std::string_view, int32_t> modelIds;
  for (const auto &[text, id] : model.vocab)
    modelIds.emplace(text, id);

  size_t covered = byId.size();
  int64_t maxId = byId.empty() ? -1 : byId.back().first;
  for (size_t i = 0; i < added.size(); ++i) {
    AddedTokenSpec &t = added[i];
    auto known = modelIds.find(t.content);
    t.inModel = known != modelIds.end();
    std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (t.inModel && known->second != t.id)
      return f.error(field, quote(t.content) + " has id " +
                                std::to_string(t.id) +
                                " but model.vocab gives it id " +
                                std::to_string(known->second));
    auto inVocab = std::lower_bound(byId.begin(), byId.end(),
                                    std::make_pair(t.id, std::string_view()));
    bool idTaken = inVocab != byId.end() && inVocab->first == t.id;
    if (idTaken && !t.inModel)
      return f.error(field, "gives id " + std::to_string(t.id) + " to " +
                                quote(t.content) +
                                " but model.vocab gives it to " +
                                quote(inVocab->second));
    if (!idTaken)
      ++covered;
    maxId = std::max<int64_t>(maxId, t.id);
  }
  if (maxId < 0)
    return f.error("model.vocab", "is empty");
  if (static_cast<size_t>(maxId) + 1 != covered)
    return f.error("model.vocab",
                   "and added_tokens leave ids unused below the largest, " +
                       std::to_string(maxId) +
                       "; ids must run from 0 without gaps");

  spec.tokens.assign(static_cast<size_t>(maxId) + 1, std::string());
  spec.tokenTypes.assign(spec.tokens.size(), TokenType::Normal);
  for (auto &[text, id] : model.vocab)
    spec.tokens[id] = std::move(text);
  for (const AddedTokenSpec &t : added) {
    spec.tokens[t.id] = t.content;
    spec.tokenTypes[t.id] =
        t.special ? TokenType::Control : TokenType::UserDefined;
  }
  spec.addedTokens = std::move(added);
  return Status::ok();
}

/// The content of a tokenizer_config.json special token entry.
Status configToken(const json::Value &config, std::string_view key,
                   const JsonFields &f, std::optional<std::string> &out) {
  const json::Value *v = JsonFields::member(config, key);
  if (!v)
    return Status::ok();
  std::string field(key);
  if (v->isObject())
    return f.optionalString(*v, "content", field + ".content", out);
  KVRT_RETURN_IF_ERROR(f.expect(*v, Kind::String, field));
  out = v->asString();
  return Status::ok();
}

/// The chat template: a string, or a list of named templates of which the
/// one named "default" (else the first) is used.
Status configChatTemplate(const json::Value &config, const JsonFields &f,
                          std::string &out) {
  const json::Value *v = JsonFields::member(config, "chat_template");
  if (!v)
    return Status::ok();
  if (v->isString()) {
    out = v->asString();
    return Status::ok();
  }
  KVRT_RETURN_IF_ERROR(f.expect(*v, Kind::Array, "chat_template"));
  for (const json::Value &named : v->items()) {
    const json::Value *name = JsonFields::member(named, "name");
    const json::Value *text = JsonFields::member(named, "template");
    if (!text || !text->isString())
      return f.error("chat_template", "lists an entry without a template "
                                      "string");
    if (out.empty() ||
        (name && name->isString() && name->asString() == "default"))
      out = text->asString();
  }
  return Status::ok();
}

/// tokenizer_config.json's file name, next to the tokenizer.json named.
std::string configSourceName(const std::string &source) {
  constexpr std::string_view kName = "tokenizer.json";
  if (source.size() >= kName.size() &&
      source.compare(source.size() - kName.size(), kName.size(), kName) == 0)
    return source.substr(0, source.size() - kName.size()) +
           "tokenizer_config.json";
  return source + " (tokenizer_config.json)";
}

Status readConfig(std::string_view text, const std::string &source,
                  TokenizerSpec &spec, std::optional<int64_t> bosFromTemplate,
                  std::optional<int64_t> eosFromTemplate) {
  std::optional<std::string> bos, eos, unk, pad;
  std::string chatTemplate;
  JsonFields f(configSourceName(source));
  StatusOr<json::Value> config = json::Value();
  if (!text.empty()) {
    config = json::parse(text, f.source());
    if (!config)
      return config.status();
    KVRT_RETURN_IF_ERROR(f.expect(*config, Kind::Object, "the document"));
    KVRT_RETURN_IF_ERROR(configToken(*config, "bos_token", f, bos));
    KVRT_RETURN_IF_ERROR(configToken(*config, "eos_token", f, eos));
    KVRT_RETURN_IF_ERROR(configToken(*config, "unk_token", f, unk));
    KVRT_RETURN_IF_ERROR(configToken(*config, "pad_token", f, pad));
    KVRT_RETURN_IF_ERROR(configChatTemplate(*config, f, chatTemplate));
  }
  std::unordered_map<std::string_view, int32_t> ids;
  for (size_t i = 0; i < spec.tokens.size(); ++i)
    ids.emplace(spec.tokens[i], static_cast<int32_t>(i));
  auto resolve = [&](const std::optional<std::string> &name, const char *key,
                     int32_t &id) -> Status {
    if (!name)
      return Status::ok();
    auto it = ids.find(*name);
    if (it == ids.end())
      return f.error(key, "names " + quote(*name) +
                              ", which is not in the vocabulary");
    id = it->second;
    return Status::ok();
  };
  // The post-processor decides what encode adds; the config names the
  // tokens generation stops at and pads with.
  for (const auto &[name, id] :
       {std::pair("BOS", bosFromTemplate), std::pair("EOS", eosFromTemplate)})
    if (id && (*id < 0 || static_cast<uint64_t>(*id) >= spec.tokens.size()))
      return Status::error(source + ": post_processor adds " + name + " id " +
                           std::to_string(*id) + ", outside the vocabulary");
  spec.addBos = bosFromTemplate.has_value();
  spec.addEos = eosFromTemplate.has_value();
  spec.bosId = static_cast<int32_t>(bosFromTemplate.value_or(-1));
  spec.eosId = static_cast<int32_t>(eosFromTemplate.value_or(-1));
  if (!bosFromTemplate)
    KVRT_RETURN_IF_ERROR(resolve(bos, "bos_token", spec.bosId));
  KVRT_RETURN_IF_ERROR(resolve(eos, "eos_token", spec.eosId));
  if (spec.unkId < 0)
    KVRT_RETURN_IF_ERROR(resolve(unk, "unk_token", spec.unkId));
  KVRT_RETURN_IF_ERROR(resolve(pad, "pad_token", spec.padId));
  if (!chatTemplate.empty()) {
    StatusOr<ChatTemplate> detected =
        detectChatTemplate(chatTemplate, f.source() + ": chat_template");
    if (!detected)
      return detected.status();
    spec.chatTemplate = std::move(*detected);
    if (spec.chatTemplate.kind == ChatTemplateKind::Llama3 && spec.bosId >= 0)
      spec.chatTemplate.bosText = spec.tokens[spec.bosId];
  }
  return Status::ok();
}

} // namespace

StatusOr<TokenizerSpec>
tokenizerSpecFromJson(std::string_view tokenizerJson,
                      std::string_view tokenizerConfigJson,
                      const std::string &sourceName) {
  StatusOr<json::Value> root = json::parse(tokenizerJson, sourceName);
  if (!root)
    return root.status();
  JsonFields f(sourceName);
  KVRT_RETURN_IF_ERROR(f.expect(*root, Kind::Object, "the document"));

  JsonModel model;
  KVRT_RETURN_IF_ERROR(readModel(*root, f, model));
  std::vector<AddedTokenSpec> added;
  KVRT_RETURN_IF_ERROR(readAddedTokens(*root, f, added));
  StatusOr<JsonPipeline> pipeline =
      readJsonPipeline(*root, model.byteFallback, f);
  if (!pipeline)
    return pipeline.status();

  TokenizerSpec spec;
  spec.model = pipeline->model;
  spec.preTokenizer = pipeline->preTokenizer;
  spec.addSpacePrefix = pipeline->addSpacePrefix;
  spec.byteFallback = model.byteFallback;
  spec.fuseUnknown = model.fuseUnknown;
  spec.ignoreMerges = model.ignoreMerges;
  spec.merges = std::move(model.merges);
  std::optional<std::string> unkToken = model.unkToken;
  KVRT_RETURN_IF_ERROR(layOutVocabulary(model, added, f, spec));

  if (unkToken) {
    auto it = std::find(spec.tokens.begin(), spec.tokens.end(), *unkToken);
    if (it == spec.tokens.end())
      return f.error("model.unk_token",
                     quote(*unkToken) + " is not in model.vocab");
    spec.unkId = static_cast<int32_t>(it - spec.tokens.begin());
    spec.tokenTypes[spec.unkId] = TokenType::Unknown;
  }
  if (spec.byteFallback)
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      const std::string &t = spec.tokens[i];
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>')
        spec.tokenTypes[i] = TokenType::Byte;
    }
  KVRT_RETURN_IF_ERROR(readConfig(tokenizerConfigJson, sourceName, spec,
                                  pipeline->bosId, pipeline->eosId));
  KVRT_RETURN_IF_ERROR(checkTokenizerSpec(spec, sourceName, kJsonFieldNames));
  return spec;
}

} // namespace kvrt
