//===- Engine.cpp - Sequences, batches and generation ---------------------===//
#include "kvrt/Runtime.h"

#include "kvrt/Generation.h"

#include "runtime/src/engine/Backend.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <new>

namespace kvrt {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

/// Runs `body`, turning an exception (in practice, running out of memory)
/// into a Status that says what was being done: none crosses the API.
template <typename Fn>
auto noThrow(const std::string &doing, const Fn &body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return Status::error("out of memory while " + doing);
  } catch (const std::exception &e) {
    return Status::error("failed while " + doing + ": " + e.what());
  }
}

} // namespace

Engine::Engine(std::shared_ptr<const Artifact> artifact,
               std::unique_ptr<Backend> backend)
    : artifact_(std::move(artifact)), backend_(std::move(backend)) {}

Engine::~Engine() = default;

StatusOr<std::unique_ptr<Engine>>
Engine::create(std::shared_ptr<const Artifact> artifact,
               const EngineOptions &options) {
  if (!artifact)
    return Status::error("Engine::create needs an artifact");
#ifdef KVRT_HAVE_CUDA
  const char *available = "cpu, cuda";
#else
  const char *available = "cpu";
#endif
  auto create = options.backend == "cpu" ? createCpuBackend : nullptr;
#ifdef KVRT_HAVE_CUDA
  if (options.backend == "cuda")
    create = createCudaBackend;
#endif
  if (!create)
    return Status::error(
        "backend \"" + options.backend +
        "\" is not built into this runtime (available: " + available + ")");
  return noThrow("preparing " + artifact->name() + " for the " +
                     options.backend + " backend",
                 [&]() -> StatusOr<std::unique_ptr<Engine>> {
                   StatusOr<std::unique_ptr<Backend>> backend =
                       create(artifact, options);
                   if (!backend)
                     return backend.status();
                   return std::unique_ptr<Engine>(
                       new Engine(std::move(artifact), std::move(*backend)));
                 });
}

int64_t Engine::vocabSize() const {
  return artifact_->manifest().model().vocab_size();
}

StatusOr<SequenceId> Engine::addSequence() {
  return noThrow("adding a sequence", [&]() -> StatusOr<SequenceId> {
    SequenceId id = nextId_++;
    KVRT_RETURN_IF_ERROR(backend_->addSequence(id));
    sequences_.emplace(id, SequenceState{});
    return id;
  });
}

StatusOr<ForkedSequence> Engine::forkSequence(SequenceId from, int64_t tokens) {
  auto source = sequences_.find(from);
  if (source == sequences_.end())
    return Status::error("sequence " + str(int64_t(from)) + " does not exist");
  if (tokens < 0)
    return Status::error("cannot fork " + str(tokens) + " tokens");
  const uint64_t wanted = uint64_t(std::min(tokens, source->second.length));
  return noThrow("forking a sequence", [&]() -> StatusOr<ForkedSequence> {
    SequenceId id = nextId_++;
    StatusOr<SharedPrefix> shared = backend_->forkSequence(from, id, wanted);
    if (!shared)
      return shared.status();
    sequences_.emplace(
        id, SequenceState{shared->nextPosition, int64_t(shared->tokens)});
    return ForkedSequence{id, int64_t(shared->tokens)};
  });
}

int64_t Engine::forkGranularity() const {
  return int64_t(backend_->forkGranularity());
}

Status Engine::removeSequence(SequenceId sequence) {
  if (!sequences_.erase(sequence))
    return Status::error("sequence " + str(int64_t(sequence)) +
                         " does not exist");
  backend_->removeSequence(sequence);
  return Status::ok();
}

StatusOr<int64_t> Engine::sequenceLength(SequenceId sequence) const {
  auto it = sequences_.find(sequence);
  if (it == sequences_.end())
    return Status::error("sequence " + str(int64_t(sequence)) +
                         " does not exist");
  return it->second.length;
}

Status Engine::forward(const std::vector<BatchToken> &batch) {
  return noThrow("running a batch of " + str(int64_t(batch.size())) + " tokens",
                 [&] { return forwardImpl(batch); });
}

