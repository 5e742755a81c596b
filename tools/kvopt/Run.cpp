//===- Run.cpp - kvopt run: generate text from an artifact ----------------===//
//
// Streams the generated text to stdout as it comes and ends with one stats
// line on stderr (so that stdout holds only the text when piped). On a
// terminal, stderr shows the prefill and, when stdout goes elsewhere, a
// token counter. Needs nothing but libkvrt: the runtime-only kvopt has it
// too.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/Progress.h"

#include "kvrt/Runtime.h"
#include "kvrt/Sampling.h"
#include "kvrt/Tokenizer.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <unistd.h>

namespace kvopt::cli {

namespace {
struct RunOptions {
  std::string artifact, prompt, tokens, system;
  int64_t maxTokens = 128;
  int64_t minTokens = 0;
  kvrt::SamplingParams sampling;
  bool chat = false, ignoreEos = false;
  kvrt::EngineOptions engine;
};

/// "12 34 5" into ids; nullopt on anything else.
std::optional<std::vector<int32_t>> parseIds(const std::string &text) {
  std::istringstream in(text);
  std::vector<int32_t> ids;
  int64_t id;
  while (in >> id) {
    if (id < 0 || id > INT32_MAX)
      return std::nullopt;
    ids.push_back(int32_t(id));
  }
  if (!in.eof())
    return std::nullopt;
  return ids;
}

int runRun(const RunOptions &o) {
  Progress progress("run");
  auto fail = [&](const std::string &message) {
    progress.clear();
    std::cerr << "kvopt run: " << message << "\n";
    return 1;
  };
  if (o.prompt.empty() == o.tokens.empty())
    return fail("give the prompt either as text (--prompt) or as token ids "
                "(--tokens), not both and not neither");
  if (o.chat && o.prompt.empty())
    return fail("--chat needs the prompt as text (--prompt)");
  if (!o.system.empty() && !o.chat)
    return fail("--system needs --chat: the system message goes into the "
                "model's chat template");
  if (auto sampler = kvrt::Sampler::create(o.sampling); !sampler)
    return fail(sampler.status().message());
  progress.step("loading " + o.artifact);
  auto artifact = kvrt::Artifact::open(o.artifact);
  if (!artifact)
    return fail(artifact.status().message());
  auto engine = kvrt::Engine::create(*artifact, o.engine);
  if (!engine)
    return fail(engine.status().message());

  std::optional<kvrt::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!o.tokens.empty()) {
    std::optional<std::vector<int32_t>> ids = parseIds(o.tokens);
    if (!ids || ids->empty())
      return fail("--tokens must be token ids separated by spaces");
    prompt = *ids;
  } else {
    auto spec = kvrt::tokenizerSpecFromArtifact(
        (*artifact)->manifest().tokenizer(), o.artifact);
    if (!spec)
      return fail(spec.status().message());
    auto created = kvrt::Tokenizer::create(std::move(*spec));
    if (!created)
      return fail(created.status().message());
    tokenizer = std::move(*created);
    if (o.chat) {
      const kvrt::ChatTemplate &chat = tokenizer->chatTemplate();
      if (chat.kind == kvrt::ChatTemplateKind::None)
        return fail(o.artifact + " has no chat template; run without --chat");
      std::vector<kvrt::ChatMessage> messages;
      if (!o.system.empty())
        messages.push_back({"system", o.system});
      messages.push_back({"user", o.prompt});
      prompt = tokenizer->encode(kvrt::applyChatTemplate(chat, messages, true),
                                 false);
    } else {
      prompt = tokenizer->encode(o.prompt, true);
    }
  }

