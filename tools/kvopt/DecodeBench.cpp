//===- DecodeBench.cpp - Timing prefill and decode through the engine -----===//
#include "tools/kvopt/DecodeBench.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace kvopt::bench {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The bytes of weights a step reads as the backend holds them: the CUDA
/// backend bf16 (norm weights f32), the CPU backend f32 but for the block
/// formats, which it reads as they are stored.
double weightBytesPerStep(const kvrt::Artifact &artifact, bool bf16) {
  double bytes = 0;
  std::set<uint32_t> counted;
  for (const kvrt::schema::KernelCall &call :
       artifact.manifest().plan().calls()) {
    if (call.kernel() == "embedding")
      continue;
    for (uint32_t index : call.tensors()) {
      if (!counted.insert(index).second)
        continue;
      const kvrt::schema::Tensor &tensor =
          artifact.manifest().tensors(int(index));
      double n = 1;
      for (int64_t d : tensor.shape())
        n *= double(d);
      if (!bf16 && kvrt::dtypeBlockElements(tensor.dtype()) > 1)
        bytes += double(kvrt::tensorBytes(tensor.dtype(), uint64_t(n)));
      else
        bytes += n * (call.kernel() == "rms_norm" || !bf16 ? 4 : 2);
    }
  }
  return bytes;
}

/// Per sequence of `context` tokens, the cache bytes a decode step's
/// selecting layers read less than a dense attention would: each reads its
/// summaries, the keys of its top blocks' entries (when level 2 scores
/// them) and the keys and values of the entries it attends to.
kvrt::StatusOr<double> selectionSavings(const kvrt::Artifact &artifact,
                                        int64_t context) {
  const kvrt::schema::Manifest &m = artifact.manifest();
  double saved = 0;
  for (const kvrt::schema::KernelCall &call : m.plan().calls()) {
    if (!call.has_attention() || !call.attention().has_select())
      continue;
    const kvrt::schema::SelectParams &s = call.attention().select();
    const uint32_t layer = call.attention().layer();
    if (s.block() == 0 || context <= int64_t(s.top_tokens()) ||
        layer >= uint32_t(m.cache_size()))
      continue;
    const kvrt::schema::CacheLayout &layout = m.cache(int(layer));
    kvrt::StatusOr<kvrt::CacheSideBytes> bytes =
        kvrt::cacheSideBytesPerToken(layout);
    if (!bytes)
      return bytes.status();
    const double tokens = double(context);
    const double candidates =
        std::min(tokens, double(s.top_blocks()) * double(s.block()));
    const double attended = std::min(candidates, double(s.top_tokens()));
    // The engine's bytes per token count the summaries with the pages.
    const double summaries = kvrt::summaryBytesPerToken(layout, s) * tokens;
    const double read = summaries +
                        (candidates > attended ? bytes->keys * candidates : 0) +
                        (bytes->keys + bytes->values) * attended;
    saved += (bytes->keys + bytes->values) * tokens + summaries - read;
  }
  return saved;
}

} // namespace

std::vector<int32_t> randomTokens(int64_t count, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(count));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int32_t &id : ids) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    id = int32_t(3 + (x * 0x2545F4914F6CDD1Dull >> 33) % uint64_t(vocab - 3));
  }
  return ids;
}

