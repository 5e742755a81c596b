//===- OpenAiRequest.cpp --------------------------------------------------===//
#include "tools/kvopt/serve/OpenAiRequest.h"

#include "kvrt/Json.h"
#include "kvrt/Quote.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace kvopt::serve {
namespace {

using kvrt::json::Value;

/// A number as the request wrote it, for error messages.
std::string shown(const Value &value) {
  if (value.isNumber()) {
    if (std::optional<int64_t> exact = value.asInt())
      return std::to_string(*exact);
    std::ostringstream out;
    out << value.asDouble();
    return out.str();
  }
  if (value.isNull())
    return "null";
  return std::string(value.isArray() || value.isObject() ? "an " : "a ") +
         Value::kindName(value.kind());
}

/// Reads the members of one request object; the first problem wins.
class FieldReader {
public:
  explicit FieldReader(ApiError &error) : error_(error) {}
  bool failed() const { return failed_; }

  bool fail(std::string_view param, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_.param = std::string(param);
      error_.message = std::move(message);
    }
    return false;
  }

  bool number(std::string_view name, const Value &value, double low,
              bool lowOpen, double high, float &out) {
    if (!value.isNumber() || !std::isfinite(value.asDouble()) ||
        (lowOpen ? value.asDouble() <= low : value.asDouble() < low) ||
        value.asDouble() > high) {
      std::ostringstream range;
      range << (lowOpen ? "above " : "from ") << low << " to " << high;
      return fail(name, "`" + std::string(name) + "` must be a number " +
                            range.str() + ", not " + shown(value));
    }
    out = float(value.asDouble());
    return true;
  }

  bool integer(std::string_view name, const Value &value, int64_t low,
               int64_t high, int64_t &out) {
    std::optional<int64_t> exact =
        value.isNumber() ? value.asInt() : std::nullopt;
    if (!exact || *exact < low || *exact > high)
      return fail(name, "`" + std::string(name) + "` must be an integer from " +
                            std::to_string(low) + " to " +
                            std::to_string(high) + ", not " + shown(value));
    out = *exact;
    return true;
  }

  bool boolean(std::string_view name, const Value &value, bool &out) {
    if (!value.isBool())
      return fail(name, "`" + std::string(name) +
                            "` must be true or false, not " + shown(value));
    out = value.asBool();
    return true;
  }

  bool string(std::string_view name, const Value &value, std::string &out) {
    if (!value.isString())
      return fail(name, "`" + std::string(name) + "` must be a string, not " +
                            shown(value));
    out = value.asString();
    return true;
  }

  /// A field this server does not honour, accepted only at its neutral
  /// value (the one that changes nothing).
  bool neutral(std::string_view name, const Value &value, bool isNeutral,
               std::string_view neutralText) {
    if (isNeutral)
      return true;
    return fail(name, "`" + std::string(name) +
                          "` is not supported by kvopt serve; leave it out or "
                          "set it to " +
                          std::string(neutralText));
  }

private:
  ApiError &error_;
  bool failed_ = false;
};

/// A JSON array of token ids (unchecked against a vocabulary).
bool readTokenIds(FieldReader &reader, std::string_view name,
                  const Value &value, std::vector<int32_t> &out,
                  std::string_view part = {}) {
  // The field, or the part of it (an item of a batch) the ids are.
  const std::string shownName(part.empty() ? name : part);
  if (!value.isArray())
    return reader.fail(name, "`" + shownName +
                                 "` must be an array of token ids, not " +
                                 shown(value));
  const std::vector<Value> &ids = value.items();
  for (size_t i = 0; i < ids.size(); ++i) {
    std::optional<int64_t> id =
        ids[i].isNumber() ? ids[i].asInt() : std::nullopt;
    if (!id || *id < 0 || *id > INT32_MAX)
      return reader.fail(name, "`" + shownName + "` item " + std::to_string(i) +
                                   " is " + shown(ids[i]) + ", not a token id");
    out.push_back(int32_t(*id));
  }
  return true;
}

