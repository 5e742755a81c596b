//===- Scheduler.cpp ------------------------------------------------------===//
#include "kvrt/Scheduler.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>

namespace kvrt {
namespace {

/// `token`'s log probability under the softmax of `logits`, and the `top`
/// most likely tokens' (ties to the lower id), in double precision.
TokenLogprob logprobOf(const float *logits, size_t vocab, int32_t token,
                       int32_t top) {
  const float most = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i)
    sum += std::exp(double(logits[i]) - double(most));
  const double logNormaliser = double(most) + std::log(sum);
  TokenLogprob out{token, float(double(logits[token]) - logNormaliser), {}};
  const size_t k = std::min(size_t(std::max(top, 0)), vocab);
  if (k == 0)
    return out;
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  auto likelier = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(),
                    likelier);
  for (size_t i = 0; i < k; ++i)
    out.top.push_back({ids[i], float(double(logits[ids[i]]) - logNormaliser)});
  return out;
}

} // namespace

const std::vector<double> &LatencyHistogram::bounds() {
  static const std::vector<double> kBounds = {
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5, 0.75,
      1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160,  640, 2560};
  return kBounds;
}

void LatencyHistogram::observe(double seconds) {
  const std::vector<double> &b = bounds();
  ++counts[size_t(std::lower_bound(b.begin(), b.end(), seconds) - b.begin())];
  sum += seconds;
  ++count;
}

namespace {

double seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

} // namespace

void UpdateSignal::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return signalled_; });
  signalled_ = false;
}

void UpdateSignal::notify() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    signalled_ = true;
  }
  changed_.notify_all();
}

void Request::notify() {
  changed_.notify_all();
  if (signal_)
    signal_->notify();
}

Request::Update Request::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout,
                    [&] { return !pending_.empty() || end_.has_value(); });
  Update update;
  update.tokens.swap(pending_);
  update.logprobs.swap(pendingLogprobs_);
  update.promptLogprobs.swap(pendingPromptLogprobs_);
  update.end = end_;
  update.error = error_;
  return update;
}

void Request::deliver(int32_t token, std::optional<TokenLogprob> logprob) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(token);
    if (logprob)
      pendingLogprobs_.push_back(std::move(*logprob));
  }
  notify();
}

void Request::deliverPrompt(std::vector<TokenLogprob> logprobs) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (TokenLogprob &logprob : logprobs)
      pendingPromptLogprobs_.push_back(std::move(logprob));
  }
  notify();
}

void Request::finish(StopReason reason, Status error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    end_ = reason;
    error_ = std::move(error);
  }
  notify();
}

Scheduler::Scheduler(Engine &engine, const SchedulerOptions &options)
    : engine_(engine), options_(options),
      forkGranularity_(size_t(engine.forkGranularity())) {
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

StatusOr<std::vector<std::shared_ptr<Request>>>
Scheduler::submitAll(std::vector<Submission> submissions) {
  std::vector<std::shared_ptr<Request>> requests;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_)
      return Status::error("the server is shutting down");
    if (submissions.size() >
        options_.maxWaiting - std::min(options_.maxWaiting, waiting_.size()))
      return Status::error(
          "this server queues at most " + std::to_string(options_.maxWaiting) +
          " requests and " + std::to_string(waiting_.size()) +
          " are already waiting" +
          (submissions.size() > 1
               ? ": the " + std::to_string(submissions.size()) +
                     " of this batch do not fit"
               : ""));
    const auto now = std::chrono::steady_clock::now();
    for (Submission &s : submissions) {
      std::shared_ptr<Request> request(new Request());
      request->signal_ = std::move(s.signal);
      Running r{request, std::move(s.generation), arrivals_++};
      r.submitted = now;
      r.logprobs = s.logprobs;
      waiting_.push_back(std::move(r));
      requests.push_back(std::move(request));
    }
    stats_.waiting = waiting_.size();
  }
  wake_.notify_all();
  return requests;
}