kvrt::StatusOr<DecodeBenchResult>
runDecodeBench(std::shared_ptr<const kvrt::Artifact> artifact,
               const kvrt::EngineOptions &engineOptions,
               const DecodeBenchOptions &o) {
  if (o.batch < 1 || o.context < 1 || o.steps < 1 || o.warmup < 0 ||
      o.chunk < 0)
    return kvrt::Status::error("the batch, context and steps must be at "
                               "least 1, the warm-up steps and the chunk at "
                               "least 0");
  const int64_t limit = artifact->manifest().model().max_positions();
  if (o.context + o.warmup + o.steps > limit)
    return kvrt::Status::error("a context of " + std::to_string(o.context) +
                               " tokens and " +
                               std::to_string(o.warmup + o.steps) +
                               " decode steps exceed the model's " +
                               std::to_string(limit) + " positions");
  DecodeBenchResult r;
  r.batchSize = o.batch;
  kvrt::EngineOptions options = engineOptions;
  if (!options.cacheTokens) {
    // Room for the batch, a page of slack per sequence.
    options.cacheTokens =
        uint64_t(o.batch) * uint64_t(o.context + o.warmup + o.steps + 256);
  }
  Clock::time_point start = Clock::now();
  auto engine = kvrt::Engine::create(artifact, options);
  if (!engine)
    return engine.status();
  r.loadSeconds = since(start);
  const int64_t vocab = (*engine)->vocabSize();
  if (vocab < 4)
    return kvrt::Status::error("the vocabulary is too small to draw tokens "
                               "from");

  std::vector<kvrt::SequenceId> ids;
  const int64_t chunk = o.chunk ? o.chunk : o.context;
  for (int64_t b = 0; b < o.batch; ++b) {
    auto id = (*engine)->addSequence();
    if (!id)
      return id.status();
    ids.push_back(*id);
    const std::vector<int32_t> prompt =
        randomTokens(o.context, vocab, uint64_t(b) + 7);
    start = Clock::now();
    for (int64_t at = 0; at < o.context; at += chunk) {
      const int64_t end = std::min(o.context, at + chunk);
      kvrt::Status done = (*engine)->prefill(
          {{*id,
            std::vector<int32_t>(prompt.begin() + at, prompt.begin() + end)}});
      if (!done)
        return done;
    }
    const double seconds = since(start);
    if (b == 0)
      r.firstTokenSeconds = seconds;
    r.slowestPrefillSeconds = std::max(r.slowestPrefillSeconds, seconds);
    r.prefillSeconds += seconds;
  }

  std::vector<std::pair<kvrt::SequenceId, int32_t>> next;
  for (kvrt::SequenceId id : ids)
    next.push_back({id, 5});
  std::vector<double> times;
  kvrt::EngineStats::Offload before;
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    if (step == o.warmup)
      before = (*engine)->stats().offload;
    // A step includes choosing the next tokens, greedily, where the logits
    // are (the PyTorch peers' steps end with their argmax too).
    start = Clock::now();
    kvrt::StatusOr<std::vector<int32_t>> chosen = (*engine)->stepGreedy(next);
    if (!chosen)
      return chosen.status();
    if (step >= o.warmup)
      times.push_back(since(start));
    for (size_t s = 0; s < next.size(); ++s)
      next[s].second = (*chosen)[s];
  }
  std::sort(times.begin(), times.end());
  r.stepSeconds = times[times.size() / 2];
  r.fastestStep = times.front();
  r.slowestStep = times.back();
  const kvrt::EngineStats stats = (*engine)->stats();
  r.kvBytesPerToken = stats.kvBytesPerToken;
  r.offload = stats.offload;
  r.offload.pagesRead -= before.pagesRead;
  r.offload.hits -= before.hits;
  r.offload.misses -= before.misses;
  r.offload.prefetchHits -= before.prefetchHits;
  r.offload.prefetched -= before.prefetched;
  r.offload.streamed -= before.streamed;
  r.offload.bytesIn -= before.bytesIn;
  r.offload.scheduledCalls -= before.scheduledCalls;
  r.offload.lateSchedules -= before.lateSchedules;
  r.weightBytes =
      weightBytesPerStep(*artifact, engineOptions.backend == "cuda");
  kvrt::StatusOr<double> saved = selectionSavings(*artifact, o.context);
  if (!saved)
    return saved.status();
  r.cacheBytes =
      (r.kvBytesPerToken * double(o.context) - *saved) * double(o.batch);
  return r;
}

} // namespace kvopt::bench
