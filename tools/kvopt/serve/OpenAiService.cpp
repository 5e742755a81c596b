//===- OpenAiService.cpp --------------------------------------------------===//
#include "tools/kvopt/serve/OpenAiService.h"

#include "tools/kvopt/JsonWriter.h"
#include "tools/kvopt/serve/ChoiceStream.h"

#include "kvrt/Artifact.h"
#include "kvrt/Generation.h"
#include "kvrt/Quote.h"

#include <chrono>
#include <ctime>
#include <optional>
#include <random>
#include <sstream>

namespace kvopt::serve {
namespace {

using cli::JsonWriter;

/// How often a waiting answer checks that its client is still there.
constexpr std::chrono::milliseconds kClientCheck(200);

void respondJson(HttpExchange &exchange, int status, const std::string &body) {
  exchange.respond(status, "application/json", body);
}

std::string errorJson(const ApiError &error) {
  std::ostringstream out;
  JsonWriter json(out, JsonWriter::Layout::Compact);
  json.beginObject();
  json.key("error");
  json.beginObject();
  json.member("message", error.message);
  json.member("type", error.type);
  json.key("param");
  if (error.param.empty())
    json.null();
  else
    json.value(error.param);
  json.key("code");
  if (error.code.empty())
    json.null();
  else
    json.value(error.code);
  json.endObject();
  json.endObject();
  return out.str();
}

void respondError(HttpExchange &exchange, const ApiError &error) {
  respondJson(exchange, error.status, errorJson(error));
}

ApiError serverError(int status, std::string message) {
  ApiError error;
  error.status = status;
  error.type = "server_error";
  error.message = std::move(message);
  return error;
}

/// The members every completion object and chunk starts with.
struct Envelope {
  std::string id;
  const char *object;
  int64_t created;
  const std::string &model;

  void write(JsonWriter &json) const {
    json.member("id", id);
    json.member("object", object);
    json.member("created", created);
    json.member("model", model);
  }
};

/// One choice of a completion or a chunk: its text (a chat message or
/// delta, or a completion's text) and its finish reason (null: not yet).
struct Choice {
  size_t index = 0;
  std::string text;
  const char *finish = nullptr;
  /// A chat stream's first delta, which names the role.
  bool roleFirst = false;
  /// Asked-for log probabilities of a whole answer; null when not asked.
  const std::vector<ShownLogprob> *logprobs = nullptr;
};

/// OpenAI's legacy completions form: parallel arrays.
void writeCompletionLogprobs(JsonWriter &json,
                             const std::vector<ShownLogprob> &logprobs) {
  json.beginObject();
  json.key("tokens");
  json.beginArray();
  for (const ShownLogprob &l : logprobs)
    json.value(l.text);
  json.endArray();
  json.key("token_logprobs");
  json.beginArray();
  for (const ShownLogprob &l : logprobs)
    l.logprob ? json.value(*l.logprob) : json.null();
  json.endArray();
  json.key("top_logprobs");
  json.beginArray();
  for (const ShownLogprob &l : logprobs) {
    if (!l.logprob) {
      json.null();
      continue;
    }
    json.beginObject();
    for (const auto &[text, logprob] : l.top)
      json.member(text, logprob);
    json.endObject();
  }
  json.endArray();
  json.key("text_offset");
  json.beginArray();
  for (const ShownLogprob &l : logprobs)
    json.value(l.offset);
  json.endArray();
  json.endObject();
}

/// The chat form: one object per token, with its UTF-8 bytes.
void writeChatLogprobs(JsonWriter &json,
                       const std::vector<ShownLogprob> &logprobs) {
  auto token = [&](const std::string &text, double logprob) {
    json.member("token", text);
    json.member("logprob", logprob);
    json.key("bytes");
    json.beginArray();
    for (unsigned char byte : text)
      json.value(int64_t(byte));
    json.endArray();
  };
  json.beginObject();
  json.key("content");
  json.beginArray();
  for (const ShownLogprob &l : logprobs) {
    json.beginObject();
    token(l.text, l.logprob.value_or(0));
    json.key("top_logprobs");
    json.beginArray();
    for (const auto &[text, logprob] : l.top) {
      json.beginObject();
      token(text, logprob);
      json.endObject();
    }
    json.endArray();
    json.endObject();
  }
  json.endArray();
  json.endObject();
}

struct Usage {
  size_t prompt = 0, completion = 0;
};

/// A completion object, or a chunk of a streamed one: the envelope, the
/// choices (a chunk's usage comes with none), and the usage if given.
std::string completionJson(const Envelope &envelope, Endpoint endpoint,
                           bool chunk, const std::vector<Choice> &choices,
                           const std::optional<Usage> &usage) {
  std::ostringstream out;
  JsonWriter json(out, JsonWriter::Layout::Compact);
  json.beginObject();
  envelope.write(json);
  json.key("choices");
  json.beginArray();
  for (const Choice &choice : choices) {
    json.beginObject();
    json.member("index", choice.index);
    if (endpoint == Endpoint::ChatCompletions) {
      json.key(chunk ? "delta" : "message");
      json.beginObject();
      if (choice.roleFirst || !chunk)
        json.member("role", "assistant");
      if (!chunk || !choice.text.empty() || choice.roleFirst)
        json.member("content", choice.text);
      json.endObject();
    } else {
      json.member("text", choice.text);
    }
    json.key("logprobs");
    if (!choice.logprobs)
      json.null();
    else if (endpoint == Endpoint::ChatCompletions)
      writeChatLogprobs(json, *choice.logprobs);
    else
      writeCompletionLogprobs(json, *choice.logprobs);
    json.key("finish_reason");
    if (choice.finish)
      json.value(choice.finish);
    else
      json.null();
    json.endObject();
  }
  json.endArray();
  if (usage) {
    json.key("usage");
    json.beginObject();
    json.member("prompt_tokens", usage->prompt);
    json.member("completion_tokens", usage->completion);
    json.member("total_tokens", usage->prompt + usage->completion);
    json.endObject();
  }
  json.endObject();
  return out.str();
}

/// Server-Sent Events of one streamed answer.
class EventStream {
public:
  EventStream(HttpExchange &exchange, Envelope envelope, Endpoint endpoint)
      : exchange_(exchange), envelope_(std::move(envelope)),
        endpoint_(endpoint) {}