/// Reads a request body: a JSON object whose "model", if named, must be
/// the served one; every other member that is not null (null means the
/// default) goes to `field`, which returns false for a name it does not
/// read, refused as not a field of `what` requests. False on the first
/// problem, which `error` then holds.
template <typename Field>
bool readBody(std::string_view body, std::string_view servedModel,
              std::string_view what, ApiError &error, FieldReader &reader,
              Field field) {
  kvrt::StatusOr<Value> json = kvrt::json::parse(body, "the request body");
  if (!json) {
    error.message = json.status().message();
    return false;
  }
  if (!json->isObject()) {
    error.message =
        "the request body must be a JSON object, not " + shown(*json);
    return false;
  }
  for (const auto &[key, value] : json->members()) {
    if (reader.failed())
      break;
    if (value.isNull())
      continue;
    if (key == "model") {
      std::string model;
      if (reader.string(key, value, model) && model != servedModel) {
        error.status = 404;
        error.code = "model_not_found";
        reader.fail(key, "the model " + kvrt::quote(model) +
                             " does not exist; this server serves " +
                             kvrt::quote(servedModel));
      }
    } else if (!field(key, value)) {
      reader.fail(key, kvrt::quote(key) +
                           " is not a field kvopt serve reads in a " +
                           std::string(what) + " request");
    }
  }
  return !reader.failed();
}

bool readPrompt(FieldReader &reader, const Value &value,
                CompletionRequest &request) {
  if (value.isString()) {
    request.prompts.push_back({value.asString(), {}, false});
    return true;
  }
  if (!value.isArray() || value.items().empty())
    return reader.fail("prompt", "`prompt` must be a string or an array of "
                                 "token ids, not " +
                                     shown(value));
  const std::vector<Value> &items = value.items();
  // OpenAI's batch forms: an array of strings or of token id arrays.
  const bool texts = items[0].isString(), idLists = items[0].isArray();
  if (!texts && !idLists) {
    PromptInput one{"", {}, true};
    if (!readTokenIds(reader, "prompt", value, one.ids))
      return false;
    request.prompts.push_back(std::move(one));
    return true;
  }
  if (items.size() > kMaxPrompts)
    return reader.fail("prompt", "`prompt` holds " +
                                     std::to_string(items.size()) +
                                     " prompts; kvopt serve takes at most " +
                                     std::to_string(kMaxPrompts));
  for (size_t k = 0; k < items.size(); ++k) {
    const std::string name = "prompt[" + std::to_string(k) + "]";
    if (texts != items[k].isString() || idLists != items[k].isArray())
      return reader.fail("prompt", "`" + name + "` is " + shown(items[k]) +
                                       ", but `prompt[0]` is " +
                                       (texts ? "a string" : "an array") +
                                       ": a batch holds prompts of one form");
    PromptInput prompt{"", {}, idLists};
    if (texts)
      prompt.text = items[k].asString();
    else if (items[k].items().empty())
      return reader.fail("prompt", "`" + name +
                                       "` is an empty array of "
                                       "token ids");
    else if (!readTokenIds(reader, "prompt", items[k], prompt.ids, name))
      return false;
    request.prompts.push_back(std::move(prompt));
  }
  return true;
}

bool readMessages(FieldReader &reader, const Value &value,
                  CompletionRequest &request) {
  if (!value.isArray() || value.items().empty())
    return reader.fail("messages",
                       "`messages` must be a non-empty array of messages");
  for (size_t m = 0; m < value.items().size(); ++m) {
    const Value &message = value.items()[m];
    std::string at = "messages[" + std::to_string(m) + "]";
    if (!message.isObject())
      return reader.fail("messages", "`" + at + "` is not an object");
    kvrt::ChatMessage chat;
    bool haveContent = false;
    for (const auto &[key, field] : message.members()) {
      if (key == "role") {
        if (!field.isString() ||
            (field.asString() != "system" && field.asString() != "user" &&
             field.asString() != "assistant"))
          return reader.fail("messages", "`" + at +
                                             ".role` must be \"system\", "
                                             "\"user\" or \"assistant\"");
        chat.role = field.asString();
      } else if (key == "content") {
        haveContent = true;
        if (field.isString()) {
          chat.content = field.asString();
          continue;
        }
        if (!field.isArray())
          return reader.fail("messages",
                             "`" + at +
                                 ".content` must be a string or an array of "
                                 "text parts");
        for (const Value &part : field.items()) {
          const Value *type = part.find("type");
          const Value *text = part.find("text");
          if (!part.isObject() || !type || !type->isString() ||
              type->asString() != "text" || !text || !text->isString() ||
              part.members().size() != 2)
            return reader.fail("messages",
                               "`" + at +
                                   ".content` holds a part that is not "
                                   "{\"type\": \"text\", \"text\": ...}; "
                                   "kvopt serve reads text only");
          chat.content += text->asString();
        }
      } else if (key == "name") {
        // OpenAI's participant name: the chat templates here do not show it.
        if (!field.isString())
          return reader.fail("messages", "`" + at + ".name` must be a string");
      } else {
        return reader.fail("messages", kvrt::quote(at + "." + key) +
                                           " is not supported by kvopt "
                                           "serve (messages carry role and "
                                           "content)");
      }
    }
    if (chat.role.empty() || !haveContent)
      return reader.fail("messages", "`" + at + "` needs a role and a content");
    request.messages.push_back(std::move(chat));
  }
  return true;
}

