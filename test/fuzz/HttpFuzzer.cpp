//===- HttpFuzzer.cpp - kvopt serve's request reading on arbitrary bytes --===//
//
// The bytes are what a client sends: the HTTP reader must answer with a
// request, a wait for more that stays within its limits, or a status and
// one sentence; a request's body then goes through every endpoint's field
// reader (completions, chat, tokenize, detokenize), which must accept it
// or name what it refuses.
//
//===----------------------------------------------------------------------===//
#include "FuzzCheck.h"

#include "tools/kvopt/serve/HttpRequest.h"
#include "tools/kvopt/serve/OpenAiRequest.h"

#include <cstdint>

namespace {

void checkSentence(const std::string &message) {
  kvopt::fuzz::require(!message.empty(), "empty refusal");
  kvopt::fuzz::require(kvrt::json::isValidUtf8(message),
                       "refusal is not UTF-8");
  kvopt::fuzz::require(message.find('\n') == std::string::npos,
                       "refusal spans lines:", message);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace kvopt::serve;
  std::string_view bytes(reinterpret_cast<const char *>(data), size);
  HttpLimits limits;
  limits.maxHeaderBytes = 4096;
  limits.maxHeaders = 16;
  limits.maxBodyBytes = 16384;
  HttpParse parse = parseHttpRequest(bytes, limits);
  switch (parse.state) {
  case HttpParse::State::NeedMore:
    // What a server buffers while it waits stays within the limits.
    kvopt::fuzz::require(size < limits.maxHeaderBytes + limits.maxBodyBytes,
                         "waits for more past the limits");
    return 0;
  case HttpParse::State::Refused:
    kvopt::fuzz::require(parse.status >= 400 && parse.status <= 505,
                         "refused without an error status");
    checkSentence(parse.error);
    return 0;
  case HttpParse::State::Complete:
    break;
  }
  const HttpRequest &request = parse.request;
  kvopt::fuzz::require(parse.consumed <= size, "consumed past the input");
  kvopt::fuzz::require(request.body.size() <= limits.maxBodyBytes,
                       "body past the limit");
  kvopt::fuzz::require(!request.path.empty() && request.path[0] == '/',
                       "path without a leading /");
  kvopt::fuzz::require(request.headers.size() <= limits.maxHeaders,
                       "headers past the limit");
  for (Endpoint endpoint : {Endpoint::Completions, Endpoint::ChatCompletions}) {
    ParsedRequest parsed = parseCompletionRequest(request.body, endpoint, "m");
    if (parsed.request)
      continue;
    kvopt::fuzz::require(parsed.error.status == 400 ||
                             parsed.error.status == 404,
                         "a field refused with a status other than 400/404");
    checkSentence(parsed.error.message);
  }
  ApiError tokenizeError, detokenizeError;
  if (!parseTokenizeRequest(request.body, "m", tokenizeError))
    checkSentence(tokenizeError.message);
  if (!parseDetokenizeRequest(request.body, "m", detokenizeError))
    checkSentence(detokenizeError.message);
  return 0;
}