  bool chunk(Choice choice) {
    return event(completionJson(envelope_, endpoint_, true, {std::move(choice)},
                                std::nullopt));
  }
  bool usage(Usage usage) {
    return event(completionJson(envelope_, endpoint_, true, {}, usage));
  }
  bool event(const std::string &data) {
    return exchange_.send("data: " + data + "\n\n");
  }

private:
  HttpExchange &exchange_;
  Envelope envelope_;
  Endpoint endpoint_;
};

/// Echo: each prompt decoded as one stream, and with `wantsLogprobs` its
/// tokens as its first choice scored them, before the answers of its `n`
/// choices, whose offsets move past it.
void echoPrompts(const kvrt::Tokenizer &tokenizer,
                 const std::vector<std::vector<int32_t>> &prompts, size_t n,
                 bool wantsLogprobs, const std::vector<ChoiceStream> &streams,
                 std::vector<Choice> &choices,
                 std::vector<std::vector<ShownLogprob>> &shown) {
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t> &prompt = prompts[p];
    const std::vector<kvrt::TokenLogprob> &scored =
        streams[p * n].promptLogprobs();
    kvrt::TokenStreamDecoder promptText(tokenizer, /*skipSpecial=*/true);
    std::string prefix;
    std::vector<ShownLogprob> echoed;
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (wantsLogprobs)
        echoed.push_back(showLogprob(
            tokenizer, prompt[i], prefix.size(),
            i > 0 && i - 1 < scored.size() ? &scored[i - 1] : nullptr));
      prefix += promptText.push(prompt[i]);
    }
    prefix += promptText.finish();
    for (size_t c = p * n; c < (p + 1) * n; ++c) {
      choices[c].text = prefix + choices[c].text;
      for (ShownLogprob &l : shown[c])
        l.offset += prefix.size();
      shown[c].insert(shown[c].begin(), echoed.begin(), echoed.end());
    }
  }
}