StatusOr<std::shared_ptr<Request>>
Scheduler::submit(Generation generation, LogprobOptions logprobs,
                  std::shared_ptr<UpdateSignal> signal) {
  std::vector<Submission> one;
  one.push_back({std::move(generation), logprobs, std::move(signal)});
  StatusOr<std::vector<std::shared_ptr<Request>>> requests =
      submitAll(std::move(one));
  if (!requests)
    return requests.status();
  return requests->front();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Scheduler::loop() {
  std::vector<Running> running;
  while (admit(running)) {
    // The engine reports its failures as a Status; what is left (running
    // out of memory while sampling) ends the running requests, not the
    // server.
    try {
      for (Running &r : running)
        if (!r.ended && r.request->cancelled())
          end(r, StopReason::Cancelled);
      retire(running);
      iterate(running);
    } catch (const std::exception &e) {
      for (Running &r : running)
        end(r, StopReason::Cancelled,
            Status::error(std::string("serving failed: ") + e.what()));
    }
    retire(running);
    EngineStats engineStats = engine_.stats();
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.running = running.size();
    stats_.waiting = waiting_.size();
    stats_.engine = engineStats;
  }
  for (Running &r : running)
    end(r, StopReason::Cancelled);
  while (dropRetained()) {
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (Running &r : waiting_)
    r.request->finish(StopReason::Cancelled);
  waiting_.clear();
}

bool Scheduler::admit(std::vector<Running> &running) {
  size_t before = running.size();
  // Requests cancelled while they wait (a preempted one may wait long).
  std::vector<Running> cancelled;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] {
      return stopping_ || !waiting_.empty() || !running.empty();
    });
    if (stopping_)
      return false;
    for (auto w = waiting_.begin(); w != waiting_.end();) {
      if (!w->request->cancelled()) {
        ++w;
        continue;
      }
      cancelled.push_back(std::move(*w));
      w = waiting_.erase(w);
    }
    // In order, passing over (a bounded number of) requests that wait for
    // a prefix being prefilled.
    size_t passed = 0;
    for (auto w = waiting_.begin(); w != waiting_.end() && !cacheBound_ &&
                                    running.size() < options_.maxBatch &&
                                    passed <= options_.maxBatch;) {
      if (awaitsSharedPrefix(*w, running)) {
        ++w;
        ++passed;
        continue;
      }
      running.push_back(std::move(*w));
      w = waiting_.erase(w);
    }
  }
  for (Running &r : cancelled)
    end(r, StopReason::Cancelled);
  for (size_t i = before; i < running.size(); ++i) {
    Running &r = running[i];
    if (!r.placed) {
      r.placed = true;
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.queueTime.observe(
          seconds(std::chrono::steady_clock::now() - r.submitted));
    }
    if (r.context.empty())
      r.context = r.generation.prompt();
    // Prompt log probabilities need the prompt's logits, even with no
    // token to sample, and a prefix prefilled by another request has none.
    if (r.generation.empty() && !r.logprobs.prompt) {
      end(r, StopReason::MaxTokens);
      continue;
    }
    if (!r.logprobs.prompt && resume(r))
      continue;
    Status started = startSequence(r, running);
    if (!started)
      end(r, StopReason::Cancelled, started);
  }
  return true;
}

namespace {

/// How many of `context`'s first tokens equal the first `length` tokens of
/// `first` followed by `second` (a request's prompt and generated tokens).
size_t commonPrefix(const std::vector<int32_t> &context,
                    const std::vector<int32_t> &first,
                    const std::vector<int32_t> &second, size_t length) {
  const size_t limit = std::min(context.size(), length);
  size_t i = 0;
  for (; i < limit && i < first.size(); ++i)
    if (context[i] != first[i])
      return i;
  for (; i < limit; ++i)
    if (context[i] != second[i - first.size()])
      return i;
  return i;
}

} // namespace

bool Scheduler::awaitsSharedPrefix(const Running &w,
                                   const std::vector<Running> &running) const {
  const size_t granularity = forkGranularity_;
  if (!options_.sharePrefixes || granularity == 0 || w.logprobs.prompt)
    return false;
  const std::vector<int32_t> none;
  const std::vector<int32_t> &context =
      w.context.empty() ? w.generation.prompt() : w.context;
  for (const Running &o : running) {
    const std::vector<int32_t> &held =
        o.context.empty() ? o.generation.prompt() : o.context;
    if (o.ended || o.prefilled >= held.size())
      continue;
    // The pages `w` could share now and once `o` has stored the next one;
    // comparing that far is enough.
    const size_t now = o.prefilled / granularity;
    const size_t common =
        std::min(commonPrefix(context, held, none, (now + 1) * granularity),
                 context.size() - 1);
    if (common / granularity > now)
      return true;
  }
  return false;
}

