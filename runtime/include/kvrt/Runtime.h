//===- Runtime.h - Running a compiled model ---------------------*- C++ -*-===//
//
// An Engine runs the execution plan of an Artifact on one backend over a
// flat batch of tokens from any number of sequences, each token with its
// sequence and position (as vLLM does): prefill and decode are the same
// plan with different token counts. Keys and values live in a paged cache
// owned by the engine. An Engine is used from one thread at a time.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_RUNTIME_H
#define KVRT_RUNTIME_H

#include "kvrt/Artifact.h"
#include "kvrt/Sampling.h"
#include "kvrt/Status.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace kvrt {

using SequenceId = uint64_t;

/// Which input of a layer's attention a RoPE call rotates.
enum class RopeInput { Query, Key };

/// How RoPE pairs a head's coordinates: pair f rotates coordinates (f,
/// f + headDim/2) (Half, as Hugging Face's rotate_half) or (2f, 2f + 1)
/// (Interleaved, as GGML's original style), by position * frequency f.
enum class RopePairing { Half, Interleaved };

/// Sees every key and value row as a cache layer receives it, before it is
/// encoded (post-RoPE keys, as the cache stores them), and the queries and
/// keys each layer's RoPE calls rotate (onPreRope), and, when it asks, the
/// attention weights (onAttention): calibration records statistics from
/// them. Called from the engine's thread.
class AppendObserver {
public:
  virtual ~AppendObserver() = default;
  /// keys and values are [rows, kvHeads, headDim].
  virtual void onAppend(uint32_t layer, const float *keys, const float *values,
                        int64_t rows, int64_t kvHeads, int64_t headDim) = 0;
  /// `x` is the input of the RoPE call whose output is `layer`'s attention
  /// queries (heads = query heads) or the keys appended to its cache (heads
  /// = KV heads): [rows, heads, headDim], before rotation (after Qwen3's
  /// per-head norm). Called before that RoPE call runs, in plan order, so
  /// for a layer the queries come before or after its keys as the plan has
  /// them. The default ignores them.
  virtual void onPreRope(uint32_t /*layer*/, RopeInput /*input*/,
                         const float * /*x*/, int64_t /*rows*/,
                         int64_t /*heads*/, int64_t /*headDim*/,
                         RopePairing /*pairing*/) {}
  /// Whether onAttention() is wanted: reporting recomputes every row's
  /// weights. The default is no.
  virtual bool wantsAttention() const { return false; }
  /// The attention weights `layer` gave, after its attention ran: for the
  /// batch row of `sequence` at `position`, the `group` query heads that
  /// read KV head `kvHead`, weights[h * count + i] for the sequence's cache
  /// entry first + i (its appended tokens in order, while nothing is
  /// evicted). Rows and heads come in batch order. The default ignores
  /// them.
  virtual void onAttention(uint32_t /*layer*/, uint64_t /*sequence*/,
                           int32_t /*position*/, uint32_t /*kvHead*/,
                           const float * /*weights*/, int64_t /*group*/,
                           uint64_t /*first*/, int64_t /*count*/) {}
};

struct EngineOptions {
  /// "cpu" (the reference backend) or "cuda" (where the runtime was built
  /// with it: the first GPU, see backends/cuda/CudaBackend.cpp).
  std::string backend = "cpu";
  /// Threads for kernels, the caller's included; 0 uses every hardware
  /// thread.
  unsigned threads = 0;
  /// Tokens each layer's cache pool holds across all sequences; 0 makes
  /// room for 4 sequences of the model's full context. Pages are allocated
  /// as they are first needed, so this bounds memory, it does not reserve
  /// it.
  uint64_t cacheTokens = 0;
  /// cuda backend, when cacheTokens is 0: the cache pool takes this share
  /// of the GPU memory left free by the weights and working memory, as
  /// many tokens as that holds (a smaller encoding holds more), as a
  /// server sizes its pool; 0 sizes it as cacheTokens 0 says, within 90%
  /// of that memory. Ignored by the cpu backend.
  double cacheMemory = 0;
  /// Tokens per page in every layer (at most 65536); 0 keeps the
  /// artifact's page sizes.
  uint32_t pageSize = 0;
  /// Receives every appended key and value, and every layer's pre-RoPE
  /// queries and keys; not owned; may be null.
  AppendObserver *observer = nullptr;
  /// Keeps a bf16 copy of the cache beside the artifact's encodings and
  /// compares every decode step's attention with it (see
  /// Engine::fidelity()); costs the copy's memory and a second attention.
  bool measureFidelity = false;
  /// The k of LayerFidelity::topKOverlap.
  uint32_t fidelityTopK = 16;
  /// cuda backend: a decode step whose shape (rows, and lengths within a
  /// bucket of about 25%) repeats is captured once in a CUDA graph and
  /// replayed, which saves the launch of each of its kernels.
  bool cudaGraphs = true;
  /// cuda backend: projections that read one input (q, k and v; gate and
  /// up) run as one GEMM over their weights side by side, and a residual
  /// add runs inside the RMSNorm that reads its sum.
  bool cudaFusion = true;
};