Status Engine::forwardImpl(const std::vector<BatchToken> &batch,
                           std::vector<int32_t> *greedy) {
  if (batch.empty())
    return Status::error("a batch needs at least one token");
  int64_t vocab = vocabSize();
  std::unordered_map<SequenceId, SequenceState> touched;
  std::vector<int32_t> tokens, positions;
  std::vector<SequenceId> ids;
  std::vector<uint32_t> logitRows;
  // Whether every sequence of the batch already holds tokens: a prompt of
  // one token is still a prefill.
  bool extendsOnly = true;
  for (size_t r = 0; r < batch.size(); ++r) {
    const BatchToken &t = batch[r];
    std::string row = "batch row " + str(int64_t(r));
    auto known = sequences_.find(t.sequence);
    if (known == sequences_.end())
      return Status::error(row + " names sequence " + str(int64_t(t.sequence)) +
                           ", which does not exist");
    if (t.token < 0 || t.token >= vocab)
      return Status::error(row + " holds token id " + str(t.token) +
                           ", outside the vocabulary of " + str(vocab) +
                           " tokens");
    extendsOnly = extendsOnly && known->second.length > 0;
    SequenceState &s = touched.emplace(t.sequence, known->second).first->second;
    if (t.position < s.nextPosition)
      return Status::error(row + " puts sequence " + str(int64_t(t.sequence)) +
                           " at position " + str(t.position) +
                           ", but its next position is at least " +
                           str(s.nextPosition));
    s.nextPosition = int64_t(t.position) + 1;
    ++s.length;
    tokens.push_back(t.token);
    positions.push_back(t.position);
    ids.push_back(t.sequence);
    if (t.logits)
      logitRows.push_back(uint32_t(r));
  }

  // The previous batch's logits stay until this one succeeds; the storage
  // of the one before is reused, so a decode step neither zero-fills nor
  // faults in B x vocab floats afresh.
  Logits out;
  out.rows = logitRows.size();
  out.vocab = size_t(vocab);
  out.values = std::move(spareLogits_);
  out.values.resize(out.rows * out.vocab);
  BatchView view;
  view.rows = batch.size();
  view.tokens = tokens.data();
  view.positions = positions.data();
  view.sequences = ids.data();
  view.logitRows = &logitRows;
  std::vector<int32_t> tokensOut(greedy ? logitRows.size() : 0);
  view.greedy = greedy ? tokensOut.data() : nullptr;
  auto start = std::chrono::steady_clock::now();
  KVRT_RETURN_IF_ERROR(backend_->forward(view, out.values.data()));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  for (const auto &[id, state] : touched)
    sequences_[id] = state;
  if (greedy) {
    // The floats were the backend's to use; none are logits now.
    *greedy = std::move(tokensOut);
    spareLogits_ = std::move(out.values);
    logits_ = Logits{0, out.vocab, {}};
  } else {
    spareLogits_ = std::move(logits_.values);
    logits_ = std::move(out);
  }
  // A batch where every sequence adds one token to those it holds is a
  // decode step.
  if (extendsOnly && touched.size() == batch.size()) {
    stats_.decodeTokens += batch.size();
    stats_.decodeSeconds += seconds;
  } else {
    stats_.prefillTokens += batch.size();
    stats_.prefillSeconds += seconds;
  }
  return Status::ok();
}

Status Engine::prefill(const std::vector<SequenceTokens> &batch) {
  return noThrow("preparing a prefill", [&] { return prefillImpl(batch); });
}

Status Engine::prefillImpl(const std::vector<SequenceTokens> &batch,
                           std::vector<int32_t> *greedy) {
  std::vector<BatchToken> rows;
  std::unordered_map<SequenceId, int64_t> next;
  for (size_t e = 0; e < batch.size(); ++e) {
    const SequenceTokens &entry = batch[e];
    if (entry.tokens.empty())
      return Status::error("prefill entry " + str(int64_t(e)) +
                           " has no tokens");
    auto known = sequences_.find(entry.sequence);
    if (known == sequences_.end())
      return Status::error("prefill entry " + str(int64_t(e)) +
                           " names sequence " + str(int64_t(entry.sequence)) +
                           ", which does not exist");
    int64_t &position =
        next.emplace(entry.sequence, known->second.nextPosition).first->second;
    for (size_t i = 0; i < entry.tokens.size(); ++i) {
      if (position > INT32_MAX)
        return Status::error("sequence " + str(int64_t(entry.sequence)) +
                             " has run out of positions");
      bool last = i + 1 == entry.tokens.size();
      rows.push_back({entry.sequence, entry.tokens[i], int32_t(position++),
                      entry.allLogits || last});
    }
  }
  return greedy ? forwardImpl(rows, greedy) : forward(rows);
}

