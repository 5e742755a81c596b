//===- EngineMain.cpp - kvrt-cuda-engine: the decoder on the GPU ----------===//
//
//   kvrt-cuda-engine check ARTIFACT [--prompt N] [--steps N] [--tolerance X]
//                                   [--flips F] [--dense A] [--resident A]
//                                   [--chunk C] [--fuse 0|1] [--kept-flips K]
//   kvrt-cuda-engine bench ARTIFACT [--batch B] [--context L] [--steps N]
//                                   [--chunk C] [--graphs 0|1] [--fuse 0|1]
//
// check: runs the same two sequences (prompts of N and N / 2 + 1 tokens, in
// one batch) on the cpu and cuda backends: prefill, then `steps` decode
// steps both fed the CPU's greedy token. With --chunk C < N, the first
// prompt's leading chunks of C tokens are prefilled alone first. Then a second
// round on pages the first one freed (stale block summaries in them, for a
// selecting artifact): a prompt of N / 2 + 9 tokens prefilled alone, one batch
// that prefills a prompt of N - 5 tokens while the first sequence decodes, and
// steps / 2 decode steps of both. Round 3 (not with --resident): a prompt
// of N tokens, a sequence forked from it (Engine::forkSequence), the source
// removed, the fork prefilled with the rest and 9 tokens of its own and
// stepped once. Prints the largest relative error of
// each step's logits (max |gpu - cpu| / max |cpu|) and whether the greedy
// tokens agree; exits 1 when an error exceeds --tolerance (default 0.02)
// or a greedy token differs where the CPU's best logit leads its second by
// more than twice the largest difference of the two backends' logits (a
// closer race is decided by rounding, not by a bug). With sparse
// selection a near tie is decided by rounding too: the GPU ranks in fp32
// what bf16 projections made, the CPU in double what fp32 ones made, and
// one entry or block chosen otherwise moves the row's logits by up to
// what selection itself moves them. So for an artifact that selects,
// --flips (default 0.2) of the rows may exceed the tolerance; the others
// may not. With --dense, the first round also runs that artifact (the
// same model without selection) on the cpu and prints how far selection
// moved the logits: far more than the rows within the tolerance differ
// shows that the GPU selects what the CPU selects. With --resident (for an
// offloaded ARTIFACT: the same model compiled without kv-offload), that
// artifact runs on the cuda backend beside it, fed the same batches, and
// every logit of the two must be equal: offload moves bytes, never values.
// Then the offload counts (pages read, device hits, misses, copies) follow.
// For an artifact that evicts (kv-evict), after every comparison the
// positions each evicting layer keeps per KV head are compared too
// (Engine::cachedPositions()): a KEPT line names each sequence, layer, head
// and position kept by one backend only. It fails when the backends
// compact a different number of times or entries, keep counts that
// differ, or when, at a sequence's first compaction whose kept entries
// differ (both caches held the same entries before it), more than
// --kept-flips of a layer and head's kept entries differ (default 0 for
// StreamingLLM, whose choice has no ties to round; 0.02 for TriAttention,
// whose scores come from the GPU's bf16 and the CPU's fp32 projections, so
// a near tie at the budget's edge may go either way), or more than 25% at
// a later one (the caches then differ, so the choices drift; scores from
// the wrong keys, centres or position differ in most entries). From then
// on that sequence's rows are printed but not compared: one entry kept
// otherwise moves every later logit by what eviction itself moves it
// (docs/eviction.md says what the check still catches).
//
// bench: cuda only. Prefills `batch` sequences of `context` tokens (chunks
// of C tokens), timing the first one's prefill (time to first token), then
// times `steps` decode steps of the whole batch (wall clock: a step ends
// when its greedy next tokens, picked on the device, are on the host) and
// prints the median against the floor
// (weight bytes + cache bytes read per step, over the measured copy
// bandwidth). A selecting layer's decode reads its block summaries, the
// kept blocks' keys and the kept entries' keys and values, not the whole
// cache.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "kvrt/Artifact.h"
#include "kvrt/Runtime.h"
#include "kvrt/Sampling.h"
#include "runtime/src/sparse/BoundCodes.h"
#include "tools/kvopt/DecodeBench.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace kvrt;
using cuda::test::orDie;