/// How far one layer's attention over the compressed cache strays from the
/// same attention over an uncompressed (bf16) copy of the cache, for the
/// same queries: errors are per layer, not compounded through the model.
/// Decode steps only (a batch row whose sequence has no other row in it):
/// prefill rows attend to tokens not yet encoded.
struct LayerFidelity {
  uint32_t layer = 0;
  /// Query rows (one per query head and token) compared.
  uint64_t queries = 0;
  /// Mean over queries of |o - o_ref| / |o_ref|.
  double outputRelativeError = 0;
  /// Mean over queries of |top-k(w) & top-k(w_ref)| / k, k = min(topK,
  /// visible entries); over the queries that saw as many entries as the
  /// reference (NaN when eviction left none).
  double topKOverlap = 0;
};

/// A sequence made by Engine::forkSequence() and how many tokens it holds.
struct ForkedSequence {
  SequenceId sequence = 0;
  int64_t tokens = 0;
};

/// One row of a batch.
struct BatchToken {
  SequenceId sequence = 0;
  int32_t token = 0;
  /// Must exceed every position already stored for the sequence.
  int32_t position = 0;
  /// Whether to compute this row's logits.
  bool logits = false;
};

/// Tokens to append to one sequence, at the positions after its last one.
struct SequenceTokens {
  SequenceId sequence = 0;
  std::vector<int32_t> tokens;
  /// Logits for every token (e.g. to score a text) instead of the last.
  bool allLogits = false;
};

/// Rows of logits, each `vocab` floats, in the order of the batch rows that
/// asked for them.
struct Logits {
  size_t rows = 0;
  size_t vocab = 0;
  std::vector<float> values;
  const float *row(size_t r) const { return values.data() + r * vocab; }
};

struct GenerateOptions {
  int64_t maxNewTokens = 128;
  /// Stop and end-of-sequence tokens are not sampled before this many
  /// tokens have been generated (vLLM's min_tokens); at most maxNewTokens.
  int64_t minNewTokens = 0;
  SamplingParams sampling;
  /// Tokens that end generation (not reported); the model's EOS tokens are
  /// added when stopAtEos is set.
  std::vector<int32_t> stopTokens;
  bool stopAtEos = true;
};

enum class StopReason {
  /// A stop or EOS token was sampled.
  StopToken,
  MaxTokens,
  /// The sequence reached the model's maximum position.
  ContextFull,
  /// The token callback returned false.
  Cancelled,
};

struct GenerateResult {
  std::vector<int32_t> tokens;
  StopReason reason = StopReason::MaxTokens;
};

struct EngineStats {
  uint64_t prefillTokens = 0;
  double prefillSeconds = 0;
  uint64_t decodeTokens = 0;
  double decodeSeconds = 0;
  /// Bytes of keys and values one token takes across all layers, metadata
  /// included (fractional when a scale is shared by several tokens).
  double kvBytesPerToken = 0;
  /// Tokens the cache pool holds, over all sequences.
  uint64_t kvCapacityTokens = 0;
  /// Bytes of cache pages attached to sequences, now and at most so far.
  uint64_t kvBytesInUse = 0;
  uint64_t peakKvBytes = 0;
  /// Eviction (kv-evict): compactions run and cache entries they dropped,
  /// summed over layers.
  uint64_t kvCompactions = 0;
  uint64_t kvEvictedEntries = 0;
  /// Offload (kv-offload), summed over layers: pages decode attentions
  /// read, those resident (hits; by a prefetch: prefetchHits) and those
  /// fetched on demand (misses); pages prefetched, pages a dense attention
  /// streamed in, and the bytes all those copies move (on the CPU backend
  /// counted, not copied: docs/offload.md).
  struct Offload {
    uint64_t pagesRead = 0, hits = 0, misses = 0, prefetchHits = 0;
    uint64_t prefetched = 0, streamed = 0;
    uint64_t bytesIn = 0;
    /// Calls whose schedules ran on the host beside the GPU (cuda), and
    /// those whose last schedule ended after the GPU had run the call: the
    /// host then set the call's length.
    uint64_t scheduledCalls = 0, lateSchedules = 0;
  } offload;

  double prefillTokensPerSecond() const {
    return prefillSeconds > 0 ? double(prefillTokens) / prefillSeconds : 0;
  }
  double decodeTokensPerSecond() const {
    return decodeSeconds > 0 ? double(decodeTokens) / decodeSeconds : 0;
  }
};

class Backend;