/// Whether every id of request field `field` names a token of a
/// vocabulary of `vocab`; otherwise `error` says which does not.
bool inVocabulary(const std::vector<int32_t> &ids, const std::string &field,
                  int64_t vocab, ApiError &error) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= vocab) {
      error.param = field;
      error.message = "`" + field + "` item " + std::to_string(i) + " is id " +
                      std::to_string(ids[i]) + ", outside the vocabulary of " +
                      std::to_string(vocab) + " tokens";
      return false;
    }
  return true;
}

/// Whether `authorization` is "Bearer <key>", compared in time that does
/// not depend on where they differ.
bool presentsKey(const std::string *authorization, const std::string &key) {
  const std::string expected = "Bearer " + key;
  if (!authorization || authorization->size() != expected.size())
    return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < expected.size(); ++i)
    difference |= static_cast<unsigned char>((*authorization)[i] ^ expected[i]);
  return difference == 0;
}

/// The scheduler's and the engine's counters in Prometheus' text format.
std::string metricsText(const kvrt::SchedulerStats &s) {
  std::ostringstream out;
  auto metric = [&](const char *name, const char *type, const char *help,
                    uint64_t value) {
    out << "# HELP kvopt_" << name << " " << help << "\n# TYPE kvopt_" << name
        << " " << type << "\nkvopt_" << name << " " << value << "\n";
  };
  metric("requests_running", "gauge", "Requests in the engine.", s.running);
  metric("requests_waiting", "gauge", "Requests waiting for a place.",
         s.waiting);
  metric("requests_finished_total", "counter",
         "Requests that ran and ended, cancelled ones included.",
         s.finishedRequests);
  metric("prompt_tokens_total", "counter",
         "Tokens prefilled: prompts, and the contexts of preempted requests "
         "again.",
         s.promptTokens);
  metric("decode_tokens_total", "counter",
         "Tokens fed back by decode rows (each request's first token comes "
         "from its prefill).",
         s.decodeRows);
  metric("decode_steps_total", "counter", "Engine calls that ran decode rows.",
         s.decodeSteps);
  metric("preemptions_total", "counter",
         "Requests sent back to the queue for want of cache room.",
         s.preemptions);
  metric("recomputed_tokens_total", "counter",
         "Cached tokens that preemptions dropped, to be prefilled again.",
         s.recomputedTokens);
  metric("sequences_retained", "gauge",
         "Finished requests' caches kept for a request that continues one.",
         s.retained);
  metric("resumed_requests_total", "counter",
         "Requests whose prompt continued a kept cache.", s.resumedRequests);
  metric("reused_tokens_total", "counter",
         "Prompt tokens found in a kept cache, not prefilled again.",
         s.reusedTokens);
  metric("shared_prefix_requests_total", "counter",
         "Requests that started with cache pages another sequence holds "
         "(a common prefix).",
         s.sharedPrefixRequests);
  metric("shared_prefix_tokens_total", "counter",
         "Prompt tokens those pages held, not prefilled or stored again.",
         s.sharedPrefixTokens);
  // Histograms: cumulative buckets, as Prometheus reads them.
  auto histogram = [&](const char *name, const char *help,
                       const kvrt::LatencyHistogram &h) {
    out << "# HELP kvopt_" << name << " " << help << "\n# TYPE kvopt_" << name
        << " histogram\n";
    const std::vector<double> &bounds = kvrt::LatencyHistogram::bounds();
    uint64_t below = 0;
    for (size_t b = 0; b <= bounds.size(); ++b) {
      below += h.counts[b];
      out << "kvopt_" << name << "_bucket{le=\"";
      if (b < bounds.size())
        out << bounds[b];
      else
        out << "+Inf";
      out << "\"} " << below << "\n";
    }
    out << "kvopt_" << name << "_sum " << h.sum << "\nkvopt_" << name
        << "_count " << h.count << "\n";
  };
  histogram("request_queue_time_seconds",
            "From submission to a first place in the engine.", s.queueTime);
  histogram("time_to_first_token_seconds",
            "From submission to the first token.", s.timeToFirstToken);
  histogram("inter_token_latency_seconds",
            "Between consecutive tokens of a request.", s.interTokenLatency);
  histogram("e2e_request_latency_seconds",
            "From submission to the end of a request that ended without "
            "an error or a cancellation.",
            s.endToEnd);
  metric("kv_cache_bytes", "gauge", "Cache pages held by sequences.",
         s.engine.kvBytesInUse);
  metric("kv_cache_peak_bytes", "gauge",
         "The most cache pages held at once so far.", s.engine.peakKvBytes);
  return out.str();
}

} // namespace

