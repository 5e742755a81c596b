//===- OpenAiService.h - The OpenAI-style endpoints of kvopt serve -*- C++
//-*-===//
//
// GET /health, GET /v1/models, POST /v1/completions and POST
// /v1/chat/completions over one artifact's scheduler, and vLLM's tokenizer
// endpoints (/tokenize, /detokenize, /tokenizer_info): prompts tokenized
// (chat through the artifact's template), tokens decoded to text as they
// come, stop strings applied, answers whole or as Server-Sent Events. A
// request whose client goes away is cancelled, so its place in the batch
// goes to the next one.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SERVE_OPENAISERVICE_H
#define KVOPT_TOOLS_KVOPT_SERVE_OPENAISERVICE_H

#include "tools/kvopt/serve/HttpServer.h"
#include "tools/kvopt/serve/OpenAiRequest.h"

#include "kvrt/Generation.h"
#include "kvrt/Scheduler.h"
#include "kvrt/Tokenizer.h"

#include <atomic>
#include <cstdint>
#include <string>

namespace kvopt::serve {

class OpenAiService {
public:
  /// `modelName` is what clients name in "model" and /v1/models lists;
  /// with an `apiKey`, the /v1/ endpoints need "Authorization: Bearer
  /// <apiKey>" (/health and /metrics stay open, as in vLLM).
  OpenAiService(kvrt::Scheduler &scheduler, const kvrt::Artifact &artifact,
                kvrt::Tokenizer tokenizer, std::string modelName,
                std::string apiKey = "");

  void handle(const HttpRequest &request, HttpExchange &exchange);

private:
  void complete(const HttpRequest &request, HttpExchange &exchange,
                Endpoint endpoint);
  /// vLLM's /tokenize, /detokenize and /tokenizer_info (what
  /// lm-evaluation-harness's remote tokenizer reads), with the artifact's
  /// tokenizer.
  void tokenizerEndpoint(const HttpRequest &request, HttpExchange &exchange);
  /// What one choice runs.
  struct ChoiceRun {
    kvrt::Generation generation;
    kvrt::LogprobOptions logprobs;
  };
  /// Each choice's run, choice p * n + i being prompt p's i-th, sampled
  /// from seed + i; false with `error` set when a prompt is refused.
  bool makeChoices(const CompletionRequest &request,
                   const std::vector<std::vector<int32_t>> &prompts,
                   std::vector<ChoiceRun> &choiceRuns, ApiError &error) const;
  /// Each prompt's token ids (a chat's conversation is one prompt), or
  /// why there are none.
  bool promptIds(const CompletionRequest &request,
                 std::vector<std::vector<int32_t>> &prompts,
                 ApiError &error) const;

  kvrt::Scheduler &scheduler_;
  const kvrt::Artifact &artifact_;
  kvrt::Tokenizer tokenizer_;
  const std::string modelName_;
  const std::string apiKey_;
  const int64_t created_;
  std::atomic<uint64_t> nextId_{1};
};

} // namespace kvopt::serve

#endif // KVOPT_TOOLS_KVOPT_SERVE_OPENAISERVICE_H