Status Scheduler::startSequence(Running &r,
                                const std::vector<Running> &running) {
  // Prompt log probabilities need every prompt token's logits.
  SequenceId from = 0;
  size_t common = 0;
  if (options_.sharePrefixes && !r.logprobs.prompt) {
    const std::vector<int32_t> none;
    for (const Retained &kept : retained_) {
      const size_t n =
          commonPrefix(r.context, kept.tokens, none, kept.tokens.size());
      if (n > common) {
        from = kept.sequence;
        common = n;
      }
    }
    // A running sequence holds its prompt and emitted tokens fed back.
    for (const Running &other : running) {
      if (other.sequence == 0 || other.ended)
        continue;
      const size_t n = commonPrefix(
          r.context, other.generation.prompt(), other.generation.generated(),
          size_t(engine_.sequenceLength(other.sequence).value()));
      if (n > common) {
        from = other.sequence;
        common = n;
      }
    }
  }
  // At least the context's last token is prefilled: its logits give the
  // first token to sample.
  common = std::min(common, r.context.size() - 1);
  if (common == 0) {
    StatusOr<SequenceId> sequence = engine_.addSequence();
    if (!sequence)
      return sequence.status();
    r.sequence = *sequence;
    return Status::ok();
  }
  StatusOr<ForkedSequence> forked = engine_.forkSequence(from, int64_t(common));
  if (!forked)
    return forked.status();
  r.sequence = forked->sequence;
  r.prefilled = size_t(forked->tokens);
  if (forked->tokens > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.sharedPrefixRequests;
    stats_.sharedPrefixTokens += uint64_t(forked->tokens);
  }
  return Status::ok();
}

std::optional<std::vector<std::optional<Scheduler::Sampled>>>
Scheduler::runRows(std::vector<Running> &running,
                   const std::vector<SequenceTokens> &batch,
                   const std::vector<Running *> &rows,
                   const std::vector<bool> &wanted) {
  std::vector<std::optional<Sampled>> next(rows.size());
  // Greedy rows that want no log probabilities only: the engine picks the
  // tokens (on a GPU the logits then stay on the device).
  bool greedy = std::all_of(rows.begin(), rows.end(), [](Running *r) {
    return r->generation.greedy() && r->logprobs.top < 0 && !r->logprobs.prompt;
  });
  auto call = [&](const std::vector<SequenceTokens> &entries, size_t first) {
    if (greedy) {
      StatusOr<std::vector<int32_t>> picked = engine_.prefillGreedy(entries);
      if (!picked)
        return picked.status();
      for (size_t e = 0; e < entries.size(); ++e)
        if (wanted[first + e])
          next[first + e] = Sampled{(*picked)[e], std::nullopt};
      return Status::ok();
    }
    KVRT_RETURN_IF_ERROR(engine_.prefill(entries));
    const Logits &logits = engine_.logits();
    // An entry with allLogits has a row per token, the others their last.
    size_t row = 0;
    for (size_t e = 0; e < entries.size(); ++e) {
      Running &r = *rows[first + e];
      const size_t count = entries[e].allLogits ? entries[e].tokens.size() : 1;
      if (entries[e].allLogits)
        scorePrompt(r, logits, row, count);
      row += count;
      if (!wanted[first + e])
        continue;
      const float *last = logits.row(row - 1);
      const int32_t token = r.generation.sample(last, logits.vocab);
      next[first + e] =
          Sampled{token, r.logprobs.top < 0
                             ? std::nullopt
                             : std::optional<TokenLogprob>(logprobOf(
                                   last, logits.vocab, token, r.logprobs.top))};
    }
    return Status::ok();
  };
  Status status = call(batch, 0);
  if (status.isOk())
    return next;
  if (status.isCacheFull() && (dropRetained() || preempt(running)))
    return std::nullopt;
  if (batch.size() == 1) {
    end(*rows[0], StopReason::Cancelled, status);
    return next;
  }
  // Nothing was stored (Engine::prefill is all or nothing): find the row
  // that fails by running each alone.
  for (size_t e = 0; e < batch.size(); ++e) {
    Status alone = call({batch[e]}, e);
    if (!alone.isOk())
      end(*rows[e], StopReason::Cancelled, alone);
  }
  return next;
}