struct Options {
  std::string mode, artifact, dense, resident;
  int prompt = 48, steps = 16, batch = 1, context = 4096, chunk = 8192;
  int graphs = 1;
  /// The cuda engine's EngineOptions::cudaFusion.
  int fuse = 1;
  /// bench: the cache's page size (0: the artifact's).
  int pageSize = 0;
  double tolerance = 0.02, flips = 0.2;
  /// Eviction: the fraction of a layer and head's kept entries that may
  /// differ (TriAttention near ties); -1: 0 for StreamingLLM, else 0.02.
  double keptFlips = -1;
};

/// Eviction: the fraction of a layer and head's kept entries that may
/// differ at compactions after the sequence's kept entries first differed
/// (the caches then hold other entries, so the choices drift apart; a
/// selection on wrong scores differs in most of its entries).
constexpr double kLaterFlips = 0.25;

std::unique_ptr<Engine> engineFor(std::shared_ptr<const Artifact> artifact,
                                  const std::string &backend,
                                  uint64_t cacheTokens, bool fuse = true) {
  EngineOptions options;
  options.backend = backend;
  options.cacheTokens = cacheTokens;
  options.cudaFusion = fuse;
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

/// The cpu and cuda engines fed the same batches; every comparison of
/// their logits adds to the totals.
struct Backends {
  std::unique_ptr<Engine> cpu, gpu;
  /// With --resident: the artifact without offload, on the cuda backend,
  /// fed what gpu is fed (so its sequence ids are gpu's), and the largest
  /// difference of the two's logits.
  std::unique_ptr<Engine> resident;
  double residentDifference = 0;
  /// Applies `f` to gpu and resident.
  template <typename F> void onGpus(const F &f) {
    f(*gpu);
    if (resident)
      f(*resident);
  }
  double worst = 0;
  /// The largest |gpu - cpu| of a logit so far.
  double largestDifference = 0;
  int agreed = 0, compared = 0, wrong = 0;
  /// Every row's relative error.
  std::vector<double> errors;

  /// Eviction: cpu sequences whose kept entries differed on the two
  /// backends at some compaction; their later rows are not compared.
  std::set<SequenceId> diverged;
  int skipped = 0;

  /// Compares the last logits row by row under `label`; returns the CPU's
  /// greedy token of each row. `rows[r]` is row r's cpu sequence (if
  /// given): a row of a sequence in `diverged` is printed, not compared.
  std::vector<int32_t> compareLast(const std::string &label,
                                   const std::vector<SequenceId> &rows = {}) {
    const Logits &c = cpu->logits(), &g = gpu->logits();
    std::printf("%s", label.c_str());
    if (resident)
      for (size_t row = 0; row < g.rows; ++row)
        residentDifference = std::max(
            residentDifference, compare(g, resident->logits(), row).difference);
    std::vector<int32_t> tokens;
    for (size_t row = 0; row < c.rows; ++row) {
      const RowComparison r = compare(g, c, row);
      const int32_t want = greedyToken(c.row(row), c.vocab);
      const int32_t got = greedyToken(g.row(row), g.vocab);
      tokens.push_back(want);
      if (row < rows.size() && diverged.count(rows[row])) {
        std::printf("  row %zu: error %.2e (kept entries differed before: "
                    "not compared)",
                    row, r.relativeError());
        ++skipped;
        continue;
      }
      worst = std::max(worst, r.relativeError());
      largestDifference = std::max(largestDifference, r.difference);
      errors.push_back(r.relativeError());
      ++compared;
      agreed += want == got;
      const bool decided = r.margin > 2 * r.difference;
      wrong += want != got && decided;
      std::printf("  row %zu: error %.2e, cpu %d gpu %d%s", row,
                  r.relativeError(), want, got,
                  want == got ? ""
                  : decided   ? " DIFFER"
                              : " (differ within rounding)");
    }
    std::printf("\n");
    return tokens;
  }

  /// Eviction: the layers whose kept entries are compared; the largest
  /// fraction of one layer and head's entries kept by one backend only at
  /// a sequence's first compaction that differed (from caches that held
  /// the same entries), and at any later one; mismatches printed so far.
  std::vector<uint32_t> evicting;
  double keptDiffered = 0, laterDiffered = 0;
  int keptLengthsDiffer = 0, printed = 0;

  /// Compares the positions every evicting layer keeps for each sequence
  /// (cpu ids, gpu ids) under `label`; prints each layer, head and position
  /// kept by one backend only.
  void compareKept(const std::string &label,
                   const std::vector<SequenceId> &cpuIds,
                   const std::vector<SequenceId> &gpuIds) {
    for (size_t s = 0; s < cpuIds.size(); ++s) {
      const bool before = diverged.count(cpuIds[s]) > 0;
      double &worst = before ? laterDiffered : keptDiffered;
      for (uint32_t layer : evicting) {
        const auto c = orDie(cpu->cachedPositions(cpuIds[s], layer));
        const auto g = orDie(gpu->cachedPositions(gpuIds[s], layer));
        for (size_t h = 0; h < c.size(); ++h) {
          if (c[h].size() != g[h].size()) {
            std::printf("KEPT %s sequence %zu layer %u head %zu: the cpu "
                        "keeps %zu entries, the gpu %zu\n",
                        label.c_str(), s, layer, h, c[h].size(), g[h].size());
            ++keptLengthsDiffer;
            continue;
          }
          std::vector<int32_t> cpuOnly, gpuOnly;
          std::set_difference(c[h].begin(), c[h].end(), g[h].begin(),
                              g[h].end(), std::back_inserter(cpuOnly));
          std::set_difference(g[h].begin(), g[h].end(), c[h].begin(),
                              c[h].end(), std::back_inserter(gpuOnly));
          if (cpuOnly.empty() && gpuOnly.empty() && c[h] == g[h])
            continue;
          if (cpuOnly.empty() && gpuOnly.empty()) {
            std::printf("KEPT %s sequence %zu layer %u head %zu: the same "
                        "positions in another order\n",
                        label.c_str(), s, layer, h);
            ++keptLengthsDiffer;
            continue;
          }
          worst = std::max(worst, double(cpuOnly.size()) / double(c[h].size()));
          diverged.insert(cpuIds[s]);
          for (auto [list, who] : {std::make_pair(&cpuOnly, "cpu"),
                                   std::make_pair(&gpuOnly, "gpu")})
            for (int32_t position : *list)
              if (printed++ < 40)
                std::printf("KEPT %s sequence %zu layer %u head %zu: "
                            "position %d kept by the %s only\n",
                            label.c_str(), s, layer, h, position, who);
        }
      }
    }
  }

  /// One decode step of `sequences` (cpu ids, gpu ids) with `tokens`.
  void step(const std::vector<SequenceId> &cpuIds,
            const std::vector<SequenceId> &gpuIds,
            const std::vector<int32_t> &tokens) {
    std::vector<std::pair<SequenceId, int32_t>> cpuNext, gpuNext;
    for (size_t s = 0; s < tokens.size(); ++s) {
      cpuNext.push_back({cpuIds[s], tokens[s]});
      gpuNext.push_back({gpuIds[s], tokens[s]});
    }
    orDie(cpu->step(cpuNext));
    onGpus([&](Engine &e) { orDie(e.step(gpuNext)); });
  }
};

int check(const Options &o) {
  auto artifact = orDie(Artifact::open(o.artifact));
  const uint64_t room = 2 * uint64_t(o.prompt + o.steps + 64);
  Backends b{engineFor(artifact, "cpu", room),
             engineFor(artifact, "cuda", room, o.fuse != 0)};
  if (!o.resident.empty())
    b.resident = engineFor(orDie(Artifact::open(o.resident)), "cuda", room);
  std::unique_ptr<Engine> dense;
  if (!o.dense.empty())
    dense = engineFor(orDie(Artifact::open(o.dense)), "cpu", room);
  const int64_t vocab = b.cpu->vocabSize();
  bool streaming = true;
  for (const schema::KernelCall &call : artifact->manifest().plan().calls())
    if (call.kernel() == "evict") {
      b.evicting.push_back(call.evict().layer());
      streaming &= call.evict().method() == schema::EVICT_METHOD_STREAMING;
    }
  const double keptFlips =
      o.keptFlips >= 0 ? o.keptFlips : (streaming ? 0.0 : 0.02);

  // Round 1: two prompts in one batch, then decode steps.
  std::vector<std::vector<int32_t>> prompts = {
      kvopt::bench::randomTokens(o.prompt, vocab, 1),
      kvopt::bench::randomTokens(o.prompt / 2 + 1, vocab, 2)};
  std::vector<SequenceId> cpuIds, gpuIds, denseIds;
  std::vector<SequenceTokens> cpuBatch, gpuBatch, denseBatch;
  for (const std::vector<int32_t> &p : prompts) {
    cpuIds.push_back(orDie(b.cpu->addSequence()));
    gpuIds.push_back(orDie(b.gpu->addSequence()));
    if (b.resident && orDie(b.resident->addSequence()) != gpuIds.back())
      orDie(
          Status::error("the resident engine numbers its sequences otherwise"));
    cpuBatch.push_back({cpuIds.back(), p});
    gpuBatch.push_back({gpuIds.back(), p});
    if (dense) {
      denseIds.push_back(orDie(dense->addSequence()));
      denseBatch.push_back({denseIds.back(), p});
    }
  }
  // With --chunk below the first prompt, its leading chunks go alone (rows
  // after stored tokens), its last one with the second prompt.
  const std::vector<int32_t> &longest = prompts[0];
  size_t done = 0;
  for (size_t chunk = size_t(o.chunk); longest.size() - done > chunk;
       done += chunk) {
    const std::vector<int32_t> part(longest.begin() + done,
                                    longest.begin() + done + chunk);
    orDie(b.cpu->prefill({{cpuIds[0], part}}));
    b.onGpus([&](Engine &e) { orDie(e.prefill({{gpuIds[0], part}})); });
    if (dense)
      orDie(dense->prefill({{denseIds[0], part}}));
    b.compareLast("prefill chunk at " + std::to_string(done));
  }
  for (auto *batch : {&cpuBatch, &gpuBatch, &denseBatch})
    if (!batch->empty())
      (*batch)[0].tokens.erase((*batch)[0].tokens.begin(),
                               (*batch)[0].tokens.begin() + done);
  orDie(b.cpu->prefill(cpuBatch));
  b.onGpus([&](Engine &e) { orDie(e.prefill(gpuBatch)); });
  if (dense)
    orDie(dense->prefill(denseBatch));
  double moved = 0;
  for (int step = 0;; ++step) {
    const std::string label =
        step == 0 ? "prefill" : "step " + std::to_string(step);
    std::vector<int32_t> next = b.compareLast(label, cpuIds);
    b.compareKept(label, cpuIds, gpuIds);
    if (dense)
      for (size_t row = 0; row < next.size(); ++row)
        moved = std::max(
            moved,
            compare(dense->logits(), b.cpu->logits(), row).relativeError());
    if (step == o.steps)
      break;
    b.step(cpuIds, gpuIds, next);
    if (dense) {
      std::vector<std::pair<SequenceId, int32_t>> denseNext;
      for (size_t s = 0; s < next.size(); ++s)
        denseNext.push_back({denseIds[s], next[s]});
      orDie(dense->step(denseNext));
    }
  }

  // Round 2, on the pages round 1 leaves: A prefilled alone, then B's
  // prompt and A's first decode row in one batch (A's row reads page
  // table 1), then decode steps of both.
  for (size_t s = 0; s < cpuIds.size(); ++s) {
    b.diverged.erase(cpuIds[s]);
    orDie(b.cpu->removeSequence(cpuIds[s]));
    b.onGpus([&](Engine &e) { orDie(e.removeSequence(gpuIds[s])); });
  }
  const std::vector<int32_t> a =
      kvopt::bench::randomTokens(o.prompt / 2 + 9, vocab, 3);
  const std::vector<int32_t> bPrompt =
      kvopt::bench::randomTokens(std::max(2, o.prompt - 5), vocab, 4);
  cpuIds = {orDie(b.cpu->addSequence()), orDie(b.cpu->addSequence())};
  gpuIds = {orDie(b.gpu->addSequence()), orDie(b.gpu->addSequence())};
  if (b.resident) {
    const SequenceId first = orDie(b.resident->addSequence());
    if (first != gpuIds[0] || orDie(b.resident->addSequence()) != gpuIds[1])
      orDie(
          Status::error("the resident engine numbers its sequences otherwise"));
  }
  orDie(b.cpu->prefill({{cpuIds[0], a}}));
  b.onGpus([&](Engine &e) { orDie(e.prefill({{gpuIds[0], a}})); });
  const int32_t first = b.compareLast("round 2 prefill", {cpuIds[0]})[0];
  b.compareKept("round 2 prefill", {cpuIds[0]}, {gpuIds[0]});
  auto mixed = [&](SequenceId idA, SequenceId idB) {
    std::vector<BatchToken> rows;
    for (size_t i = 0; i < bPrompt.size(); ++i)
      rows.push_back({idB, bPrompt[i], int32_t(i), i + 1 == bPrompt.size()});
    rows.push_back({idA, first, int32_t(a.size()), true});
    return rows;
  };
  orDie(b.cpu->forward(mixed(cpuIds[0], cpuIds[1])));
  b.onGpus([&](Engine &e) { orDie(e.forward(mixed(gpuIds[0], gpuIds[1]))); });
  // Rows: B's last, then A's.
  std::vector<int32_t> next =
      b.compareLast("round 2 prefill + decode", {cpuIds[1], cpuIds[0]});
  b.compareKept("round 2 prefill + decode", cpuIds, gpuIds);
  std::swap(next[0], next[1]);
  for (int step = 1; step <= o.steps / 2; ++step) {
    b.step(cpuIds, gpuIds, next);
    const std::string label = "round 2 step " + std::to_string(step);
    next = b.compareLast(label, cpuIds);
    b.compareKept(label, cpuIds, gpuIds);
  }
  // A last step with the tokens picked on the device (Engine::stepGreedy):
  // each against the CPU's argmax, which it must equal unless the CPU's two
  // best logits are closer than twice the largest difference seen.
  {
    std::vector<std::pair<SequenceId, int32_t>> cpuNext, gpuNext;
    for (size_t s = 0; s < next.size(); ++s) {
      cpuNext.push_back({cpuIds[s], next[s]});
      gpuNext.push_back({gpuIds[s], next[s]});
    }
    orDie(b.cpu->step(cpuNext));
    const std::vector<int32_t> chosen = orDie(b.gpu->stepGreedy(gpuNext));
    const Logits &c = b.cpu->logits();
    std::printf("greedy on the device");
    for (size_t row = 0; row < c.rows; ++row) {
      const int32_t want = greedyToken(c.row(row), c.vocab);
      const bool decided =
          compare(c, c, row).margin > 2 * b.largestDifference &&
          !b.diverged.count(cpuIds[row]);
      b.wrong += chosen[row] != want && decided;
      std::printf("  row %zu: cpu %d gpu %d%s", row, want, chosen[row],
                  chosen[row] == want ? ""
                  : decided           ? " DIFFER"
                                      : " (differ within rounding)");
    }
    std::printf("\n");
  }

  // Round 3: a sequence forked from another (Engine::forkSequence) holds
  // whole pages of its source's prefix (on the CPU as many as on the GPU,
  // which decides first: a prefix read encoded where the other backend
  // prefills it exact would differ by the encoding), outlives its source
  // and goes on with tokens of its own: it must read what the CPU's reads.
  // Not beside --resident, whose logits must equal bit for bit: a resident
  // fork would prefill fewer tokens than the offloaded engine, in other
  // chunks.
  int failures = 0;
  if (!b.resident) {
    for (size_t s = 0; s < cpuIds.size(); ++s) {
      orDie(b.cpu->removeSequence(cpuIds[s]));
      orDie(b.gpu->removeSequence(gpuIds[s]));
    }
    const std::vector<int32_t> prefix =
        kvopt::bench::randomTokens(o.prompt, vocab, 5);
    const std::vector<int32_t> own = kvopt::bench::randomTokens(9, vocab, 6);
    auto fork = [&](Engine &e, int64_t share) {
      const SequenceId source = orDie(e.addSequence());
      orDie(e.prefill({{source, prefix}}));
      const ForkedSequence forked = orDie(e.forkSequence(source, share));
      orDie(e.removeSequence(source));
      std::vector<int32_t> rest(prefix.begin() + forked.tokens, prefix.end());
      rest.insert(rest.end(), own.begin(), own.end());
      orDie(e.prefill({{forked.sequence, rest}}));
      return forked;
    };
    const ForkedSequence gpuFork = fork(*b.gpu, int64_t(prefix.size()));
    const ForkedSequence cpuFork = fork(*b.cpu, gpuFork.tokens);
    std::printf("fork: %lld of %zu prefix tokens shared on the gpu, %lld on "
                "the cpu\n",
                (long long)gpuFork.tokens, prefix.size(),
                (long long)cpuFork.tokens);
    if (cpuFork.tokens != gpuFork.tokens) {
      std::printf("FAIL: the cpu shared another number of tokens\n");
      ++failures;
    }
    const std::vector<SequenceId> cpuForkIds = {cpuFork.sequence},
                                  gpuForkIds = {gpuFork.sequence};
    std::vector<int32_t> forkNext = b.compareLast("fork prefill", cpuForkIds);
    b.compareKept("fork prefill", cpuForkIds, gpuForkIds);
    b.step(cpuForkIds, gpuForkIds, forkNext);
    b.compareLast("fork step 1", cpuForkIds);
    b.compareKept("fork step 1", cpuForkIds, gpuForkIds);
  }

  if (b.wrong) {
    std::printf("FAIL: %d greedy tokens differ by more than rounding\n",
                b.wrong);
    ++failures;
  }
  bool selects = false;
  for (const schema::KernelCall &call : artifact->manifest().plan().calls())
    selects |= call.kernel() == "attention" && call.attention().has_select() &&
               call.attention().select().block();
  std::vector<double> within;
  for (double e : b.errors)
    if (e <= o.tolerance)
      within.push_back(e);
  const size_t beyond = b.errors.size() - within.size();
  if (!b.evicting.empty()) {
    const EngineStats c = b.cpu->stats(), g = b.gpu->stats();
    std::printf("eviction: %llu compactions and %llu entries evicted on the "
                "cpu, %llu and %llu on the gpu; at a sequence's first "
                "compaction that differed, at most %.1f%% of a layer and "
                "head's kept entries differ (%.1f%% may), at later ones "
                "%.1f%% (%.0f%% may); %d rows after a difference not "
                "compared\n",
                (unsigned long long)c.kvCompactions,
                (unsigned long long)c.kvEvictedEntries,
                (unsigned long long)g.kvCompactions,
                (unsigned long long)g.kvEvictedEntries, 100 * b.keptDiffered,
                100 * keptFlips, 100 * b.laterDiffered, 100 * kLaterFlips,
                b.skipped);
    if (g.kvCompactions == 0 || c.kvCompactions != g.kvCompactions ||
        c.kvEvictedEntries != g.kvEvictedEntries) {
      std::printf("FAIL: the backends compacted differently (or never: "
                  "give a --prompt beyond the budget)\n");
      ++failures;
    }
    if (b.keptLengthsDiffer || b.keptDiffered > keptFlips ||
        b.laterDiffered > kLaterFlips) {
      std::printf("FAIL: the backends kept other entries (KEPT lines)\n");
      ++failures;
    }
  }
  // Rows of sequences whose kept entries differed are not compared: one
  // entry kept otherwise moves every later logit by what eviction moves it.
  if (selects) {
    std::printf(
        "%zu of %zu rows beyond the tolerance (selection near ties; "
        "at most %.0f%% may be), the others within %.2e\n",
        beyond, b.errors.size(), 100 * o.flips,
        within.empty() ? 0.0 : *std::max_element(within.begin(), within.end()));
    if (double(beyond) > o.flips * double(b.errors.size())) {
      std::printf("FAIL: %zu of %zu rows exceed the relative logit error "
                  "%.3e\n",
                  beyond, b.errors.size(), o.tolerance);
      ++failures;
    }
  } else if (b.worst > o.tolerance) {
    // Kept entries alike (or no eviction): every row within the tolerance.
    std::printf("FAIL: the largest relative logit error %.3e exceeds %.3e\n",
                b.worst, o.tolerance);
    ++failures;
  }
  if (dense)
    std::printf("selection moved the cpu's logits by up to %.2e (relative, "
                "against %s)\n",
                moved, o.dense.c_str());
  if (b.resident) {
    const EngineStats::Offload &s = b.gpu->stats().offload;
    std::printf("offload: %llu KV-head pages read by decode rows, %llu on the "
                "device (%.1f%%), %llu missed and read from host memory; "
                "%.1f MB copied in; largest logit difference from %s on "
                "the GPU: %g\n",
                (unsigned long long)s.pagesRead, (unsigned long long)s.hits,
                s.pagesRead ? 100.0 * double(s.hits) / double(s.pagesRead) : 0,
                (unsigned long long)s.misses, double(s.bytesIn) / 1e6,
                o.resident.c_str(), b.residentDifference);
    if (b.residentDifference != 0) {
      std::printf("FAIL: offload changed the logits\n");
      ++failures;
    }
    if (s.pagesRead != s.hits + s.misses || s.misses == 0 || s.hits == 0) {
      std::printf("FAIL: the offload counts do not add up, or the budget "
                  "left no misses (or no hits) to check\n");
      ++failures;
    }
  }
  std::printf("checks: %s (%d of %d greedy tokens agree, largest relative "
              "logit error %.2e)\n",
              failures ? "FAILED" : "passed", b.agreed, b.compared, b.worst);
  return failures ? 1 : 0;
}

/// Bytes of one token's entries of `e` over `kvHeads` heads, in the
/// encodings selecting layers store on the GPU: bf16, fp8 (a scale per slot
/// with dynamic scales), polar (its codes and an f16 scale), nvfp4 (4-bit
/// codes and a scale byte per 16).
double entryBytes(const schema::Encoding &e, uint32_t headDim,
                  uint32_t kvHeads) {
  double perHead = 2.0 * headDim;
  if (e.kind() == schema::ENCODING_FP8)
    perHead = headDim + (e.scale_mode() == schema::SCALE_MODE_DYNAMIC ? 4 : 0);
  else if (e.kind() == schema::ENCODING_POLAR)
    perHead = headDim * e.bits() / 8.0 + 2;
  else if (e.kind() == schema::ENCODING_NVFP4)
    perHead = headDim / 2.0 + headDim / 16.0;
  return perHead * kvHeads;
}

/// Bytes of the cache one decode row of `length` tokens reads: every entry
/// of a dense layer (the cache's bytes per token, summaries aside); in a
/// selecting layer the summaries of every block, the keys of the kept
/// blocks' entries and the keys and values of the kept entries and the
/// newest one, as SparseSelect.h reads them.
double cacheBytesPerRow(const Artifact &artifact, double kvBytesPerToken,
                        double length) {
  const schema::Manifest &m = artifact.manifest();
  std::map<uint32_t, const schema::CacheLayout *> layouts;
  for (const schema::CacheLayout &c : m.cache())
    layouts[c.layer()] = &c;
  double dense = kvBytesPerToken * length, sparse = 0;
  for (const schema::KernelCall &call : m.plan().calls()) {
    if (call.kernel() != "attention" || !call.attention().has_select() ||
        !call.attention().select().block())
      continue;
    const schema::SelectParams &p = call.attention().select();
    const schema::CacheLayout &c = *layouts.at(call.attention().layer());
    const double key = entryBytes(c.key(), c.head_dim(), c.kv_heads());
    const double value = entryBytes(c.value(), c.head_dim(), c.kv_heads());
    const double selectable = length - 1;
    // Per token: each block's bound codes and exponent.
    const double summaries =
        double(sparse::summaryBytesPerPage(c.kv_heads(), c.head_dim(),
                                           p.block(), p.block())) /
        p.block();
    dense -= (key + value + summaries) * length;
    sparse += std::ceil(selectable / p.block()) * p.block() * summaries;
    if (selectable > p.top_tokens())
      sparse +=
          std::min<double>(double(p.top_blocks()) * p.block(), selectable) *
          key;
    sparse +=
        (std::min<double>(p.top_tokens(), selectable) + 1) * (key + value);
  }
  return dense + sparse;
}

int bench(const Options &o) {
  const double bandwidth = cuda::test::copyBandwidth();
  auto artifact = orDie(Artifact::open(o.artifact));
  EngineOptions engine;
  engine.backend = "cuda";
  engine.cudaGraphs = o.graphs != 0;
  engine.cudaFusion = o.fuse != 0;
  engine.pageSize = uint32_t(o.pageSize);
  kvopt::bench::DecodeBenchOptions run;
  run.batch = o.batch;
  run.context = o.context;
  run.steps = o.steps;
  run.chunk = o.chunk;
  const kvopt::bench::DecodeBenchResult r =
      orDie(kvopt::bench::runDecodeBench(artifact, engine, run));
  const double cacheBytes =
      o.batch * cacheBytesPerRow(*artifact, r.kvBytesPerToken, o.context);
  const double floor = (r.weightBytes + cacheBytes) / (bandwidth * 1e9);
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
              "tokens/s | cache GB read | floor ms | floor / step |\n| --- | "
              "--- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  const std::string file = o.artifact.substr(o.artifact.rfind('/') + 1);
  std::printf("| %s | %s | %d | %d | %.3f | %.2f | %.0f | %.3f | %.2f | "
              "%.0f%% |\n",
              file.c_str(), o.graphs ? "yes" : "no", o.batch, o.context,
              r.firstTokenSeconds, r.stepSeconds * 1e3,
              r.decodeTokensPerSecond(), cacheBytes / 1e9, floor * 1e3,
              100 * floor / r.stepSeconds);
  std::printf("prefill %s B=%d L=%d: %.2f s for every sequence, the slowest "
              "%.3f s\n",
              file.c_str(), o.batch, o.context, r.prefillSeconds,
              r.slowestPrefillSeconds);
  if (r.offload.pagesRead)
    std::printf("offload %s B=%d L=%d: %.1f%% of the KV-head pages decode "
                "steps read were on the device (%llu of %llu); %.2f MB "
                "copied in per step\n",
                file.c_str(), o.batch, o.context,
                100.0 * double(r.offload.hits) / double(r.offload.pagesRead),
                (unsigned long long)r.offload.hits,
                (unsigned long long)r.offload.pagesRead,
                double(r.offload.bytesIn) / 1e6 / double(o.steps));
  if (r.offload.scheduledCalls)
    std::printf("offload %s B=%d L=%d: the host's schedules ended after the "
                "GPU's call in %llu of %llu calls\n",
                file.c_str(), o.batch, o.context,
                (unsigned long long)r.offload.lateSchedules,
                (unsigned long long)r.offload.scheduledCalls);
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
    int *target = arg == "--prompt"      ? &o.prompt
                  : arg == "--steps"     ? &o.steps
                  : arg == "--batch"     ? &o.batch
                  : arg == "--context"   ? &o.context
                  : arg == "--chunk"     ? &o.chunk
                  : arg == "--graphs"    ? &o.graphs
                  : arg == "--fuse"      ? &o.fuse
                  : arg == "--page-size" ? &o.pageSize
                                         : nullptr;
    if (arg == "--tolerance")
      o.tolerance = std::stod(argv[i + 1]);
    else if (arg == "--flips")
      o.flips = std::stod(argv[i + 1]);
    else if (arg == "--kept-flips")
      o.keptFlips = std::stod(argv[i + 1]);
    else if (arg == "--dense")
      o.dense = argv[i + 1];
    else if (arg == "--resident")
      o.resident = argv[i + 1];
    else if (target)
      *target = std::stoi(argv[i + 1]);
    else
      o.mode.clear();
  }
  if ((o.mode != "check" && o.mode != "bench") || (argc - 3) % 2 ||
      o.chunk < 1) {
    std::fprintf(stderr,
                 "usage: %s check ARTIFACT [--prompt N] [--steps N] "
                 "[--tolerance X] [--flips F] [--dense A] [--resident A] "
                 "[--chunk C] [--fuse 0|1] [--kept-flips K]\n"
                 "       %s bench ARTIFACT [--batch B] [--context L] "
                 "[--steps N] [--chunk C] [--graphs 0|1] [--fuse 0|1] "
                 "[--page-size P]\n",
                 argv[0], argv[0]);
    return 2;
  }
  return o.mode == "check" ? check(o) : bench(o);
}