OpenAiService::OpenAiService(kvrt::Scheduler &scheduler,
                             const kvrt::Artifact &artifact,
                             kvrt::Tokenizer tokenizer, std::string modelName,
                             std::string apiKey)
    : scheduler_(scheduler), artifact_(artifact),
      tokenizer_(std::move(tokenizer)), modelName_(std::move(modelName)),
      apiKey_(std::move(apiKey)), created_(int64_t(std::time(nullptr))) {}

void OpenAiService::handle(const HttpRequest &request, HttpExchange &exchange) {
  struct Route {
    const char *path, *method;
  };
  static const Route routes[] = {{"/health", "GET"},
                                 {"/metrics", "GET"},
                                 {"/v1/models", "GET"},
                                 {"/v1/completions", "POST"},
                                 {"/v1/chat/completions", "POST"},
                                 {"/tokenize", "POST"},
                                 {"/detokenize", "POST"},
                                 {"/tokenizer_info", "GET"}};
  const Route *route = nullptr;
  for (const Route &r : routes)
    if (request.path == r.path)
      route = &r;
  if (!route) {
    ApiError error;
    error.status = 404;
    error.message = "there is no endpoint " + kvrt::quote(request.path) +
                    "; kvopt serve answers /health, /metrics, /v1/models, "
                    "/v1/completions, /v1/chat/completions, /tokenize, "
                    "/detokenize and /tokenizer_info";
    return respondError(exchange, error);
  }
  if (request.method != route->method) {
    ApiError error;
    error.status = 405;
    error.message =
        request.path + " takes " + route->method + ", not " + request.method;
    return respondError(exchange, error);
  }
  const std::string &path = request.path;
  if (!apiKey_.empty() && path.rfind("/v1/", 0) == 0 &&
      !presentsKey(request.header("authorization"), apiKey_)) {
    ApiError error;
    error.status = 401;
    error.code = "invalid_api_key";
    error.message = "this server needs its API key: send the header "
                    "Authorization: Bearer <key>";
    return respondError(exchange, error);
  }
  if (path == "/health")
    return respondJson(exchange, 200, "{\"status\":\"ok\"}");
  if (path == "/metrics")
    return exchange.respond(200, "text/plain; version=0.0.4",
                            metricsText(scheduler_.stats()));
  if (path == "/v1/models") {
    std::ostringstream out;
    JsonWriter json(out, JsonWriter::Layout::Compact);
    json.beginObject();
    json.member("object", "list");
    json.key("data");
    json.beginArray();
    json.beginObject();
    json.member("id", modelName_);
    json.member("object", "model");
    json.member("created", created_);
    json.member("owned_by", "kvopt");
    json.member("max_model_len", artifact_.manifest().model().max_positions());
    json.endObject();
    json.endArray();
    json.endObject();
    return respondJson(exchange, 200, out.str());
  }
  if (path == "/tokenize" || path == "/detokenize" || path == "/tokenizer_info")
    return tokenizerEndpoint(request, exchange);
  complete(request, exchange,
           path == "/v1/completions" ? Endpoint::Completions
                                     : Endpoint::ChatCompletions);
}

void OpenAiService::tokenizerEndpoint(const HttpRequest &request,
                                      HttpExchange &exchange) {
  const kvrt::schema::ModelConfig &model = artifact_.manifest().model();
  std::ostringstream out;
  JsonWriter json(out, JsonWriter::Layout::Compact);
  json.beginObject();
  ApiError error;
  if (request.path == "/tokenizer_info") {
    auto special = [&](const char *name, int32_t id) {
      json.key(name);
      if (id < 0)
        json.null();
      else
        json.value(tokenizer_.decode({id}, false));
    };
    json.member("tokenizer_class", "kvopt");
    special("bos_token", tokenizer_.bosId());
    special("eos_token", tokenizer_.eosId());
    special("pad_token", -1);
    json.member("model_max_length", model.max_positions());
  } else if (request.path == "/tokenize") {
    std::optional<TokenizeRequest> parsed =
        parseTokenizeRequest(request.body, modelName_, error);
    if (!parsed)
      return respondError(exchange, error);
    std::vector<int32_t> ids =
        tokenizer_.encode(parsed->prompt, parsed->addSpecial);
    json.member("count", ids.size());
    json.member("max_model_len", model.max_positions());
    json.key("tokens");
    json.beginArray();
    for (int32_t id : ids)
      json.value(id);
    json.endArray();
  } else {
    std::optional<std::vector<int32_t>> ids =
        parseDetokenizeRequest(request.body, modelName_, error);
    if (!ids)
      return respondError(exchange, error);
    if (!inVocabulary(*ids, "tokens", model.vocab_size(), error))
      return respondError(exchange, error);
    json.member("prompt", tokenizer_.decode(*ids, false));
  }
  json.endObject();
  respondJson(exchange, 200, out.str());
}

