//===- EngineMain.cpp - kvrt-cuda-engine: the decoder on the GPU ----------===//
//
//   kvrt-cuda-engine check ARTIFACT [--prompt N] [--steps N]
//   kvrt-cuda-engine bench ARTIFACT [--batch B] [--context L] [--steps N]
//                                   [--chunk C] [--graphs 0|1]
//
// check: runs the same two sequences (prompts of N and N / 2 + 1 tokens, in
// one batch) on the cpu and cuda backends: prefill, then `steps` decode
// steps both fed the CPU's greedy token. Prints the largest relative error
// of each step's logits (max |gpu - cpu| / max |cpu|) and whether the
// greedy tokens agree; exits 1 when an error exceeds --tolerance (default
// 0.02) or a greedy token differs where the CPU's best logit leads its
// second by more than twice the largest difference of the two backends'
// logits (a closer race is decided by rounding, not by a bug).
//
// bench: cuda only. Prefills `batch` sequences of `context` tokens (chunks
// of C tokens), timing the first one's prefill (time to first token), then
// times `steps` decode steps of the whole batch (wall clock: a step ends
// when its logits are on the host) and prints the median against the floor
// (weight bytes + cache bytes read per step, over the measured copy
// bandwidth).
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "kvrt/Artifact.h"
#include "kvrt/Runtime.h"
#include "tools/kvopt/DecodeBench.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace kvrt;
using cuda::test::orDie;

struct Options {
  std::string mode, artifact;
  int prompt = 48, steps = 16, batch = 1, context = 4096, chunk = 8192;
  int graphs = 1;
  double tolerance = 0.02;
};

int32_t argmax(const float *row, size_t n) {
  return int32_t(std::max_element(row, row + n) - row);
}

std::unique_ptr<Engine> engineFor(std::shared_ptr<const Artifact> artifact,
                                  const std::string &backend,
                                  uint64_t cacheTokens) {
  EngineOptions options;
  options.backend = backend;
  options.cacheTokens = cacheTokens;
  return orDie(Engine::create(std::move(artifact), options));
}

/// The largest |a - b| over the largest |b|, row by row.
struct RowComparison {
  double difference = 0, scale = 0;
  /// b's best logit minus its second best.
  double margin = 0;
  double relativeError() const { return difference / std::max(scale, 1e-30); }
};

RowComparison compare(const Logits &a, const Logits &b, size_t row) {
  RowComparison c;
  float best = -INFINITY, second = -INFINITY;
  for (size_t i = 0; i < b.vocab; ++i) {
    const float x = b.row(row)[i];
    c.difference = std::max(c.difference, double(std::fabs(a.row(row)[i] - x)));
    c.scale = std::max(c.scale, double(std::fabs(x)));
    second = std::max(second, std::min(best, x));
    best = std::max(best, x);
  }
  c.margin = double(best) - second;
  return c;
}

int check(const Options &o) {
  auto artifact = orDie(Artifact::open(o.artifact));
  const uint64_t room = 2 * uint64_t(o.prompt + o.steps + 64);
  std::unique_ptr<Engine> cpu = engineFor(artifact, "cpu", room);
  std::unique_ptr<Engine> gpu = engineFor(artifact, "cuda", room);
  const int64_t vocab = cpu->vocabSize();
  std::vector<std::vector<int32_t>> prompts = {
      kvopt::bench::randomTokens(o.prompt, vocab, 1),
      kvopt::bench::randomTokens(o.prompt / 2 + 1, vocab, 2)};
  std::vector<SequenceId> cpuIds, gpuIds;
  std::vector<SequenceTokens> cpuBatch, gpuBatch;
  for (const std::vector<int32_t> &p : prompts) {
    cpuIds.push_back(orDie(cpu->addSequence()));
    gpuIds.push_back(orDie(gpu->addSequence()));
    cpuBatch.push_back({cpuIds.back(), p});
    gpuBatch.push_back({gpuIds.back(), p});
  }
  orDie(cpu->prefill(cpuBatch));
  orDie(gpu->prefill(gpuBatch));
  int failures = 0;
  double worst = 0;
  int agreed = 0, compared = 0, wrong = 0;
  for (int step = 0;; ++step) {
    const Logits &c = cpu->logits(), &g = gpu->logits();
    std::printf("%s", step == 0 ? "prefill"
                                : ("step " + std::to_string(step)).c_str());
    std::vector<std::pair<SequenceId, int32_t>> cpuNext, gpuNext;
    for (size_t s = 0; s < prompts.size(); ++s) {
      const RowComparison r = compare(g, c, s);
      const int32_t want = argmax(c.row(s), c.vocab);
      const int32_t got = argmax(g.row(s), g.vocab);
      worst = std::max(worst, r.relativeError());
      ++compared;
      agreed += want == got;
      const bool decided = r.margin > 2 * r.difference;
      wrong += want != got && decided;
      std::printf("  seq %zu: error %.2e, cpu %d gpu %d%s", s,
                  r.relativeError(), want, got,
                  want == got ? ""
                  : decided   ? " DIFFER"
                              : " (differ within rounding)");
      cpuNext.push_back({cpuIds[s], want});
      gpuNext.push_back({gpuIds[s], want});
    }
    std::printf("\n");
    if (step == o.steps)
      break;
    orDie(cpu->step(cpuNext));
    orDie(gpu->step(gpuNext));
  }
  if (wrong) {
    std::printf("FAIL: %d greedy tokens differ by more than rounding\n", wrong);
    ++failures;
  }
  if (worst > o.tolerance) {
    std::printf("FAIL: the largest relative logit error %.3e exceeds %.3e\n",
                worst, o.tolerance);
    ++failures;
  }
  std::printf("checks: %s (%d of %d greedy tokens agree, largest relative "
              "logit error %.2e)\n",
              failures ? "FAILED" : "passed", agreed, compared, worst);
  return failures ? 1 : 0;
}