bool readStop(FieldReader &reader, const Value &value,
              CompletionRequest &request) {
  std::vector<const Value *> items;
  if (value.isString()) {
    items.push_back(&value);
  } else if (value.isArray() && value.items().size() <= 4) {
    for (const Value &item : value.items())
      items.push_back(&item);
  } else {
    return reader.fail("stop", "`stop` must be a string or an array of at "
                               "most 4 strings");
  }
  for (const Value *item : items) {
    if (!item->isString() || item->asString().empty())
      return reader.fail("stop", "`stop` holds " + shown(*item) +
                                     " where a non-empty string belongs");
    request.stop.push_back(item->asString());
  }
  return true;
}

} // namespace

ParsedRequest parseCompletionRequest(std::string_view body, Endpoint endpoint,
                                     std::string_view servedModel) {
  ParsedRequest parsed;
  ApiError &error = parsed.error;
  const bool chat = endpoint == Endpoint::ChatCompletions;
  CompletionRequest request;
  request.endpoint = endpoint;
  // OpenAI's default; kvopt run's is greedy.
  request.sampling.temperature = 1.0f;
  FieldReader reader(error);
  bool havePrompt = false, haveStreamOptions = false, chatLogprobs = false;
  int64_t topLogprobs = -1;
  int64_t integer = 0;
  auto field = [&](const std::string &key, const Value &value) {
    if (key == "prompt" && !chat) {
      havePrompt = readPrompt(reader, value, request);
    } else if (key == "messages" && chat) {
      havePrompt = readMessages(reader, value, request);
    } else if (key == "max_tokens" ||
               (key == "max_completion_tokens" && chat)) {
      // 0 only to score an echoed prompt (checked below).
      if (reader.integer(key, value, chat ? 1 : 0, kMaxRequestTokens, integer))
        request.maxTokens = integer;
    } else if (key == "temperature") {
      reader.number(key, value, 0, false, 2, request.sampling.temperature);
    } else if (key == "top_p") {
      reader.number(key, value, 0, true, 1, request.sampling.topP);
    } else if (key == "top_k") {
      // vLLM's extension; -1 and 0 keep every token.
      if (reader.integer(key, value, -1, INT32_MAX, integer))
        request.sampling.topK = int32_t(std::max<int64_t>(integer, 0));
    } else if (key == "repetition_penalty") {
      reader.number(key, value, 0, true, 100,
                    request.sampling.repetitionPenalty);
    } else if (key == "seed") {
      if (reader.integer(key, value, INT64_MIN, INT64_MAX, integer)) {
        request.sampling.seed = uint64_t(integer);
        request.seedGiven = true;
      }
    } else if (key == "stream") {
      reader.boolean(key, value, request.stream);
    } else if (key == "stream_options") {
      haveStreamOptions = true;
      const Value *usage = value.find("include_usage");
      if (!value.isObject() || value.members().size() != 1 || !usage)
        reader.fail(key, "`stream_options` must be {\"include_usage\": "
                         "true|false}");
      else
        reader.boolean("stream_options.include_usage", *usage,
                       request.includeUsage);
    } else if (key == "stop") {
      readStop(reader, value, request);
    } else if (key == "min_tokens") {
      reader.integer(key, value, 0, kMaxRequestTokens, request.minTokens);
    } else if (key == "stop_token_ids") {
      readTokenIds(reader, key, value, request.stopTokenIds);
    } else if (key == "ignore_eos") {
      reader.boolean(key, value, request.ignoreEos);
    } else if (key == "user") {
      std::string user;
      reader.string(key, value, user);
    } else if (key == "n") {
      reader.integer(key, value, 1, kMaxChoices, request.n);
    } else if (key == "best_of" && !chat) {
      reader.neutral(key, value,
                     value.isNumber() && value.asInt() == int64_t(1), "1");
    } else if (key == "presence_penalty") {
      reader.number(key, value, -2, false, 2, request.sampling.presencePenalty);
    } else if (key == "frequency_penalty") {
      reader.number(key, value, -2, false, 2,
                    request.sampling.frequencyPenalty);
    } else if (key == "logprobs" && chat) {
      reader.boolean(key, value, chatLogprobs);
    } else if (key == "logprobs") {
      if (reader.integer(key, value, 0, kMaxLogprobs, integer))
        request.logprobs = int32_t(integer);
    } else if (key == "top_logprobs" && chat) {
      reader.integer(key, value, 0, kMaxLogprobs, topLogprobs);
    } else if (key == "echo" && !chat) {
      reader.boolean(key, value, request.echo);
    } else if (key == "logit_bias") {
      reader.neutral(key, value, value.isObject() && value.members().empty(),
                     "{}");
    } else {
      return false;
    }
    return true;
  };
  if (!readBody(body, servedModel, chat ? "chat completion" : "completion",
                error, reader, field))
    return parsed;
  if (!havePrompt) {
    reader.fail(chat ? "messages" : "prompt",
                chat ? "a chat completion request needs `messages`"
                     : "a completion request needs `prompt`");
    return parsed;
  }
  if (haveStreamOptions && !request.stream) {
    reader.fail("stream_options", "`stream_options` needs `stream: true`");
    return parsed;
  }
  if (chat) {
    if (topLogprobs >= 0 && !chatLogprobs) {
      reader.fail("top_logprobs", "`top_logprobs` needs `logprobs: true`");
      return parsed;
    }
    if (chatLogprobs)
      request.logprobs = int32_t(std::max<int64_t>(topLogprobs, 0));
  }
  if (request.maxTokens == 0 && !request.echo) {
    reader.fail("max_tokens", "`max_tokens` of 0 asks for nothing; it is "
                              "allowed only with `echo`, to score a prompt");
    return parsed;
  }
  // Without max_tokens a completion makes 16, a chat the rest of the
  // context (checked when the prompt is known).
  const int64_t most =
      request.maxTokens.value_or(chat ? kMaxRequestTokens : 16);
  if (request.minTokens > most) {
    reader.fail("min_tokens",
                "`min_tokens` is " + std::to_string(request.minTokens) +
                    ", more than `max_tokens` (" + std::to_string(most) +
                    (request.maxTokens ? ")" : ", its default)"));
    return parsed;
  }
  if (request.stream && request.echo) {
    reader.fail("echo", "`echo` with `stream` is not supported by kvopt "
                        "serve; ask for a whole answer");
    return parsed;
  }
  const size_t prompts = std::max<size_t>(request.prompts.size(), 1);
  if (prompts > 1 && prompts * uint64_t(request.n) > uint64_t(kMaxChoices)) {
    reader.fail("n", std::to_string(prompts) + " prompts of " +
                         std::to_string(request.n) + " choices make " +
                         std::to_string(prompts * uint64_t(request.n)) +
                         " choices; kvopt serve makes at most " +
                         std::to_string(kMaxChoices) + " a request");
    return parsed;
  }
  parsed.request = std::move(request);
  return parsed;
}

