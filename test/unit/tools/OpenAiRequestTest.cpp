//===- OpenAiRequestTest.cpp - Completion requests, field by field --------===//
#include "tools/kvopt/serve/OpenAiRequest.h"

#include <gtest/gtest.h>

using namespace kvopt::serve;

namespace {

CompletionRequest accepted(std::string_view body,
                           Endpoint endpoint = Endpoint::Completions) {
  ParsedRequest parsed = parseCompletionRequest(body, endpoint, "tiny");
  EXPECT_TRUE(parsed.request.has_value()) << parsed.error.message;
  return parsed.request.value_or(CompletionRequest{});
}

/// Expects `body` refused naming `param`, with `words` in the sentence.
void expectRefused(std::string_view body, std::string_view param,
                   std::string_view words,
                   Endpoint endpoint = Endpoint::Completions) {
  SCOPED_TRACE(std::string(body));
  ParsedRequest parsed = parseCompletionRequest(body, endpoint, "tiny");
  ASSERT_FALSE(parsed.request.has_value());
  EXPECT_EQ(parsed.error.status, 400);
  EXPECT_EQ(parsed.error.param, param);
  EXPECT_NE(parsed.error.message.find(words), std::string::npos)
      << parsed.error.message;
}

TEST(OpenAiRequest, ReadsACompletionWithOpenAisDefaults) {
  CompletionRequest r = accepted(R"({"model": "tiny", "prompt": "Once"})");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Once");
  EXPECT_FALSE(r.prompts[0].isIds);
  EXPECT_FALSE(r.maxTokens.has_value());
  EXPECT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.topP, 1.0f);
  EXPECT_FALSE(r.seedGiven);
  EXPECT_FALSE(r.stream);
}

TEST(OpenAiRequest, ReadsEverySupportedField) {
  CompletionRequest r = accepted(
      R"({"prompt": [1, 80, 147], "max_tokens": 7, "temperature": 0,
          "top_p": 0.5, "top_k": -1, "repetition_penalty": 1.2, "seed": -3,
          "stream": true, "stream_options": {"include_usage": true},
          "stop": ["\n", "END"], "ignore_eos": true, "user": "u", "n": 3,
          "stop_token_ids": [2, 7], "min_tokens": 5,
          "best_of": 1, "presence_penalty": -0.5, "frequency_penalty": 1.5,
          "logprobs": null, "echo": false, "logit_bias": {},
          "suffix": null})");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(r.prompts[0].isIds);
  EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{1, 80, 147}));
  EXPECT_EQ(r.maxTokens, 7);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_EQ(r.sampling.topP, 0.5f);
  EXPECT_EQ(r.sampling.topK, 0);
  EXPECT_EQ(r.sampling.repetitionPenalty, 1.2f);
  EXPECT_TRUE(r.seedGiven);
  EXPECT_EQ(r.sampling.seed, uint64_t(-3));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.includeUsage);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.ignoreEos);
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.stopTokenIds, (std::vector<int32_t>{2, 7}));
  EXPECT_EQ(r.minTokens, 5);
  EXPECT_EQ(r.sampling.presencePenalty, -0.5f);
  EXPECT_EQ(r.sampling.frequencyPenalty, 1.5f);
}

