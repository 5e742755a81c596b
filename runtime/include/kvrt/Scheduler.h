//===- Scheduler.h - Continuous batching over one Engine --------*- C++ -*-===//
//
// Serving many requests with one engine: a thread of its own admits waiting
// requests as running ones finish (at most maxBatch at once), prefills new
// prompts a chunk per iteration so that a long prompt delays the others'
// next token by one chunk at most, in the same engine call as one decode
// row for every running sequence. Each request's tokens reach its owner through
// a Request as they are sampled; the owner may cancel it at any time.
//
// When the KV cache has no room for an iteration's batch, the request that
// arrived last is preempted, as vLLM does by default: its sequence is freed
// and it waits at the head of the queue, to be prefilled again (prompt and
// tokens so far) once a running request has ended. Its owner sees nothing
// but the delay. A request that does not fit the cache alone ends with the
// cache's sentence. Sequences kept for reuse (retainedSequences) are freed
// before anything is preempted.
//
// A new request whose prompt begins with tokens another sequence holds
// (running or kept: a shared system prompt, an earlier turn of the same
// chat) starts with that sequence's whole pages of them, shared rather
// than copied or prefilled again, where the backend can share
// (Engine::forkSequence()). A waiting request whose prompt begins like
// that of a running request still being prefilled waits until those pages
// are stored (requests that arrive together with one system prompt then
// prefill it once, as SGLang schedules them; submitAll() makes a batch
// arrive together whatever the scheduler's thread is doing).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_SCHEDULER_H
#define KVRT_SCHEDULER_H

#include "kvrt/Generation.h"
#include "kvrt/Runtime.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace kvrt {

struct SchedulerOptions {
  /// Sequences in the engine at once.
  size_t maxBatch = 8;
  /// Prompt tokens prefilled per iteration, over all new sequences.
  size_t prefillChunk = 512;
  /// Requests waiting for a place at most; submit() refuses more.
  size_t maxWaiting = 256;
  /// Finished requests' sequences kept in the engine, so that a request
  /// whose prompt continues one of them (a chat's next turn: the last
  /// prompt, the answer, the new message) prefills only what is new. The
  /// least recently finished goes first when more are kept or the cache
  /// needs room; 0 keeps none.
  size_t retainedSequences = 0;
  /// Whether a request shares the pages of a prefix another sequence
  /// holds (above); off, every request prefills its whole prompt.
  bool sharePrefixes = true;
};

/// Log probabilities a request asks for, from the model's raw distribution
/// (before temperature, top-p or penalties), as OpenAI's API reports them.
struct LogprobOptions {
  /// Each sampled token's log probability and the `top` most likely
  /// tokens' beside it; -1: none.
  int32_t top = -1;
  /// Also each prompt token's after the first (OpenAI's echo, vLLM's
  /// prompt_logprobs), with `top` (at least 0) beside it. Prefills the
  /// whole prompt even when no token is to be sampled.
  bool prompt = false;
};

/// One token's log probability under the distribution it was drawn from
/// (a prompt token: the one the tokens before it give), and the most
/// likely tokens of that distribution, most likely first.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};

/// Wakes one owner when any of several requests has news (a completion's
/// n choices): given to Scheduler::submit() with each of them.
class UpdateSignal {
public:
  /// Waits until a request has had news since the last call returned, or
  /// `timeout` passes.
  void wait(std::chrono::milliseconds timeout);

private:
  friend class Request;
  void notify();

  std::mutex mutex_;
  std::condition_variable changed_;
  bool signalled_ = false;
};

/// One submitted generation, shared by the scheduler and its owner.
class Request {
public:
  struct Update {
    /// Tokens sampled since the last update, in order.
    std::vector<int32_t> tokens;
    /// With LogprobOptions::top >= 0: one per token of `tokens`.
    std::vector<TokenLogprob> logprobs;
    /// With LogprobOptions::prompt: prompt tokens 1, 2, ... in order, each
    /// once, all before the first sampled token.
    std::vector<TokenLogprob> promptLogprobs;
    /// Set once generation has ended: why (Cancelled when cancelled or
    /// failed).
    std::optional<StopReason> end;
    /// Why the engine could not run it; ok unless it failed.
    Status error;
  };

