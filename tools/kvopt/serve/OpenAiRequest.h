//===- OpenAiRequest.h - Reading an OpenAI-style completion request -*- C++
//-*-===//
//
// The body of POST /v1/completions and /v1/chat/completions, read field by
// field from hostile JSON. Every field this server reads is checked for its
// type and range; a field it would not honour (best_of, penalties, tools,
// echo in a stream, ...) or does not know is refused with a sentence that
// names it, rather than silently ignored.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_SERVE_OPENAIREQUEST_H
#define KVOPT_TOOLS_KVOPT_SERVE_OPENAIREQUEST_H

#include "kvrt/Sampling.h"
#include "kvrt/Tokenizer.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvopt::serve {

enum class Endpoint { Completions, ChatCompletions };

/// An answer other than 200: the HTTP status and OpenAI's error fields.
struct ApiError {
  int status = 400;
  std::string message;
  /// "invalid_request_error", "server_error", ...
  std::string type = "invalid_request_error";
  /// The request field at fault; empty when none.
  std::string param;
  /// "model_not_found" and the like; empty for null.
  std::string code;
};

/// One prompt of a completions request: text, or token ids.
struct PromptInput {
  std::string text;
  std::vector<int32_t> ids;
  bool isIds = false;
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Completions;
  /// Completions: one prompt, or OpenAI's batch of several, each answered
  /// by `n` choices of its own.
  std::vector<PromptInput> prompts;
  /// Chat completions: the conversation.
  std::vector<kvrt::ChatMessage> messages;
  /// Absent: 16 for completions (OpenAI's default), the rest of the
  /// context for chat.
  std::optional<int64_t> maxTokens;
  kvrt::SamplingParams sampling;
  /// Whether the request named a seed (otherwise the server draws one).
  bool seedGiven = false;
  bool stream = false;
  /// stream_options.include_usage: a last chunk with the token counts.
  bool includeUsage = false;
  /// vLLM's extension: generate past end-of-sequence tokens.
  bool ignoreEos = false;
  /// vLLM's extension: tokens that end the answer as end-of-sequence does
  /// (not shown; ignore_eos does not cover them).
  std::vector<int32_t> stopTokenIds;
  /// vLLM's extension: no end-of-sequence or stop token is drawn, and no
  /// stop string looked for, in the first this many tokens.
  int64_t minTokens = 0;
  std::vector<std::string> stop;
  /// Log probabilities of each sampled token and of the `logprobs` most
  /// likely beside it (completions: `logprobs`; chat: `top_logprobs` with
  /// `logprobs: true`); -1: none.
  int32_t logprobs = -1;
  /// Completions: the prompt's text before the answer's, and with
  /// `logprobs` its tokens' log probabilities (the first has none).
  bool echo = false;
  /// Choices to generate from the prompt, each sampled apart.
  int64_t n = 1;
};

/// The most log probabilities beside each token a request may ask for.
constexpr int64_t kMaxLogprobs = 20;
/// The most choices a request may ask for (OpenAI's limit), and the most
/// prompts a batch may hold.
constexpr int64_t kMaxChoices = 128;
constexpr size_t kMaxPrompts = 128;

struct ParsedRequest {
  std::optional<CompletionRequest> request;
  /// Set when request is not.
  ApiError error;
};

/// The most tokens a request may ask for.
constexpr int64_t kMaxRequestTokens = int64_t(1) << 30;

/// Reads `body` for `endpoint`; `servedModel` is the only model name
/// accepted in its "model" field.
ParsedRequest parseCompletionRequest(std::string_view body, Endpoint endpoint,
                                     std::string_view servedModel);

/// vLLM's POST /tokenize body.
struct TokenizeRequest {
  std::string prompt;
  /// The tokenizer's begin and end tokens around the text, as a prompt
  /// gets them.
  bool addSpecial = true;
};

/// Reads a /tokenize body ("model", "prompt", "add_special_tokens"); none
/// with `error` set when it is refused.
std::optional<TokenizeRequest>
parseTokenizeRequest(std::string_view body, std::string_view servedModel,
                     ApiError &error);
/// Reads a /detokenize body ("model", "tokens": ids, checked against no
/// vocabulary here); none with `error` set when it is refused.
std::optional<std::vector<int32_t>>
parseDetokenizeRequest(std::string_view body, std::string_view servedModel,
                       ApiError &error);

} // namespace kvopt::serve

#endif // KVOPT_TOOLS_KVOPT_SERVE_OPENAIREQUEST_H