int bench(const Options &o) {
  const double bandwidth = cuda::test::copyBandwidth();
  auto artifact = orDie(Artifact::open(o.artifact));
  EngineOptions engine;
  engine.backend = "cuda";
  engine.cudaGraphs = o.graphs != 0;
  kvopt::bench::DecodeBenchOptions run;
  run.batch = o.batch;
  run.context = o.context;
  run.steps = o.steps;
  run.chunk = o.chunk;
  const kvopt::bench::DecodeBenchResult r =
      orDie(kvopt::bench::runDecodeBench(artifact, engine, run));
  const double floor = (r.weightBytes + r.cacheBytes) / (bandwidth * 1e9);
  // The most sequences of this context whose cache fits in 80 GB (an
  // H100) beside every weight (the embedding too) and 4 GB of activations
  // and workspaces: computed from the cache's bytes per token, not run.
  double allWeights = 0;
  for (const schema::Tensor &t : artifact->manifest().tensors()) {
    double n = 1;
    for (int64_t d : t.shape())
      n *= double(d);
    allWeights += 2 * n;
  }
  const long fits =
      long((80e9 - allWeights - 4e9) / (r.kvBytesPerToken * double(o.context)));
  std::printf("copy bandwidth %.0f GB/s; load %.2f s; weights read per step "
              "%.2f GB; cache %.1f KB/token; sequences of %d tokens whose "
              "cache fits in 80 GB: %ld\n",
              bandwidth, r.loadSeconds, r.weightBytes / 1e9,
              r.kvBytesPerToken / 1e3, o.context, fits);
  std::printf("| artifact | graphs | batch | context | TTFT s | step ms | "
              "tokens/s | floor ms | floor / step |\n| --- | --- | --- | --- | "
              "--- | --- | --- | --- | --- |\n");
  std::printf("| %s | %s | %d | %d | %.3f | %.2f | %.0f | %.2f | %.0f%% |\n",
              o.artifact.c_str(), o.graphs ? "yes" : "no", o.batch, o.context,
              r.firstTokenSeconds, r.stepSeconds * 1e3,
              r.decodeTokensPerSecond(), floor * 1e3,
              100 * floor / r.stepSeconds);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (argc >= 3) {
    o.mode = argv[1];
    o.artifact = argv[2];
  }
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string arg = argv[i];
    int *target = arg == "--prompt"    ? &o.prompt
                  : arg == "--steps"   ? &o.steps
                  : arg == "--batch"   ? &o.batch
                  : arg == "--context" ? &o.context
                  : arg == "--chunk"   ? &o.chunk
                  : arg == "--graphs"  ? &o.graphs
                                       : nullptr;
    if (arg == "--tolerance")
      o.tolerance = std::stod(argv[i + 1]);
    else if (target)
      *target = std::stoi(argv[i + 1]);
    else
      o.mode.clear();
  }
  if ((o.mode != "check" && o.mode != "bench") || (argc - 3) % 2) {
    std::fprintf(stderr,
                 "usage: %s check ARTIFACT [--prompt N] [--steps N] "
                 "[--tolerance X]\n       %s bench ARTIFACT [--batch B] "
                 "[--context L] [--steps N] [--chunk C] [--graphs 0|1]\n",
                 argv[0], argv[0]);
    return 2;
  }
  return o.mode == "check" ? check(o) : bench(o);
}