void Scheduler::scorePrompt(Running &r, const Logits &logits, size_t firstRow,
                            size_t count) {
  // Row j holds the logits after context token prefilled + j, which give
  // the probability of the prompt token after it.
  const std::vector<int32_t> &prompt = r.generation.prompt();
  std::vector<TokenLogprob> scored;
  for (size_t j = 0; j < count; ++j) {
    const size_t position = r.prefilled + j + 1;
    if (position >= prompt.size())
      break;
    if (position < r.promptScored)
      continue;
    scored.push_back(logprobOf(logits.row(firstRow + j), logits.vocab,
                               prompt[position], std::max(r.logprobs.top, 0)));
    r.promptScored = position + 1;
  }
  if (!scored.empty())
    r.request->deliverPrompt(std::move(scored));
}

bool Scheduler::preempt(std::vector<Running> &running) {
  auto live = [](const Running &r) { return !r.ended; };
  if (std::count_if(running.begin(), running.end(), live) < 2)
    return false;
  auto victim = running.end();
  for (auto r = running.begin(); r != running.end(); ++r)
    if (live(*r) && (victim == running.end() || r->arrival > victim->arrival))
      victim = r;
  uint64_t held = 0;
  if (victim->sequence != 0) {
    held = uint64_t(engine_.sequenceLength(victim->sequence).value());
    (void)engine_.removeSequence(victim->sequence);
    victim->sequence = 0;
  }
  // The token it would feed next is the context's last: prefilling the
  // whole context samples the token after it, as that decode row would.
  victim->context = victim->generation.prompt();
  const std::vector<int32_t> &generated = victim->generation.generated();
  victim->context.insert(victim->context.end(), generated.begin(),
                         generated.end());
  victim->prefilled = 0;
  victim->next.reset();
  cacheBound_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.preemptions;
    stats_.recomputedTokens += held;
    // Ahead of every request that arrived after it.
    auto place =
        std::find_if(waiting_.begin(), waiting_.end(), [&](const Running &w) {
          return w.arrival > victim->arrival;
        });
    waiting_.insert(place, std::move(*victim));
  }
  running.erase(victim);
  return true;
}

bool Scheduler::retain(const Running &r) {
  const int64_t length = engine_.sequenceLength(r.sequence).value();
  if (options_.retainedSequences == 0 || length == 0)
    return false;
  // What the cache holds: the prompt and the emitted tokens fed back, a
  // prefix of both together (the last token emitted is never fed).
  Retained kept{r.sequence, r.generation.prompt()};
  const std::vector<int32_t> &generated = r.generation.generated();
  kept.tokens.insert(kept.tokens.end(), generated.begin(), generated.end());
  kept.tokens.resize(size_t(length));
  retained_.push_back(std::move(kept));
  while (retained_.size() > options_.retainedSequences)
    (void)dropRetained();
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.retained = retained_.size();
  return true;
}

bool Scheduler::resume(Running &r) {
  auto best = retained_.end();
  for (auto kept = retained_.begin(); kept != retained_.end(); ++kept)
    if (kept->tokens.size() < r.context.size() &&
        std::equal(kept->tokens.begin(), kept->tokens.end(),
                   r.context.begin()) &&
        (best == retained_.end() || kept->tokens.size() > best->tokens.size()))
      best = kept;
  if (best == retained_.end())
    return false;
  r.sequence = best->sequence;
  r.prefilled = best->tokens.size();
  retained_.erase(best);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.retained = retained_.size();
  ++stats_.resumedRequests;
  stats_.reusedTokens += r.prefilled;
  return true;
}