  /// Waits until tokens or the end arrive, or `timeout` passes, and returns
  /// what came (nothing when the time ran out); after the end, returns it
  /// again at once.
  Update wait(std::chrono::milliseconds timeout = std::chrono::hours(24));
  /// Asks the scheduler to stop generating; it frees the sequence at its
  /// next iteration and then reports the end.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

private:
  friend class Scheduler;
  Request() = default;
  void deliver(int32_t token, std::optional<TokenLogprob> logprob);
  void deliverPrompt(std::vector<TokenLogprob> logprobs);
  void finish(StopReason reason, Status error = Status::ok());
  /// Wakes wait() and the signal, if any.
  void notify();

  std::shared_ptr<UpdateSignal> signal_;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int32_t> pending_;
  std::vector<TokenLogprob> pendingLogprobs_, pendingPromptLogprobs_;
  std::optional<StopReason> end_;
  Status error_;
};

/// Durations in seconds as a Prometheus histogram: how many observations
/// fell at or below each bound (each counted once, at the first bound that
/// holds it; the last count is above every bound), their sum and count.
struct LatencyHistogram {
  /// The upper bounds, increasing: vLLM's time-to-first-token buckets,
  /// 1 ms to about 43 minutes.
  static const std::vector<double> &bounds();
  std::vector<uint64_t> counts = std::vector<uint64_t>(bounds().size() + 1);
  double sum = 0;
  uint64_t count = 0;
  void observe(double seconds);
};

struct SchedulerStats {
  size_t running = 0, waiting = 0;
  uint64_t finishedRequests = 0;
  /// Tokens prefilled: prompts, and the contexts of preempted requests
  /// again.
  uint64_t promptTokens = 0;
  /// Engine calls with at least one decode row, and those rows (each a
  /// generated token fed back).
  uint64_t decodeSteps = 0, decodeRows = 0;
  /// Requests sent back to the queue for want of cache room, and the cached
  /// tokens they dropped (prefilled again when they come back).
  uint64_t preemptions = 0, recomputedTokens = 0;
  /// Finished sequences kept for reuse now; requests that continued one,
  /// and the cached tokens they did not prefill again.
  size_t retained = 0;
  uint64_t resumedRequests = 0, reusedTokens = 0;
  /// Requests that started with pages of another sequence's cache, and
  /// the tokens those pages held.
  uint64_t sharedPrefixRequests = 0, sharedPrefixTokens = 0;
  /// From submission to a first place in the engine; to the first token;
  /// between a request's tokens; and to the end of every request that
  /// ended with neither an error nor a cancellation.
  LatencyHistogram queueTime, timeToFirstToken, interTokenLatency, endToEnd;
  /// The engine's own counters: a call that mixes decode rows with prompt
  /// chunks counts there as a prefill.
  EngineStats engine;
};

class Scheduler {
public:
  /// Starts the scheduling thread; `engine` must outlive the scheduler and
  /// be used by nothing else meanwhile.
  Scheduler(Engine &engine, const SchedulerOptions &options);
  /// Ends every request (Cancelled) and joins the thread.
  ~Scheduler();
  Scheduler(const Scheduler &) = delete;
  Scheduler &operator=(const Scheduler &) = delete;

