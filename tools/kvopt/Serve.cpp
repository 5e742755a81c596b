//===- Serve.cpp - kvopt serve: an artifact behind OpenAI-style HTTP ------===//
//
// Loads the artifact once, batches every client's requests through one
// engine (kvrt::Scheduler) and answers over HTTP until SIGINT or SIGTERM,
// when it stops accepting, ends the running requests and exits 0. Needs
// nothing but libkvrt: the runtime-only kvopt has it too.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/serve/HttpServer.h"
#include "tools/kvopt/serve/OpenAiService.h"

#include "kvrt/Runtime.h"
#include "kvrt/Scheduler.h"
#include "kvrt/Tokenizer.h"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <pthread.h>
#include <thread>

namespace kvopt::cli {

namespace {
struct ServeOptions {
  ServeOptions() {
    scheduler.retainedSequences = 16;
    // 0: the backend's (runServe()).
    scheduler.prefillChunk = 0;
    // A server's pool takes the GPU's free memory, as vLLM's does.
    engine.cacheMemory = 0.9;
  }
  std::string artifact, modelName, apiKey;
  serve::HttpServerOptions http;
  kvrt::SchedulerOptions scheduler;
  kvrt::EngineOptions engine;
};

int runServe(const ServeOptions &o) {
  auto fail = [](const std::string &message) {
    std::cerr << "kvopt serve: " << message << "\n";
    return 1;
  };
  // SIGINT and SIGTERM go to one thread, which stops the server; every
  // thread started from here on (the engine's pool too) inherits the
  // mask.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto artifact = kvrt::Artifact::open(o.artifact);
  if (!artifact)
    return fail(artifact.status().message());
  auto spec = kvrt::tokenizerSpecFromArtifact(
      (*artifact)->manifest().tokenizer(), o.artifact);
  if (!spec)
    return fail(spec.status().message());
  auto tokenizer = kvrt::Tokenizer::create(std::move(*spec));
  if (!tokenizer)
    return fail(tokenizer.status().message());
  // A GPU prefills 2048 tokens a step 1.3x as fast as 512 (the 8B shape
  // at 16K on an H100, docs/serve.md), vLLM's serving budget; on a CPU a
  // step that long would hold every running request's next token for
  // seconds.
  kvrt::SchedulerOptions scheduling = o.scheduler;
  if (scheduling.prefillChunk == 0)
    scheduling.prefillChunk = o.engine.backend == "cuda" ? 2048 : 512;
  auto engine = kvrt::Engine::create(*artifact, o.engine);
  if (!engine)
    return fail(engine.status().message());

  auto server = serve::HttpServer::listen(o.http);
  if (!server)
    return fail(server.status().message());
  std::string name = o.modelName.empty()
                         ? std::filesystem::path(o.artifact).stem().string()
                         : o.modelName;
  kvrt::Scheduler scheduler(**engine, scheduling);
  std::string apiKey = o.apiKey;
  if (const char *fromEnvironment = std::getenv("KVOPT_API_KEY");
      apiKey.empty() && fromEnvironment)
    apiKey = fromEnvironment;
  serve::OpenAiService service(scheduler, **artifact, std::move(*tokenizer),
                               name, apiKey);
  std::thread stopper([&] {
    int signal = 0;
    sigwait(&stopSignals, &signal);
    std::cerr << "kvopt serve: stopping on "
              << (signal == SIGINT ? "SIGINT" : "SIGTERM") << std::endl;
    scheduler.shutdown();
    (*server)->stop();
  });
  std::cerr << "kvopt serve: serving " << name << " (" << o.artifact
            << ", backend " << o.engine.backend << ", up to "
            << scheduling.maxBatch << " sequences and "
            << scheduling.prefillChunk
            << " prompt tokens a step, a KV cache of "
            << (*engine)->stats().kvCapacityTokens << " tokens"
            << (apiKey.empty() ? "" : ", API key required") << ") on http://"
            << o.http.host << ":" << (*server)->port() << std::endl;
  (*server)->serve(
      [&](const serve::HttpRequest &request, serve::HttpExchange &exchange) {
        service.handle(request, exchange);
      });
  stopper.join();
  kvrt::SchedulerStats s = scheduler.stats();
  std::fprintf(
      stderr,
      "kvopt serve: %llu requests finished | %llu prompt tokens, %llu "
      "tokens decoded in %llu steps (%.2f sequences a step) | %llu "
      "preemptions | %llu prompt tokens found cached | "
      "engine busy %.1f s\n",
      static_cast<unsigned long long>(s.finishedRequests),
      static_cast<unsigned long long>(s.promptTokens),
      static_cast<unsigned long long>(s.decodeRows),
      static_cast<unsigned long long>(s.decodeSteps),
      s.decodeSteps ? double(s.decodeRows) / double(s.decodeSteps) : 0.0,
      static_cast<unsigned long long>(s.preemptions),
      static_cast<unsigned long long>(s.sharedPrefixTokens + s.reusedTokens),
      s.engine.prefillSeconds + s.engine.decodeSeconds);
  return 0;
}
} // namespace

void addServeCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App *sub = app.add_subcommand(
      "serve", "Serve an artifact over OpenAI-style HTTP with streaming");
  sub->add_option("artifact", o->artifact, "Compiled .kvpkg")->required();
  sub->add_option("--host", o->http.host, "IPv4 address to listen on")
      ->capture_default_str();
  sub->add_option("--port", o->http.port, "TCP port (0: any free one)")
      ->capture_default_str();
  sub->add_option("--model-name", o->modelName,
                  "Name clients give as \"model\" (default: the artifact's "
                  "file name without .kvpkg)");
  sub->add_option("--api-key", o->apiKey,
                  "Key the /v1/ endpoints require as \"Authorization: "
                  "Bearer KEY\" (default: $KVOPT_API_KEY; none: open)");
  sub->add_option("--max-batch", o->scheduler.maxBatch,
                  "Sequences decoded together at most")
      ->check(CLI::Range(size_t(1), size_t(4096)))
      ->capture_default_str();
  sub->add_option("--prefill-chunk", o->scheduler.prefillChunk,
                  "Prompt tokens prefilled per step, over all new requests "
                  "(0: 2048 on cuda, 512 on cpu)")
      ->check(CLI::Range(size_t(0), size_t(1) << 20))
      ->capture_default_str();
  sub->add_option("--max-waiting", o->scheduler.maxWaiting,
                  "Requests queued at most; more get 503")
      ->check(CLI::Range(size_t(1), size_t(1) << 20))
      ->capture_default_str();
  sub->add_option("--max-connections", o->http.maxConnections,
                  "Open connections at most; more get 503")
      ->check(CLI::Range(size_t(1), size_t(65536)))
      ->capture_default_str();
  sub->add_option("--retained-sequences", o->scheduler.retainedSequences,
                  "Finished requests' caches kept, so that a request "
                  "continuing one (a chat's next turn) prefills only what "
                  "is new and one beginning like one shares its pages; "
                  "freed first when the cache is full")
      ->check(CLI::Range(size_t(0), size_t(1) << 20))
      ->capture_default_str();
  sub->add_flag("!--no-prefix-sharing", o->scheduler.sharePrefixes,
                "Share no cache pages between requests that begin alike (a "
                "kept cache that a prompt continues whole is still taken "
                "over; --retained-sequences 0 stops that)");
  sub->add_option("--cache-tokens", o->engine.cacheTokens,
                  "Tokens each layer's KV cache holds over all sequences "
                  "(0: cpu, four of the model's full context; cuda, see "
                  "--cache-memory); when full, the request that came last is "
                  "preempted and recomputed later")
      ->capture_default_str();
  sub->add_option("--cache-memory", o->engine.cacheMemory,
                  "cuda without --cache-tokens: the share of the GPU memory "
                  "left free by the weights that the KV cache takes")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  addEngineOptions(*sub, o->engine);
  sub->callback([o, &exitCode] { exitCode = runServe(*o); });
}

} // namespace kvopt::cli