/// A decode step's tokens as a prefill of one token per sequence.
static std::vector<SequenceTokens>
stepBatch(const std::vector<std::pair<SequenceId, int32_t>> &tokens) {
  std::vector<SequenceTokens> batch;
  for (const auto &[sequence, token] : tokens)
    batch.push_back({sequence, {token}, false});
  return batch;
}

Status Engine::step(const std::vector<std::pair<SequenceId, int32_t>> &tokens) {
  return prefill(stepBatch(tokens));
}

StatusOr<std::vector<int32_t>>
Engine::prefillGreedy(const std::vector<SequenceTokens> &batch) {
  std::vector<int32_t> next;
  Status done = noThrow("preparing a greedy prefill", [&] {
    for (size_t e = 0; e < batch.size(); ++e)
      if (batch[e].allLogits)
        return Status::error("prefill entry " + str(int64_t(e)) +
                             " asks for the logits of every token, which a "
                             "greedy prefill does not return");
    return prefillImpl(batch, &next);
  });
  if (!done)
    return done;
  return next;
}

StatusOr<std::vector<int32_t>>
Engine::stepGreedy(const std::vector<std::pair<SequenceId, int32_t>> &tokens) {
  return prefillGreedy(stepBatch(tokens));
}

StatusOr<GenerateResult>
Engine::generate(const std::vector<int32_t> &prompt,
                 const GenerateOptions &options,
                 const std::function<bool(int32_t)> &onToken) {
  return noThrow("generating",
                 [&] { return generateImpl(prompt, options, onToken); });
}

StatusOr<GenerateResult>
Engine::generateImpl(const std::vector<int32_t> &prompt,
                     const GenerateOptions &options,
                     const std::function<bool(int32_t)> &onToken) {
  StatusOr<Generation> generation =
      Generation::create(*artifact_, prompt, options);
  if (!generation)
    return generation.status();
  GenerateResult result;
  if (generation->empty())
    return result;
  StatusOr<SequenceId> sequence = addSequence();
  if (!sequence)
    return sequence.status();
  // The sequence is removed whatever happens below.
  struct Remove {
    Engine &engine;
    SequenceId id;
    ~Remove() { (void)engine.removeSequence(id); }
  } remove{*this, *sequence};

  KVRT_RETURN_IF_ERROR(prefill({{*sequence, prompt, false}}));
  int32_t token = generation->sample(logits_.row(0), logits_.vocab);
  while (true) {
    if (std::optional<StopReason> stop = generation->stopsAt(token)) {
      result.reason = *stop;
      break;
    }
    std::optional<StopReason> end = generation->record(token);
    if (onToken && !onToken(token)) {
      result.reason = StopReason::Cancelled;
      break;
    }
    if (end) {
      result.reason = *end;
      break;
    }
    // Greedy: the backend picks the token (the GPU's logits then stay on
    // the device).
    if (generation->greedy()) {
      StatusOr<std::vector<int32_t>> next = stepGreedy({{*sequence, token}});
      if (!next)
        return next.status();
      token = (*next)[0];
    } else {
      KVRT_RETURN_IF_ERROR(step({{*sequence, token}}));
      token = generation->sample(logits_.row(0), logits_.vocab);
    }
  }
  result.tokens = generation->generated();
  return result;
}

EngineStats Engine::stats() const {
  EngineStats s = stats_;
  CacheStats cache = backend_->cacheStats();
  s.kvBytesPerToken = cache.bytesPerToken;
  s.kvBytesInUse = cache.bytesInUse;
  s.kvCapacityTokens = cache.capacityTokens;
  s.kvCompactions = cache.compactions;
  s.kvEvictedEntries = cache.evictedEntries;
  s.offload = cache.offload;
  s.peakKvBytes = cache.peakBytes;
  return s;
}

StatusOr<std::vector<std::vector<int32_t>>>
Engine::cachedPositions(SequenceId sequence, uint32_t layer) const {
  if (!sequences_.count(sequence))
    return Status::error("sequence " + str(int64_t(sequence)) +
                         " does not exist");
  if (layer >= uint32_t(artifact_->manifest().cache_size()))
    return Status::error("the artifact has no cache layer " +
                         str(int64_t(layer)));
  return backend_->cachedPositions(sequence, layer);
}

std::vector<LayerFidelity> Engine::fidelity() const {
  return backend_->fidelity();
}

void Engine::resetFidelity() { backend_->resetFidelity(); }

} // namespace kvrt