  /// A generation (made by Generation::create, which checks the prompt and
  /// the options) to queue; with `signal`, every update of its request
  /// also wakes it.
  struct Submission {
    Generation generation;
    LogprobOptions logprobs;
    std::shared_ptr<UpdateSignal> signal;
  };
  /// Queues all of `submissions` at once (the scheduler admits none of them
  /// before all are queued), or none: fails with one sentence only when the
  /// queue has no room for all of them or the scheduler is stopping.
  StatusOr<std::vector<std::shared_ptr<Request>>>
  submitAll(std::vector<Submission> submissions);
  /// submitAll() of one generation.
  StatusOr<std::shared_ptr<Request>>
  submit(Generation generation, LogprobOptions logprobs = {},
         std::shared_ptr<UpdateSignal> signal = nullptr);
  /// Ends every request (Cancelled), refuses new ones and stops the thread;
  /// the destructor does it too.
  void shutdown();
  SchedulerStats stats() const;

private:
  /// A request and its place in the engine.
  struct Running {
    std::shared_ptr<Request> request;
    Generation generation;
    /// Submission order: the last to arrive is the first preempted.
    uint64_t arrival = 0;
    /// When it was submitted, whether it has had a place in the engine,
    /// and when it emitted its last token (with how many so far).
    std::chrono::steady_clock::time_point submitted;
    bool placed = false;
    std::chrono::steady_clock::time_point lastToken;
    size_t emitted = 0;
    LogprobOptions logprobs;
    /// Prompt positions whose log probabilities were delivered (the first
    /// has none), so that a recomputation does not send them again.
    size_t promptScored = 1;
    /// 0 until the engine has a sequence for it.
    SequenceId sequence = 0;
    /// What its sequence must hold before it decodes: the prompt, or after
    /// a preemption the prompt and every token emitted since.
    std::vector<int32_t> context;
    /// Tokens of `context` already in the engine.
    size_t prefilled = 0;
    /// The last emitted token, which the next decode step feeds.
    std::optional<int32_t> next;
    bool ended = false;
  };

  void loop();
  /// Admits waiting requests into free places; false when stopping.
  bool admit(std::vector<Running> &running);
  /// One engine call: a decode row for every running sequence that has a
  /// token to feed, and up to prefillChunk prompt tokens of new ones.
  void iterate(std::vector<Running> &running);
  /// Runs one engine call of one row group per entry of `rows` and returns
  /// the next token of each row in `wanted` (the others' are not sampled):
  /// on failure, the rows one call each, so that an error ends only the
  /// request that caused it. Nothing, when the cache had no room for the
  /// batch and `running` held a request to preempt (it was).
  /// A sampled token, with its log probability when its request asked.
  struct Sampled {
    int32_t token;
    std::optional<TokenLogprob> logprob;
  };
  std::optional<std::vector<std::optional<Sampled>>>
  runRows(std::vector<Running> &running,
          const std::vector<SequenceTokens> &batch,
          const std::vector<Running *> &rows, const std::vector<bool> &wanted);
  /// Delivers the log probabilities of the prompt tokens that the `count`
  /// logits rows from `firstRow` (a chunk of `r`'s context) give.
  void scorePrompt(Running &r, const Logits &logits, size_t firstRow,
                   size_t count);
  /// Frees the sequence of the running request that arrived last and
  /// queues it first; false when fewer than two are running.
  bool preempt(std::vector<Running> &running);
  /// Keeps an ended request's sequence for a request that continues it;
  /// false when there is nothing worth keeping.
  bool retain(const Running &r);
  /// Gives `r` the kept sequence whose tokens are the longest proper prefix
  /// of its context; false when none is.
  bool resume(Running &r);
  /// Whether `w` should wait for a running request that is prefilling
  /// pages `w` could share once they are stored.
  bool awaitsSharedPrefix(const Running &w,
                          const std::vector<Running> &running) const;
  /// Gives `r` a new sequence, holding as much of its context as the
  /// cache can share with the running or kept sequence whose tokens begin
  /// like it for longest.
  Status startSequence(Running &r, const std::vector<Running> &running);
  /// Frees the least recently kept sequence; false when none is kept.
  bool dropRetained();
  /// Handles a sampled token: emits it or ends the request.
  void accept(Running &r, int32_t token,
              std::optional<TokenLogprob> logprob = std::nullopt);
  void end(Running &r, StopReason reason, Status error = Status::ok());
  /// Drops ended requests from `running`.
  void retire(std::vector<Running> &running);

  Engine &engine_;
  const SchedulerOptions options_;
  /// engine_.forkGranularity(), which does not change.
  const size_t forkGranularity_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Running> waiting_;
  uint64_t arrivals_ = 0;
  /// A finished request's sequence and the tokens its cache holds, least
  /// recently finished first; the scheduling thread's.
  struct Retained {
    SequenceId sequence;
    std::vector<int32_t> tokens;
  };
  std::deque<Retained> retained_;
  /// The scheduling thread's: set by a preemption, cleared when a request
  /// that held a sequence ends. No admission meanwhile, or the preempted
  /// request would come straight back.
  bool cacheBound_ = false;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

} // namespace kvrt

#endif // KVRT_SCHEDULER_H