TEST(OpenAiRequest, ReadsABatchOfPrompts) {
  CompletionRequest texts = accepted(R"({"prompt": ["a", "b c"], "n": 2})");
  ASSERT_EQ(texts.prompts.size(), 2u);
  EXPECT_EQ(texts.prompts[1].text, "b c");
  EXPECT_FALSE(texts.prompts[1].isIds);
  CompletionRequest ids = accepted(R"({"prompt": [[1, 80], [1, 147, 201]]})");
  ASSERT_EQ(ids.prompts.size(), 2u);
  EXPECT_EQ(ids.prompts[1].ids, (std::vector<int32_t>{1, 147, 201}));
  expectRefused(R"({"prompt": [[1], []]})", "prompt",
                "`prompt[1]` is an empty array of token ids");
  expectRefused(R"({"prompt": [[1], [[2]]]})", "prompt",
                "`prompt[1]` item 0 is an array, not a token id");
  expectRefused(R"({"prompt": ["a", [2]]})", "prompt",
                "`prompt[1]` is an array, but `prompt[0]` is a string");
  expectRefused(R"({"prompt": [[1], "a"]})", "prompt", "prompts of one form");
  std::string many = R"({"prompt": [)";
  for (int i = 0; i < 129; ++i)
    many += std::string(i ? "," : "") + "\"x\"";
  expectRefused(many + "]}", "prompt",
                "holds 129 prompts; kvopt serve takes "
                "at most 128");
  expectRefused(R"({"prompt": ["a", "b", "c"], "n": 50})", "n",
                "3 prompts of 50 choices make 150 choices");
}

TEST(OpenAiRequest, ReadsAChatWithTextParts) {
  CompletionRequest r = accepted(
      R"({"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "name": "ann",
                        "content": [{"type": "text", "text": "Hi, "},
                                    {"type": "text", "text": "you"}]}],
          "max_completion_tokens": 3, "logprobs": false})",
      Endpoint::ChatCompletions);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hi, you");
  EXPECT_EQ(r.maxTokens, 3);
}

TEST(OpenAiRequest, RefusesFieldsOutOfRange) {
  expectRefused(R"({"prompt": "x", "n": 0})", "n", "from 1 to 128, not 0");
  expectRefused(R"({"prompt": "x", "min_tokens": 8, "max_tokens": 7})",
                "min_tokens", "`min_tokens` is 8, more than `max_tokens` (7)");
  expectRefused(R"({"prompt": "x", "min_tokens": 17})", "min_tokens",
                "more than `max_tokens` (16, its default)");
  expectRefused(R"({"prompt": "x", "min_tokens": -1})", "min_tokens",
                "from 0 to");
  expectRefused(R"({"prompt": "x", "stop_token_ids": [3, -1]})",
                "stop_token_ids", "item 1 is -1, not a token id");
  expectRefused(R"({"prompt": "x", "n": 129})", "n", "from 1 to 128");
  expectRefused(R"({"prompt": "x", "max_tokens": -1})", "max_tokens",
                "from 0 to 1073741824, not -1");
  expectRefused(R"({"prompt": "x", "max_tokens": 0})", "max_tokens",
                "allowed only with `echo`");
  expectRefused(R"({"messages": [{"role": "user", "content": "x"}],
                    "max_tokens": 0})",
                "max_tokens", "from 1 to", Endpoint::ChatCompletions);
  expectRefused(R"({"prompt": "x", "logprobs": 21})", "logprobs",
                "from 0 to 20, not 21");
  expectRefused(R"({"messages": [{"role": "user", "content": "x"}],
                    "logprobs": 1})",
                "logprobs", "true or false", Endpoint::ChatCompletions);
  expectRefused(R"({"messages": [{"role": "user", "content": "x"}],
                    "top_logprobs": 2})",
                "top_logprobs", "needs `logprobs: true`",
                Endpoint::ChatCompletions);
  expectRefused(R"({"prompt": "x", "max_tokens": 2.5})", "max_tokens",
                "not 2.5");
  expectRefused(R"({"prompt": "x", "max_tokens": "9"})", "max_tokens",
                "not a string");
  expectRefused(R"({"prompt": "x", "temperature": 2.5})", "temperature",
                "from 0 to 2, not 2.5");
  expectRefused(R"({"prompt": "x", "top_p": 0})", "top_p", "above 0 to 1");
  expectRefused(R"({"prompt": "x", "top_k": -2})", "top_k", "not -2");
  expectRefused(R"({"prompt": "x", "repetition_penalty": 0})",
                "repetition_penalty", "above 0");
  expectRefused(R"({"prompt": "x", "seed": 1e30})", "seed", "integer");
  expectRefused(R"({"prompt": "x", "stream": 1})", "stream", "true or false");
  expectRefused(R"({"prompt": "x", "stop": ""})", "stop", "non-empty string");
  expectRefused(R"({"prompt": "x", "stop": ["a","b","c","d","e"]})", "stop",
                "at most 4");
  expectRefused(R"({"prompt": "x", "stream_options": {"include_usage": true}})",
                "stream_options", "needs `stream: true`");
}