bool OpenAiService::promptIds(const CompletionRequest &request,
                              std::vector<std::vector<int32_t>> &prompts,
                              ApiError &error) const {
  if (request.endpoint == Endpoint::ChatCompletions) {
    const kvrt::ChatTemplate &chat = tokenizer_.chatTemplate();
    if (chat.kind == kvrt::ChatTemplateKind::None) {
      error.param = "messages";
      error.message = "the model `" + modelName_ +
                      "` has no chat template; send a prompt to "
                      "/v1/completions";
      return false;
    }
    prompts.push_back(tokenizer_.encode(
        kvrt::applyChatTemplate(chat, request.messages, true), false));
    return true;
  }
  for (const PromptInput &prompt : request.prompts)
    prompts.push_back(prompt.isIds ? prompt.ids
                                   : tokenizer_.encode(prompt.text, true));
  return true;
}

bool OpenAiService::makeChoices(
    const CompletionRequest &request,
    const std::vector<std::vector<int32_t>> &prompts,
    std::vector<ChoiceRun> &choiceRuns, ApiError &error) const {
  const size_t n = size_t(request.n);
  const bool chat = request.endpoint == Endpoint::ChatCompletions;
  const int64_t context = artifact_.manifest().model().max_positions();
  const uint64_t drawnSeed =
      (uint64_t(std::random_device()()) << 32) | std::random_device()();
  for (size_t c = 0; c < prompts.size() * n; ++c) {
    const std::vector<int32_t> &prompt = prompts[c / n];
    const size_t i = c % n;
    kvrt::GenerateOptions options;
    options.maxNewTokens = request.maxTokens.value_or(
        chat ? context - int64_t(prompt.size()) : 16);
    options.sampling = request.sampling;
    // Choice i samples from seed + i, as vLLM's children do.
    options.sampling.seed =
        (request.seedGiven ? request.sampling.seed : drawnSeed) + uint64_t(i);
    options.stopAtEos = !request.ignoreEos;
    options.stopTokens = request.stopTokenIds;
    options.minNewTokens = request.minTokens;
    kvrt::LogprobOptions logprobs;
    logprobs.top = request.logprobs;
    logprobs.prompt = i == 0 && request.echo && request.logprobs >= 0;
    kvrt::StatusOr<kvrt::Generation> generation =
        kvrt::Generation::create(artifact_, prompt, options);
    if (!generation) {
      error.param = chat ? "messages" : "prompt";
      error.message =
          (prompts.size() > 1 ? "prompt " + std::to_string(c / n) + ": "
                              : std::string()) +
          generation.status().message();
      return false;
    }
    choiceRuns.push_back({std::move(*generation), logprobs});
  }
  return true;
}

