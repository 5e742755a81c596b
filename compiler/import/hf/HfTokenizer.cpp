//===- HfTokenizer.cpp - The tokenizer files of a Hugging Face folder -----===//
#include "compiler/import/hf/HfTokenizer.h"
#include "compiler/import/formats/FileBytes.h"
#include "compiler/import/formats/Quote.h"
#include "compiler/import/hf/HfImport.h"
#include "compiler/import/sentencepiece/SentencePieceModel.h"

#include "kvrt/Json.h"

#include <filesystem>

namespace kvopt::import {

namespace {

using kvrt::json::Value;

/// Reads the fields of tokenizer_config.json that a SentencePiece model
/// leaves open.
class ConfigReader {
public:
  ConfigReader(const Value &config, const std::string &source,
               const std::string &modelName, kvrt::GgufTokenizerFields &fields)
      : config(config), source(source), modelName(modelName), fields(fields) {}

  kvrt::Status read() {
    if (!config.isObject())
      return error("the document", "is not a JSON object");
    KVRT_RETURN_IF_ERROR(readFlag("add_bos_token", fields.addBosToken));
    KVRT_RETURN_IF_ERROR(readFlag("add_eos_token", fields.addEosToken));
    KVRT_RETURN_IF_ERROR(readToken("bos_token", fields.bosId));
    KVRT_RETURN_IF_ERROR(readToken("eos_token", fields.eosId));
    KVRT_RETURN_IF_ERROR(readToken("pad_token", fields.paddingId));
    return readChatTemplate();
  }

private:
  kvrt::Status error(const std::string &field,
                     const std::string &problem) const {
    return kvrt::Status::error(source + ": " + field + " " + problem);
  }

  /// The member `key`; null when absent or JSON null.
  const Value *member(const char *key) const {
    const Value *v = config.find(key);
    return v && !v->isNull() ? v : nullptr;
  }

  kvrt::Status readFlag(const char *key, std::optional<bool> &out) {
    const Value *v = member(key);
    if (!v)
      return kvrt::Status::ok();
    if (!v->isBool())
      return error(key, std::string("is a ") + Value::kindName(v->kind()) +
                            ", expected true or false");
    out = v->asBool();
    return kvrt::Status::ok();
  }

  /// A special token, written as its text or as {"content": text}.
  kvrt::Status readToken(const char *key, std::optional<int64_t> &id) {
    const Value *v = member(key);
    if (!v)
      return kvrt::Status::ok();
    const Value *content = v->isObject() ? v->find("content") : v;
    if (!content || !content->isString())
      return error(key, "is neither a token's text nor an object with a "
                        "\"content\" text");
    const std::string &text = content->asString();
    for (size_t i = 0; i < fields.tokens.size(); ++i)
      if (fields.tokens[i] == text) {
        id = int64_t(i);
        return kvrt::Status::ok();
      }
    return error(key, "names " + formats::quote(text) +
                          ", which is not a "
                          "piece of " +
                          modelName);
  }

  /// A string, or a list of named templates of which "default" (else the
  /// first) is the one used.
  kvrt::Status readChatTemplate() {
    const Value *v = member("chat_template");
    if (!v)
      return kvrt::Status::ok();
    if (v->isString()) {
      fields.chatTemplate = v->asString();
      return kvrt::Status::ok();
    }
    if (!v->isArray())
      return error("chat_template", "is neither a template nor a list of "
                                    "named templates");
    for (const Value &named : v->items()) {
      const Value *name = named.find("name");
      const Value *text = named.find("template");
      if (!text || !text->isString())
        return error("chat_template", "lists an entry without a template "
                                      "text");
      if (fields.chatTemplate.empty() ||
          (name && name->isString() && name->asString() == "default"))
        fields.chatTemplate = text->asString();
    }
    return kvrt::Status::ok();
  }

  const Value &config;
  const std::string &source;
  const std::string &modelName;
  kvrt::GgufTokenizerFields &fields;
};

kvrt::StatusOr<TokenizerSource> readSentencePiece(const std::string &dir) {
  std::string modelPath = dir + "/tokenizer.model";
  kvrt::StatusOr<formats::FileBytes> file = formats::FileBytes::map(modelPath);
  if (!file)
    return file.status();
  kvrt::StatusOr<kvrt::GgufTokenizerFields> fields =
      formats::readSentencePieceModel(*file);
  if (!fields)
    return fields.status();
  std::string configPath = dir + "/tokenizer_config.json";
  if (std::filesystem::exists(configPath)) {
    kvrt::StatusOr<std::string> text = readHfText(configPath);
    if (!text)
      return text.status();
    kvrt::StatusOr<Value> config = kvrt::json::parse(*text, configPath);
    if (!config)
      return config.status();
    KVRT_RETURN_IF_ERROR(
        ConfigReader(*config, configPath, modelPath, *fields).read());
  }
  // The artifact's vocabulary takes an absent id for llama.cpp's default,
  // so a model without one cannot be described.
  const std::pair<const char *, std::optional<int64_t>> required[] = {
      {"bos", fields->bosId}, {"eos", fields->eosId}};
  for (const auto &[name, id] : required)
    if (!id)
      return kvrt::Status::error(
          modelPath + ": the piece trainer_spec." + name +
          "_piece names is not a control piece of the model, and "
          "tokenizer_config.json gives no " +
          name + "_token; kvopt needs a BOS and an EOS token");
  TokenizerSource source;
  source.gguf = std::move(*fields);
  source.sourceName = modelPath;
  return source;
}

} // namespace

kvrt::StatusOr<TokenizerSource> readHfTokenizer(const std::string &dir) {
  std::string jsonPath = dir + "/tokenizer.json";
  if (!std::filesystem::exists(jsonPath)) {
    if (std::filesystem::exists(dir + "/tokenizer.model"))
      return readSentencePiece(dir);
    return kvrt::Status::error(dir + " has neither tokenizer.json nor "
                                     "tokenizer.model; kvopt needs one to "
                                     "run the model");
  }
  TokenizerSource source;
  kvrt::StatusOr<std::string> tokenizer = readHfText(jsonPath);
  if (!tokenizer)
    return tokenizer.status();
  source.tokenizerJson = std::move(*tokenizer);
  source.sourceName = jsonPath;
  if (std::filesystem::exists(dir + "/tokenizer_config.json")) {
    kvrt::StatusOr<std::string> config =
        readHfText(dir + "/tokenizer_config.json");
    if (!config)
      return config.status();
    source.tokenizerConfigJson = std::move(*config);
  }
  return source;
}

} // namespace kvopt::import