TEST(OpenAiRequest, RefusesPromptsItCannotRead) {
  expectRefused(R"({})", "prompt", "needs `prompt`");
  expectRefused(R"({"prompt": [1, -1]})", "prompt", "item 1 is -1");
  expectRefused(R"({"prompt": [1, 4294967296]})", "prompt", "not a token id");
  expectRefused(R"({"prompt": []})", "prompt", "string or an array");
  expectRefused(R"({"prompt": [1, [2]]})", "prompt", "not a token id");
  expectRefused(R"({"messages": []})", "messages", "non-empty array",
                Endpoint::ChatCompletions);
  expectRefused(R"({"messages": [{"role": "tool", "content": "x"}]})",
                "messages", "`messages[0].role`", Endpoint::ChatCompletions);
  expectRefused(R"({"messages": [{"role": "user"}]})", "messages",
                "needs a role and a content", Endpoint::ChatCompletions);
  expectRefused(
      R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
      "messages", "text only", Endpoint::ChatCompletions);
  expectRefused(R"({"messages": [{"role": "user", "content": "x",
                                  "tool_calls": []}]})",
                "messages", "tool_calls", Endpoint::ChatCompletions);
  // Each endpoint reads its own prompt field only.
  expectRefused(R"({"prompt": "x", "messages": []})", "messages", "not a field",
                Endpoint::Completions);
  expectRefused(R"({"messages": [{"role": "user", "content": "x"}],
                    "prompt": "x"})",
                "prompt", "not a field", Endpoint::ChatCompletions);
}

TEST(OpenAiRequest, ReadsLogprobsAndEcho) {
  CompletionRequest r = accepted(
      R"({"prompt": "x", "logprobs": 3, "echo": true, "max_tokens": 0})");
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.maxTokens, 0);
  EXPECT_EQ(accepted(R"({"prompt": "x"})").logprobs, -1);
  // lm-evaluation-harness sends token ids as a batch of one.
  CompletionRequest ids = accepted(R"({"prompt": [[1, 80, 147]]})");
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_TRUE(ids.prompts[0].isIds);
  EXPECT_EQ(ids.prompts[0].ids, (std::vector<int32_t>{1, 80, 147}));
  ParsedRequest chat = parseCompletionRequest(
      R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true,
          "top_logprobs": 5})",
      Endpoint::ChatCompletions, "tiny");
  ASSERT_TRUE(chat.request.has_value()) << chat.error.message;
  EXPECT_EQ(chat.request->logprobs, 5);
  chat = parseCompletionRequest(
      R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})",
      Endpoint::ChatCompletions, "tiny");
  ASSERT_TRUE(chat.request.has_value()) << chat.error.message;
  EXPECT_EQ(chat.request->logprobs, 0);
}