class Engine {
public:
  /// Prepares `artifact` to run on `options.backend`; fails with one
  /// sentence when the backend cannot run it (a kernel, cache encoding or
  /// target it does not support).
  static StatusOr<std::unique_ptr<Engine>>
  create(std::shared_ptr<const Artifact> artifact,
         const EngineOptions &options = {});
  ~Engine();

  const Artifact &artifact() const { return *artifact_; }
  int64_t vocabSize() const;

  /// A new, empty sequence.
  StatusOr<SequenceId> addSequence();
  /// A new sequence holding the first tokens of `from`, of its first
  /// `tokens` as many as the cache shares with it instead of storing them
  /// again: whole pages of entries already encoded, in every layer. None
  /// where the backend cannot share (layers that evict or offload, a
  /// fidelity copy, the cuda backend's exact tokens; see docs/serve.md):
  /// the sequence is then empty. Either way, continue it with the tokens
  /// after those it holds. Entries are read as `from` wrote them, so the
  /// two sequences see the same cache for their common tokens.
  StatusOr<ForkedSequence> forkSequence(SequenceId from, int64_t tokens);
  /// The multiple of tokens forkSequence() shares (whole pages of every
  /// layer), or 0 when this engine shares none.
  int64_t forkGranularity() const;
  /// Frees the sequence's cache pages (shared ones once no sequence holds
  /// them).
  Status removeSequence(SequenceId sequence);
  /// Tokens stored for the sequence.
  StatusOr<int64_t> sequenceLength(SequenceId sequence) const;

  /// Runs the plan on `batch`. Either every row is stored and logits() holds
  /// the requested rows, or nothing changed and the Status says why (an
  /// unknown sequence, a token outside the vocabulary, a position that does
  /// not increase, a full cache).
  Status forward(const std::vector<BatchToken> &batch);
  /// Appends each entry's tokens to its sequence; logits() then holds each
  /// entry's last row (every row with allLogits), entry by entry.
  Status prefill(const std::vector<SequenceTokens> &batch);
  /// Appends one token to each listed sequence (a decode step).
  Status step(const std::vector<std::pair<SequenceId, int32_t>> &tokens);
  /// prefill() that returns each entry's greedy next token (greedyToken()
  /// of its last row's logits: the largest, NaN as -inf, the lowest id
  /// among equal ones) instead of its logits: the CUDA backend picks it on
  /// the device, so no vocab floats cross to the host. logits() is then
  /// empty. Entries may not ask for allLogits.
  StatusOr<std::vector<int32_t>>
  prefillGreedy(const std::vector<SequenceTokens> &batch);
  /// step() as prefillGreedy() does it.
  StatusOr<std::vector<int32_t>>
  stepGreedy(const std::vector<std::pair<SequenceId, int32_t>> &tokens);
  /// The logits of the last successful forward, prefill or step.
  const Logits &logits() const { return logits_; }

  /// Generates from `prompt` in a sequence of its own (removed after),
  /// calling `onToken` with each new token; generation stops early when it
  /// returns false.
  StatusOr<GenerateResult>
  generate(const std::vector<int32_t> &prompt, const GenerateOptions &options,
           const std::function<bool(int32_t)> &onToken = {});

  EngineStats stats() const;
  /// The positions of the entries cache layer `layer` holds for `sequence`,
  /// per KV head, in the cache's order: all positions so far, or after
  /// eviction those of the kept entries (for checks and inspection).
  StatusOr<std::vector<std::vector<int32_t>>>
  cachedPositions(SequenceId sequence, uint32_t layer) const;
  /// Per cache layer, what measureFidelity recorded since the engine was
  /// created or resetFidelity() was called; empty without measureFidelity.
  std::vector<LayerFidelity> fidelity() const;
  void resetFidelity();

private:
  Engine(std::shared_ptr<const Artifact> artifact,
         std::unique_ptr<Backend> backend);
  /// With `greedy`, each requested row's greedy token there instead of
  /// logits.
  Status forwardImpl(const std::vector<BatchToken> &batch,
                     std::vector<int32_t> *greedy = nullptr);
  Status prefillImpl(const std::vector<SequenceTokens> &batch,
                     std::vector<int32_t> *greedy = nullptr);
  StatusOr<GenerateResult>
  generateImpl(const std::vector<int32_t> &prompt,
               const GenerateOptions &options,
               const std::function<bool(int32_t)> &onToken);

  std::shared_ptr<const Artifact> artifact_;
  std::unique_ptr<Backend> backend_;
  struct SequenceState {
    /// Positions of later tokens must be at least this.
    int64_t nextPosition = 0;
    int64_t length = 0;
  };
  std::unordered_map<SequenceId, SequenceState> sequences_;
  SequenceId nextId_ = 1;
  Logits logits_;
  /// The storage of the logits before logits_, for the next batch.
  std::vector<float> spareLogits_;
  EngineStats stats_;
};

} // namespace kvrt

#endif // KVRT_RUNTIME_H