std::optional<TokenizeRequest>
parseTokenizeRequest(std::string_view body, std::string_view servedModel,
                     ApiError &error) {
  TokenizeRequest request;
  FieldReader reader(error);
  bool havePrompt = false;
  auto field = [&](const std::string &key, const Value &value) {
    if (key == "prompt")
      havePrompt = reader.string(key, value, request.prompt);
    else if (key == "add_special_tokens")
      reader.boolean(key, value, request.addSpecial);
    else
      return false;
    return true;
  };
  if (!readBody(body, servedModel, "tokenize", error, reader, field))
    return std::nullopt;
  if (!havePrompt) {
    reader.fail("prompt", "a tokenize request needs `prompt`");
    return std::nullopt;
  }
  return request;
}

std::optional<std::vector<int32_t>>
parseDetokenizeRequest(std::string_view body, std::string_view servedModel,
                       ApiError &error) {
  std::vector<int32_t> tokens;
  FieldReader reader(error);
  bool haveTokens = false;
  auto field = [&](const std::string &key, const Value &value) {
    if (key != "tokens")
      return false;
    haveTokens = readTokenIds(reader, key, value, tokens);
    return true;
  };
  if (!readBody(body, servedModel, "detokenize", error, reader, field))
    return std::nullopt;
  if (!haveTokens) {
    reader.fail("tokens", "a detokenize request needs `tokens`");
    return std::nullopt;
  }
  return tokens;
}

} // namespace kvopt::serve