TEST(OpenAiRequest, ReadsTokenizerRequests) {
  ApiError error;
  std::optional<TokenizeRequest> tokenize = parseTokenizeRequest(
      R"({"model": "tiny", "prompt": "Once", "add_special_tokens": false})",
      "tiny", error);
  ASSERT_TRUE(tokenize.has_value()) << error.message;
  EXPECT_EQ(tokenize->prompt, "Once");
  EXPECT_FALSE(tokenize->addSpecial);
  std::optional<std::vector<int32_t>> ids =
      parseDetokenizeRequest(R"({"tokens": [1, 80]})", "tiny", error);
  ASSERT_TRUE(ids.has_value()) << error.message;
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 80}));
  auto refused = [](std::optional<TokenizeRequest> parsed,
                    const ApiError &error, std::string_view words) {
    EXPECT_FALSE(parsed.has_value());
    EXPECT_NE(error.message.find(words), std::string::npos) << error.message;
  };
  ApiError e1, e2, e3, e4;
  refused(parseTokenizeRequest(R"({})", "tiny", e1), e1, "needs `prompt`");
  refused(parseTokenizeRequest(R"({"prompt": 5})", "tiny", e2), e2,
          "must be a string");
  refused(
      parseTokenizeRequest(R"({"prompt": "x", "messages": []})", "tiny", e3),
      e3, "not a field kvopt serve reads in a tokenize request");
  refused(
      parseTokenizeRequest(R"({"model": "other", "prompt": "x"})", "tiny", e4),
      e4, "does not exist");
  EXPECT_EQ(e4.status, 404);
  ApiError e5, e6;
  EXPECT_FALSE(parseDetokenizeRequest(R"({"tokens": [1, -2]})", "tiny", e5));
  EXPECT_NE(e5.message.find("`tokens` item 1 is -2"), std::string::npos)
      << e5.message;
  EXPECT_FALSE(parseDetokenizeRequest(R"({"tokens": "1"})", "tiny", e6));
  EXPECT_NE(e6.message.find("must be an array of token ids"), std::string::npos)
      << e6.message;
}

TEST(OpenAiRequest, RefusesWhatItWouldNotHonour) {
  expectRefused(R"({"prompt": "x", "best_of": 2})", "best_of", "set it to 1");
  expectRefused(R"({"prompt": "x", "echo": true, "stream": true})", "echo",
                "with `stream` is not supported");
  expectRefused(R"({"prompt": "x", "presence_penalty": 2.5})",
                "presence_penalty", "from -2 to 2, not 2.5");
  expectRefused(R"({"prompt": "x", "frequency_penalty": "1"})",
                "frequency_penalty", "must be a number");
  expectRefused(R"({"prompt": "x", "logit_bias": {"5": 1}})", "logit_bias",
                "{}");
  expectRefused(R"({"prompt": "x", "suffix": "y"})", "suffix", "not a field");
  expectRefused(R"({"prompt": "x", "tools": []})", "tools", "not a field");
}

// Names from the request go into one-line sentences through kvrt::quote:
// control characters as \xNN, long names cut (fuzz-http found a key with a
// newline).
TEST(OpenAiRequest, ShowsRequestNamesOnOneLine) {
  expectRefused("{\"prompt\": \"x\", \"a\\nb\": 1}", "a\nb",
                "'a\\x0ab' is not a field");
  expectRefused(R"({"messages": [{"role": "user", "content": "x",
                                  "c\u0000d": 1}]})",
                "messages", "'messages[0].c\\x00d' is not supported",
                Endpoint::ChatCompletions);
  ParsedRequest parsed = parseCompletionRequest(
      "{\"model\": \"" + std::string(200, 'x') + "\", \"prompt\": \"x\"}",
      Endpoint::Completions, "tiny");
  ASSERT_FALSE(parsed.request.has_value());
  EXPECT_NE(parsed.error.message.find("...' (200 bytes) does not exist"),
            std::string::npos)
      << parsed.error.message;
  EXPECT_LT(parsed.error.message.size(), 200u);
}

TEST(OpenAiRequest, NamesTheModelItServes) {
  ParsedRequest parsed = parseCompletionRequest(
      R"({"model": "gpt-4", "prompt": "x"})", Endpoint::Completions, "tiny");
  ASSERT_FALSE(parsed.request.has_value());
  EXPECT_EQ(parsed.error.status, 404);
  EXPECT_EQ(parsed.error.code, "model_not_found");
  EXPECT_EQ(parsed.error.message,
            "the model 'gpt-4' does not exist; this server serves 'tiny'");
}

TEST(OpenAiRequest, RefusesBodiesThatAreNotAnObject) {
  expectRefused("[1]", "", "must be a JSON object, not an array");
  expectRefused("{\"prompt\": ", "", "the request body");
  expectRefused("{\"prompt\": \"a\", \"prompt\": \"b\"}", "", "duplicate");
}

} // namespace
