//===- Bench.cpp - kvopt bench: prefill and decode timed ------------------===//
//
// Times an artifact on a backend at a batch size and context length
// (DecodeBench.h) and prints one table row: time to first token, the
// median decode step, tokens per second, and what a step must read.
// Needs nothing but libkvrt: the runtime-only kvopt has it too.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/DecodeBench.h"
#include "tools/kvopt/JsonWriter.h"
#include "tools/kvopt/OutputFile.h"

#include "kvrt/Artifact.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

namespace kvopt::cli {

namespace {
struct BenchOptions {
  std::string artifact, json;
  std::string backend = "cpu";
  unsigned threads = 0;
  bench::DecodeBenchOptions run;
};

int runBench(const BenchOptions &o) {
  auto fail = [](const std::string &message) {
    std::cerr << "kvopt bench: " << message << "\n";
    return 1;
  };
  if (std::string problem = outputFileProblem(o.json); !problem.empty())
    return fail("--json: " + problem);
  auto artifact = kvrt::Artifact::open(o.artifact);
  if (!artifact)
    return fail(artifact.status().message());
  kvrt::EngineOptions engine;
  engine.backend = o.backend;
  engine.threads = o.threads;
  auto result = bench::runDecodeBench(*artifact, engine, o.run);
  if (!result)
    return fail(result.status().message());
  const bench::DecodeBenchResult &r = *result;
  std::printf("| backend | batch | context | TTFT s | step ms (min-max) | "
              "tokens/s | KB/token | MB read a step (weights + cache) |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
              "| %s | %lld | %lld | %.3f | %.2f (%.2f-%.2f) | %.1f | %.1f | "
              "%.1f + %.1f |\n",
              o.backend.c_str(), static_cast<long long>(o.run.batch),
              static_cast<long long>(o.run.context), r.firstTokenSeconds,
              r.stepSeconds * 1e3, r.fastestStep * 1e3, r.slowestStep * 1e3,
              r.decodeTokensPerSecond(), r.kvBytesPerToken / 1e3,
              r.weightBytes / 1e6, r.cacheBytes / 1e6);
  if (r.offload.pagesRead)
    std::printf("offload: %.1f%% of the KV-head pages decode steps read were "
                "on the device; %.2f MB copied in per step\n",
                100.0 * double(r.offload.hits) / double(r.offload.pagesRead),
                double(r.offload.bytesIn) / 1e6 / double(o.run.steps));
  if (r.offload.scheduledCalls)
    std::printf("offload: the host's schedules ended after the GPU's call in "
                "%llu of %llu calls\n",
                static_cast<unsigned long long>(r.offload.lateSchedules),
                static_cast<unsigned long long>(r.offload.scheduledCalls));
  std::fflush(stdout);
  if (o.json.empty())
    return 0;
  return writeOutputFile(o.json, [&](std::ostream &os) {
    JsonWriter j(os);
    j.beginObject();
    j.member("artifact", o.artifact);
    j.member("backend", o.backend);
    j.member("batch", o.run.batch);
    j.member("context", o.run.context);
    j.member("steps", o.run.steps);
    j.member("load_seconds", r.loadSeconds);
    j.member("first_token_seconds", r.firstTokenSeconds);
    j.member("prefill_seconds", r.prefillSeconds);
    j.member("slowest_prefill_seconds", r.slowestPrefillSeconds);
    j.member("step_seconds", r.stepSeconds);
    j.member("fastest_step_seconds", r.fastestStep);
    j.member("slowest_step_seconds", r.slowestStep);
    j.member("decode_tokens_per_second", r.decodeTokensPerSecond());
    j.member("kv_bytes_per_token", r.kvBytesPerToken);
    j.member("weight_bytes_per_step", r.weightBytes);
    j.member("cache_bytes_per_step", r.cacheBytes);
    if (r.offload.pagesRead) {
      j.member("offload_pages_read", r.offload.pagesRead);
      j.member("offload_hits", r.offload.hits);
      j.member("offload_bytes_in", r.offload.bytesIn);
      j.member("offload_scheduled_calls", r.offload.scheduledCalls);
      j.member("offload_late_schedules", r.offload.lateSchedules);
    }
    j.endObject();
    os << "\n";
    return bool(os);
  });
}
} // namespace

void addBenchCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App *sub = app.add_subcommand(
      "bench", "Time prefill and decode at a batch size and context length");
  sub->add_option("artifact", o->artifact, "Compiled .kvpkg")->required();
  sub->add_option("--backend", o->backend,
                  "cpu (the reference) | cuda (the first GPU, where built)")
      ->capture_default_str();
  sub->add_option("--batch", o->run.batch, "Sequences per step")
      ->capture_default_str();
  sub->add_option("--context", o->run.context,
                  "Prompt tokens per sequence (random ids)")
      ->capture_default_str();
  sub->add_option("--steps", o->run.steps, "Decode steps timed")
      ->capture_default_str();
  sub->add_option("--warmup", o->run.warmup, "Decode steps before timing")
      ->capture_default_str();
  sub->add_option("--chunk", o->run.chunk,
                  "Prefill tokens per forward (0: the whole context)")
      ->capture_default_str();
  sub->add_option("--threads", o->threads, "Threads (cpu; 0: every core)");
  sub->add_option("--json", o->json, "Also write the numbers as JSON");
  sub->callback([o, &exitCode] { exitCode = runBench(*o); });
}

} // namespace kvopt::cli