void OpenAiService::complete(const HttpRequest &http, HttpExchange &exchange,
                             Endpoint endpoint) {
  ParsedRequest parsed =
      parseCompletionRequest(http.body, endpoint, modelName_);
  if (!parsed.request)
    return respondError(exchange, parsed.error);
  const CompletionRequest &request = *parsed.request;
  ApiError error;
  std::vector<std::vector<int32_t>> prompts;
  if (!promptIds(request, prompts, error) ||
      !inVocabulary(request.stopTokenIds, "stop_token_ids",
                    artifact_.manifest().model().vocab_size(), error))
    return respondError(exchange, error);

  // One scheduler request per choice, n a prompt. A prompt's choices
  // share its cache pages (Scheduler.h), and only its first scores it for
  // echo. Every choice is made before any is submitted, and all are queued
  // at once: a refused prompt starts nothing, and the choices arrive
  // together (their common prompt is prefilled once).
  const size_t n = size_t(request.n);
  std::vector<ChoiceRun> choiceRuns;
  if (!makeChoices(request, prompts, choiceRuns, error))
    return respondError(exchange, error);
  auto signal = std::make_shared<kvrt::UpdateSignal>();
  std::vector<kvrt::Scheduler::Submission> submissions;
  for (ChoiceRun &run : choiceRuns)
    submissions.push_back({std::move(run.generation), run.logprobs, signal});
  kvrt::StatusOr<std::vector<std::shared_ptr<kvrt::Request>>> submitted =
      scheduler_.submitAll(std::move(submissions));
  if (!submitted)
    return respondError(exchange,
                        serverError(503, submitted.status().message()));
  std::vector<std::shared_ptr<kvrt::Request>> requests = std::move(*submitted);
  auto cancelAll = [&] {
    for (const std::shared_ptr<kvrt::Request> &r : requests)
      r->cancel();
  };

  const bool chat = endpoint == Endpoint::ChatCompletions;
  Envelope envelope{
      std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(created_) +
          "-" + std::to_string(nextId_++),
      chat ? (request.stream ? "chat.completion.chunk" : "chat.completion")
           : "text_completion",
      int64_t(std::time(nullptr)), modelName_};
  EventStream events(exchange, envelope, endpoint);
  const bool wantsLogprobs = request.logprobs >= 0;
  bool open = !request.stream || exchange.beginStream("text/event-stream");
  std::vector<ChoiceStream> streams;
  std::vector<Choice> choices(requests.size());
  std::vector<std::vector<ShownLogprob>> shown(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    streams.emplace_back(tokenizer_, request.stop, wantsLogprobs,
                         size_t(request.minTokens));
    choices[i].index = i;
    if (request.stream && chat)
      open = open && events.chunk({i, "", nullptr, true});
  }
  if (!open) {
    cancelAll();
    return;
  }

  size_t unfinished = requests.size();
  while (unfinished > 0) {
    signal->wait(kClientCheck);
    for (size_t i = 0; i < requests.size(); ++i) {
      if (choices[i].finish)
        continue;
      ChoiceStream::Piece piece =
          streams[i].absorb(requests[i]->wait(std::chrono::milliseconds(0)));
      if (piece.failure) {
        cancelAll();
        ApiError failed = piece.failure->isOk()
                              ? serverError(503, "the server is shutting down")
                              : serverError(500, piece.failure->message());
        if (request.stream)
          events.event(errorJson(failed));
        else
          respondError(exchange, failed);
        return;
      }
      if (piece.stopped)
        requests[i]->cancel();
      if (piece.finish) {
        choices[i].finish = piece.finish;
        --unfinished;
      }
      if (!request.stream) {
        choices[i].text += piece.text;
        for (ShownLogprob &l : piece.logprobs)
          shown[i].push_back(std::move(l));
        continue;
      }
      if ((!piece.text.empty() || !piece.logprobs.empty()) &&
          !events.chunk({i, piece.text, nullptr, false,
                         wantsLogprobs ? &piece.logprobs : nullptr})) {
        cancelAll();
        return;
      }
      if (piece.finish && !events.chunk({i, "", piece.finish})) {
        cancelAll();
        return;
      }
    }
    if (unfinished > 0 && exchange.clientGone()) {
      cancelAll();
      return;
    }
  }

  Usage usage;
  for (const std::vector<int32_t> &prompt : prompts)
    usage.prompt += prompt.size();
  for (const ChoiceStream &s : streams)
    usage.completion += s.tokens();
  if (request.stream) {
    if (request.includeUsage)
      events.usage(usage);
    events.event("[DONE]");
    return;
  }
  if (request.echo)
    echoPrompts(tokenizer_, prompts, n, wantsLogprobs, streams, choices, shown);
  if (wantsLogprobs)
    for (size_t i = 0; i < choices.size(); ++i)
      choices[i].logprobs = &shown[i];
  respondJson(exchange, 200,
              completionJson(envelope, endpoint, false, choices, usage));
}

} // namespace kvopt::serve