  kvrt::GenerateOptions generate;
  generate.maxNewTokens = o.maxTokens;
  generate.minNewTokens = o.minTokens;
  generate.sampling = o.sampling;
  generate.stopAtEos = !o.ignoreEos;
  std::optional<kvrt::TokenStreamDecoder> stream;
  if (tokenizer)
    stream.emplace(*tokenizer, /*skipSpecial=*/true);
  // On a terminal the streamed text shows the progress itself; a counter
  // beside it would mix with it.
  bool textOnTerminal = isatty(STDOUT_FILENO) == 1;
  int64_t generated = 0;
  progress.step("prefilling " + std::to_string(prompt.size()) +
                " prompt tokens");
  auto result = (*engine)->generate(prompt, generate, [&](int32_t id) {
    ++generated;
    if (textOnTerminal) {
      progress.clear();
    } else {
      if (generated == 1)
        progress.step("generating");
      progress.update(std::to_string(generated) + "/" +
                      std::to_string(o.maxTokens) + " tokens");
    }
    std::string text = stream ? stream->push(id) : std::to_string(id) + " ";
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  if (stream) {
    std::string rest = stream->finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  std::fputc('\n', stdout);
  std::fflush(stdout);
  progress.clear();
  if (!result)
    return fail(result.status().message());
  // An instruct model given a bare prompt often ends at once: the empty
  // output should not look like a fault.
  if (generated == 0 && generate.stopAtEos && tokenizer && !o.chat &&
      tokenizer->chatTemplate().kind != kvrt::ChatTemplateKind::None)
    std::fprintf(stderr,
                 "kvopt run: the first token was the model's end of "
                 "sequence, so nothing was generated; %s has a chat "
                 "template, which an instruct model expects (--chat)\n",
                 o.artifact.c_str());

  kvrt::EngineStats s = (*engine)->stats();
  std::fprintf(stderr,
               "prefill %llu tokens at %.1f tokens/s | decode %llu tokens at "
               "%.1f tokens/s | KV %s bytes/token, peak %s\n",
               static_cast<unsigned long long>(s.prefillTokens),
               s.prefillTokensPerSecond(),
               static_cast<unsigned long long>(s.decodeTokens),
               s.decodeTokensPerSecond(),
               bytesPerToken(s.kvBytesPerToken).c_str(),
               megabytes(s.peakKvBytes).c_str());
  return 0;
}
} // namespace

void addRunCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<RunOptions>();
  CLI::App *sub =
      app.add_subcommand("run", "Generate text from a compiled artifact");
  sub->add_option("artifact", o->artifact, "Compiled .kvpkg")->required();
  sub->add_option("--prompt", o->prompt, "Prompt text");
  sub->add_option("--tokens", o->tokens,
                  "Prompt as token ids separated by spaces; output as ids");
  sub->add_flag("--chat", o->chat,
                "Wrap the prompt in the model's chat template");
  sub->add_option("--system", o->system, "System message (with --chat)");
  sub->add_option("--max-tokens", o->maxTokens, "Tokens to generate at most")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  sub->add_option("--min-tokens", o->minTokens,
                  "No end-of-sequence token before this many (vLLM's "
                  "min_tokens)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  sub->add_option("--temperature", o->sampling.temperature,
                  "0 is greedy (the default)");
  sub->add_option("--top-k", o->sampling.topK, "Sample from the k best");
  sub->add_option("--top-p", o->sampling.topP, "Nucleus sampling mass");
  sub->add_option("--repetition-penalty", o->sampling.repetitionPenalty,
                  "1 disables it");
  sub->add_option("--frequency-penalty", o->sampling.frequencyPenalty,
                  "OpenAI's, -2 to 2, on generated tokens; 0 disables it");
  sub->add_option("--presence-penalty", o->sampling.presencePenalty,
                  "OpenAI's, -2 to 2, on generated tokens; 0 disables it");
  sub->add_option("--seed", o->sampling.seed, "Sampling seed");
  sub->add_flag("--ignore-eos", o->ignoreEos,
                "Keep generating past end-of-sequence tokens");
  addEngineOptions(*sub, o->engine);
  sub->callback([o, &exitCode] { exitCode = runRun(*o); });
}

} // namespace kvopt::cli