bool Scheduler::dropRetained() {
  if (retained_.empty())
    return false;
  (void)engine_.removeSequence(retained_.front().sequence);
  retained_.pop_front();
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.retained = retained_.size();
  return true;
}

void Scheduler::iterate(std::vector<Running> &running) {
  // Decode rows first, then prompt chunks, in one engine call: one pass
  // over the weights serves both.
  std::vector<SequenceTokens> batch;
  std::vector<Running *> rows;
  std::vector<bool> wanted;
  size_t decodeRows = 0;
  for (Running &r : running) {
    if (r.ended || !r.next)
      continue;
    batch.push_back({r.sequence, {*r.next}, false});
    rows.push_back(&r);
    wanted.push_back(true);
    ++decodeRows;
  }
  size_t budget = options_.prefillChunk, promptTokens = 0;
  for (Running &r : running) {
    const std::vector<int32_t> &context = r.context;
    if (r.ended || r.prefilled == context.size() || budget == 0)
      continue;
    size_t count = std::min(context.size() - r.prefilled, budget);
    budget -= count;
    promptTokens += count;
    // Every row's logits while prompt tokens are still to be scored.
    const bool scores = r.logprobs.prompt &&
                        r.promptScored < r.generation.prompt().size() &&
                        r.promptScored <= r.prefilled + count;
    batch.push_back(
        {r.sequence,
         std::vector<int32_t>(context.begin() + r.prefilled,
                              context.begin() + r.prefilled + count),
         scores});
    rows.push_back(&r);
    // Only a context's last chunk gives a token to sample, if one is wanted.
    wanted.push_back(r.prefilled + count == context.size() &&
                     !r.generation.empty());
  }
  if (batch.empty())
    return;
  std::optional<std::vector<std::optional<Sampled>>> sampled =
      runRows(running, batch, rows, wanted);
  if (!sampled)
    return; // A request was preempted: `rows` no longer holds.
  std::vector<std::optional<Sampled>> &next = *sampled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.promptTokens += promptTokens;
    stats_.decodeSteps += decodeRows > 0;
    stats_.decodeRows += decodeRows;
  }
  for (size_t e = 0; e < rows.size(); ++e) {
    Running &r = *rows[e];
    if (e < decodeRows)
      r.next.reset();
    else if (!r.ended)
      r.prefilled += batch[e].tokens.size();
    if (!r.ended && next[e])
      accept(r, next[e]->token, std::move(next[e]->logprob));
    // A request for the prompt's log probabilities alone (max_tokens 0).
    if (!r.ended && r.generation.empty() && r.prefilled == r.context.size())
      end(r, StopReason::MaxTokens);
  }
}

void Scheduler::accept(Running &r, int32_t token,
                       std::optional<TokenLogprob> logprob) {
  if (std::optional<StopReason> stop = r.generation.stopsAt(token)) {
    end(r, *stop);
    return;
  }
  std::optional<StopReason> ends = r.generation.record(token);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (r.emitted++ == 0)
      stats_.timeToFirstToken.observe(seconds(now - r.submitted));
    else
      stats_.interTokenLatency.observe(seconds(now - r.lastToken));
  }
  r.lastToken = now;
  r.request->deliver(token, std::move(logprob));
  if (ends)
    end(r, *ends);
  else
    r.next = token;
}

void Scheduler::end(Running &r, StopReason reason, Status error) {
  if (r.ended)
    return;
  r.ended = true;
  if (r.sequence != 0) {
    // A failed call stored nothing, but its request may be the cause.
    if (!error.isOk() || !retain(r))
      (void)engine_.removeSequence(r.sequence);
    cacheBound_ = false;
  }
  // Counted before the owner hears of it, so that its stats() show it.
  EngineStats engineStats = engine_.stats();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.finishedRequests;
    stats_.engine = engineStats;
    if (error.isOk() && reason != StopReason::Cancelled)
      stats_.endToEnd.observe(
          seconds(std::chrono::steady_clock::now() - r.submitted));
  }
  r.request->finish(reason, std::move(error));
}

void Scheduler::retire(std::vector<Running> &running) {
  running.erase(std::remove_if(running.begin(), running.end(),
                               [](const Running &r) { return r.ended; }),
                running.end());
}

} // namespace kvrt
