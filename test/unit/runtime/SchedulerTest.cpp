//===- SchedulerTest.cpp - Continuous batching on the tinystories model ---===//
//
// Requests batched together, admitted late, prefilled in chunks or cut short
// must give each the tokens Engine::generate gives it alone; a cancelled or
// refused request must free its place and say why.
//
//===----------------------------------------------------------------------===//
#include "EngineSupport.h"

#include "kvrt/Generation.h"
#include "kvrt/Scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace kvrt;

namespace {

const std::vector<int32_t> kStory = {1,   80,  147,  201, 282, 215,
                                     286, 598, 1662, 887, 610, 57};
const std::vector<int32_t> kTom = {1, 80, 388, 1174, 1714, 84, 235};

std::shared_ptr<const Artifact> tinyStories() {
  return test::openTinyStories("scheduler_test", {});
}

struct Finished {
  std::vector<int32_t> tokens;
  StopReason reason = StopReason::Cancelled;
  Status error;
};

/// Waits for `request` to end, collecting its tokens.
Finished collect(Request &request) {
  Finished finished;
  while (true) {
    Request::Update update = request.wait();
    finished.tokens.insert(finished.tokens.end(), update.tokens.begin(),
                           update.tokens.end());
    if (update.end) {
      finished.reason = *update.end;
      finished.error = update.error;
      return finished;
    }
  }
}

std::shared_ptr<Request> submit(Scheduler &scheduler, const Artifact &artifact,
                                const std::vector<int32_t> &prompt,
                                const GenerateOptions &options) {
  StatusOr<Generation> generation =
      Generation::create(artifact, prompt, options);
  EXPECT_TRUE(generation.isOk()) << generation.status().message();
  StatusOr<std::shared_ptr<Request>> request =
      scheduler.submit(std::move(*generation));
  EXPECT_TRUE(request.isOk()) << request.status().message();
  return *request;
}

GenerateOptions tokens(int64_t n) {
  GenerateOptions options;
  options.maxNewTokens = n;
  options.stopAtEos = false;
  return options;
}

struct Case {
  std::vector<int32_t> prompt;
  GenerateOptions options;
};

/// Prompts of 1 to 12 tokens and 5 to 31 new tokens, greedy, sampled and
/// with a repetition penalty.
std::vector<Case> mixedCases() {
  GenerateOptions sampled = tokens(20);
  sampled.sampling.temperature = 0.9f;
  sampled.sampling.topP = 0.9f;
  sampled.sampling.seed = 11;
  GenerateOptions penalised = tokens(12);
  penalised.sampling.repetitionPenalty = 1.3f;
  return {
      {kStory, tokens(24)},
      {kTom, tokens(5)},
      {std::vector<int32_t>(kStory.begin(), kStory.begin() + 3), tokens(31)},
      {kTom, sampled},
      {kStory, penalised},
      {{1}, tokens(9)},
  };
}

/// What Engine::generate gives each case alone.
std::vector<GenerateResult> alone(std::shared_ptr<const Artifact> artifact,
                                  const std::vector<Case> &cases) {
  std::vector<GenerateResult> results;
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  for (const Case &c : cases)
    results.push_back(engine->generate(c.prompt, c.options).value());
  return results;
}

/// Submits mixedCases() at once to a scheduler of `options` over an engine
/// of `engineOptions`, checks that each gets the tokens it gets alone and
/// that every sequence was freed (those kept for reuse by the shutdown),
/// and returns the scheduler's counters.
SchedulerStats expectEachGetsItsTokensAlone(const SchedulerOptions &options,
                                            EngineOptions engineOptions = {}) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::vector<Case> cases = mixedCases();
  std::vector<GenerateResult> expected = alone(artifact, cases);
  std::unique_ptr<Engine> engine =
      test::engineOrDie(artifact, std::move(engineOptions));
  Scheduler scheduler(*engine, options);
  std::vector<std::shared_ptr<Request>> requests;
  for (const Case &c : cases)
    requests.push_back(submit(scheduler, *artifact, c.prompt, c.options));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    Finished finished = collect(*requests[i]);
    EXPECT_TRUE(finished.error.isOk()) << finished.error.message();
    EXPECT_EQ(finished.tokens, expected[i].tokens);
    EXPECT_EQ(finished.reason, expected[i].reason);
  }
  SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.finishedRequests, cases.size());
  // Every request waited once, had a first token and ended; the others
  // came each after the one before.
  size_t tokens = 0;
  for (const GenerateResult &e : expected)
    tokens += e.tokens.size();
  EXPECT_EQ(stats.queueTime.count, cases.size());
  EXPECT_EQ(stats.timeToFirstToken.count, cases.size());
  EXPECT_EQ(stats.interTokenLatency.count, tokens - cases.size());
  EXPECT_EQ(stats.endToEnd.count, cases.size());
  for (const LatencyHistogram *h :
       {&stats.queueTime, &stats.timeToFirstToken, &stats.interTokenLatency,
        &stats.endToEnd}) {
    EXPECT_EQ(std::accumulate(h->counts.begin(), h->counts.end(), uint64_t(0)),
              h->count);
    EXPECT_GE(h->sum, 0.0);
  }
  EXPECT_GE(stats.endToEnd.sum, stats.timeToFirstToken.sum);
  if (options.retainedSequences == 0)
    EXPECT_EQ(stats.engine.kvBytesInUse, 0u) << "a sequence was not freed";
  scheduler.shutdown();
  EXPECT_EQ(engine->stats().kvBytesInUse, 0u) << "a kept sequence leaked";
  return stats;
}

TEST(Scheduler, BatchedRequestsGetTheTokensEachGetsAlone) {
  // Two places and chunks of 5 prompt tokens: requests wait, join running
  // ones and are prefilled beside others' decode steps.
  SchedulerOptions options;
  options.maxBatch = 2;
  options.prefillChunk = 5;
  SchedulerStats stats = expectEachGetsItsTokensAlone(options);
  EXPECT_GT(stats.decodeRows, stats.decodeSteps) << "no step ran two rows";
}

TEST(Scheduler, ACacheTooSmallForTheBatchPreemptsAndRecomputes) {
  // Four pages of 16 tokens a layer: any request fits alone (36 tokens at
  // most), four at once do not. The cache is bf16, so a context prefilled
  // again holds what its decode steps had stored, and the tokens stay
  // exactly those of each request alone.
  EngineOptions small;
  small.cacheTokens = 64;
  SchedulerOptions options;
  options.maxBatch = 4;
  options.prefillChunk = 7;
  SchedulerStats stats = expectEachGetsItsTokensAlone(options, small);
  EXPECT_GT(stats.preemptions, 0u);
  EXPECT_GT(stats.recomputedTokens, 0u);
  // With up to eight finished sequences kept, the kept ones make room
  // before anything is preempted: of six, fewer than six remain (four
  // pages hold three at most), and every request still gets its tokens.
  options.retainedSequences = 8;
  stats = expectEachGetsItsTokensAlone(options, small);
  EXPECT_LE(stats.retained, 3u) << "kept sequences did not make room";
}

TEST(Scheduler, ARequestThatContinuesAFinishedOnePrefillsOnlyWhatIsNew) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  SchedulerOptions options;
  options.retainedSequences = 2;
  Scheduler scheduler(*engine, options);
  std::vector<int32_t> first =
      collect(*submit(scheduler, *artifact, kStory, tokens(10))).tokens;
  ASSERT_EQ(first.size(), 10u);
  // The next turn: the story, its continuation, then new words. The cache
  // holds the story and the first 9 tokens (the 10th was never fed back).
  std::vector<int32_t> next = kStory;
  next.insert(next.end(), first.begin(), first.end());
  next.insert(next.end(), kTom.begin() + 1, kTom.end());
  // A prompt that continues nothing kept is prefilled whole.
  Finished unrelated = collect(*submit(scheduler, *artifact, kTom, tokens(4)));
  Finished continued = collect(*submit(scheduler, *artifact, next, tokens(12)));
  SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.resumedRequests, 1u);
  EXPECT_EQ(stats.reusedTokens, kStory.size() + 9);
  EXPECT_EQ(stats.promptTokens,
            kStory.size() + kTom.size() + next.size() - (kStory.size() + 9));
  // Exactly what a fresh engine gives the whole prompt (a bf16 cache).
  std::unique_ptr<Engine> fresh = test::engineOrDie(artifact);
  EXPECT_EQ(continued.tokens, fresh->generate(next, tokens(12))->tokens);
  EXPECT_EQ(unrelated.tokens, fresh->generate(kTom, tokens(4))->tokens);
}

/// Four prompts that begin with the same 36 tokens (two whole pages of
/// 16, as a system prompt), then 6, 3, 2 and 5 words of their own.
std::vector<std::vector<int32_t>> promptsWithACommonStart() {
  std::vector<int32_t> system = kStory;
  for (int i = 0; i < 2; ++i)
    system.insert(system.end(), kStory.begin() + 1, kStory.end());
  system.insert(system.end(), kStory.begin() + 1, kStory.begin() + 3);
  std::vector<std::vector<int32_t>> prompts;
  for (size_t cut : {7u, 4u, 3u, 6u}) {
    prompts.push_back(system);
    prompts.back().insert(prompts.back().end(), kTom.begin() + 1,
                          kTom.begin() + std::ptrdiff_t(cut));
  }
  return prompts;
}

TEST(Scheduler, RequestsThatBeginAlikeShareTheCachePagesOfTheirPrefix) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  const std::vector<std::vector<int32_t>> prompts = promptsWithACommonStart();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  SchedulerOptions options;
  options.retainedSequences = 1;
  Scheduler scheduler(*engine, options);
  // The first is prefilled (it has sampled) before two more come: they
  // share its pages while it runs.
  std::shared_ptr<Request> first =
      submit(scheduler, *artifact, prompts[0], tokens(20));
  std::vector<int32_t> firstTokens = first->wait().tokens;
  ASSERT_FALSE(firstTokens.empty());
  std::vector<Finished> finished(prompts.size());
  {
    std::shared_ptr<Request> second =
        submit(scheduler, *artifact, prompts[1], tokens(12));
    std::shared_ptr<Request> third =
        submit(scheduler, *artifact, prompts[2], tokens(12));
    finished[0] = collect(*first);
    finished[0].tokens.insert(finished[0].tokens.begin(), firstTokens.begin(),
                              firstTokens.end());
    finished[1] = collect(*second);
    finished[2] = collect(*third);
  }
  // The last comes when all have ended: it shares the kept sequence's
  // pages, which hold its prefix but are no prefix of it.
  finished[3] = collect(*submit(scheduler, *artifact, prompts[3], tokens(8)));
  SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.sharedPrefixRequests, 3u);
  EXPECT_EQ(stats.sharedPrefixTokens, 3u * 32);
  EXPECT_EQ(stats.resumedRequests, 0u);
  EXPECT_EQ(stats.promptTokens, 42u + (39 - 32) + (38 - 32) + (41 - 32));
  std::unique_ptr<Engine> fresh = test::engineOrDie(artifact);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_TRUE(finished[i].error.isOk()) << finished[i].error.message();
    EXPECT_EQ(finished[i].tokens,
              fresh->generate(prompts[i], tokens(i == 0   ? 20
                                                 : i == 3 ? 8
                                                          : 12))
                  ->tokens);
  }
  scheduler.shutdown();
  EXPECT_EQ(engine->stats().kvBytesInUse, 0u) << "a shared page leaked";
}

TEST(Scheduler, RequestsThatArriveTogetherPrefillTheirCommonPrefixOnce) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::vector<std::vector<int32_t>> prompts = promptsWithACommonStart();
  prompts.pop_back();
  std::unique_ptr<Engine> fresh = test::engineOrDie(artifact);
  for (bool share : {true, false}) {
    SCOPED_TRACE(share ? "sharing" : "not sharing");
    std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
    // Chunks of 8 tokens: the first request's prompt takes six iterations,
    // while the others wait for its pages rather than prefill them too.
    SchedulerOptions options;
    options.prefillChunk = 8;
    options.sharePrefixes = share;
    Scheduler scheduler(*engine, options);
    // Queued at once: one by one, the first could end before the next
    // came (on a loaded machine), and they would not arrive together.
    std::vector<Scheduler::Submission> batch;
    for (const std::vector<int32_t> &prompt : prompts)
      batch.push_back(
          {Generation::create(*artifact, prompt, tokens(10)).value(), {}, {}});
    std::vector<std::shared_ptr<Request>> requests =
        scheduler.submitAll(std::move(batch)).value();
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(collect(*requests[i]).tokens,
                fresh->generate(prompts[i], tokens(10))->tokens)
          << "request " << i;
    SchedulerStats stats = scheduler.stats();
    EXPECT_EQ(stats.sharedPrefixRequests, share ? 2u : 0u);
    EXPECT_EQ(stats.promptTokens,
              share ? 42u + (39 - 32) + (38 - 32) : 42u + 39 + 38);
  }
}

TEST(Scheduler, OneSignalWakesItsOwnerForEveryRequestGivenIt) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  Scheduler scheduler(*engine, SchedulerOptions());
  auto signal = std::make_shared<UpdateSignal>();
  std::vector<std::shared_ptr<Request>> requests;
  for (const std::vector<int32_t> *prompt : {&kStory, &kTom}) {
    StatusOr<Generation> generation =
        Generation::create(*artifact, *prompt, tokens(6));
    ASSERT_TRUE(generation.isOk());
    requests.push_back(
        scheduler.submit(std::move(*generation), {}, signal).value());
  }
  // Waiting on the signal alone, then taking what each request has without
  // waiting, collects both answers; a lost wake-up would stall a minute.
  std::vector<std::vector<int32_t>> got(2);
  std::vector<bool> ended(2, false);
  const auto start = std::chrono::steady_clock::now();
  while (!(ended[0] && ended[1]) &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    signal->wait(std::chrono::seconds(30));
    for (size_t i = 0; i < 2; ++i) {
      Request::Update update = requests[i]->wait(std::chrono::milliseconds(0));
      got[i].insert(got[i].end(), update.tokens.begin(), update.tokens.end());
      ended[i] = ended[i] || update.end.has_value();
    }
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  std::unique_ptr<Engine> fresh = test::engineOrDie(artifact);
  EXPECT_EQ(got[0], fresh->generate(kStory, tokens(6))->tokens);
  EXPECT_EQ(got[1], fresh->generate(kTom, tokens(6))->tokens);
}

TEST(Scheduler, ALatencyHistogramCountsEachObservationAtItsFirstBound) {
  LatencyHistogram h;
  const std::vector<double> &bounds = LatencyHistogram::bounds();
  ASSERT_TRUE(std::is_sorted(bounds.begin(), bounds.end()));
  h.observe(0.0005); // below the first bound
  h.observe(0.001);  // at it: Prometheus' le is "at most"
  h.observe(0.0011);
  h.observe(1e6); // above every bound
  EXPECT_EQ(h.counts[0], 2u);
  EXPECT_EQ(h.counts[1], 1u);
  EXPECT_EQ(h.counts.back(), 1u);
  EXPECT_EQ(h.count, 4u);
  EXPECT_DOUBLE_EQ(h.sum, 0.0005 + 0.001 + 0.0011 + 1e6);
}

TEST(Scheduler, ARequestTheCacheCannotHoldAloneEndsWithItsSentence) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::vector<Case> cases = {{kStory, tokens(40)}, {kTom, tokens(6)}};
  std::vector<GenerateResult> expected = alone(artifact, cases);
  // Two pages a layer: the first request outgrows them with the second
  // preempted, and ends; the second then runs alone.
  EngineOptions small;
  small.cacheTokens = 32;
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact, small);
  Scheduler scheduler(*engine, {});
  std::shared_ptr<Request> large =
      submit(scheduler, *artifact, cases[0].prompt, cases[0].options);
  std::shared_ptr<Request> small_ =
      submit(scheduler, *artifact, cases[1].prompt, cases[1].options);
  Finished failed = collect(*large);
  EXPECT_EQ(failed.reason, StopReason::Cancelled);
  ASSERT_FALSE(failed.error.isOk());
  EXPECT_NE(failed.error.message().find("KV cache pool exhausted"),
            std::string::npos)
      << failed.error.message();
  // Every token it got before the cache ran out was the right one.
  // The 32 tokens it could hold gave the last of them.
  EXPECT_EQ(failed.tokens.size(), size_t(32 - kStory.size() + 1));
  EXPECT_EQ(failed.tokens,
            std::vector<int32_t>(expected[0].tokens.begin(),
                                 expected[0].tokens.begin() +
                                     ptrdiff_t(failed.tokens.size())));
  Finished done = collect(*small_);
  EXPECT_TRUE(done.error.isOk()) << done.error.message();
  EXPECT_EQ(done.tokens, expected[1].tokens);
  EXPECT_GT(scheduler.stats().preemptions, 0u);
}

TEST(Scheduler, AStopTokenEndsARequestUnemitted) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  std::vector<int32_t> free =
      engine->generate(kStory, tokens(8)).value().tokens;
  Scheduler scheduler(*engine, {});
  GenerateOptions options = tokens(8);
  options.stopTokens = {free[3]};
  Finished finished = collect(*submit(scheduler, *artifact, kStory, options));
  EXPECT_EQ(finished.reason, StopReason::StopToken);
  EXPECT_EQ(finished.tokens,
            std::vector<int32_t>(free.begin(), free.begin() + 3));
}

/// log softmax(row)[token] in double precision.
double logSoftmaxAt(const float *row, size_t vocab, int32_t token) {
  double most = *std::max_element(row, row + vocab), sum = 0;
  for (size_t i = 0; i < vocab; ++i)
    sum += std::exp(double(row[i]) - most);
  return double(row[token]) - most - std::log(sum);
}

/// Checks that `logprob` is `token`'s under `row`, with the `top` likeliest
/// tokens' beside it, likeliest first.
void expectLogprob(const TokenLogprob &logprob, const float *row, size_t vocab,
                   int32_t token, size_t top) {
  EXPECT_EQ(logprob.token, token);
  EXPECT_NEAR(logprob.logprob, logSoftmaxAt(row, vocab, token), 1e-5);
  ASSERT_EQ(logprob.top.size(), top);
  const int32_t likeliest = int32_t(std::max_element(row, row + vocab) - row);
  if (top > 0)
    EXPECT_EQ(logprob.top[0].first, likeliest);
  for (size_t i = 0; i < top; ++i) {
    EXPECT_NEAR(logprob.top[i].second,
                logSoftmaxAt(row, vocab, logprob.top[i].first), 1e-5);
    if (i > 0)
      EXPECT_GE(logprob.top[i - 1].second, logprob.top[i].second);
  }
}

TEST(Scheduler, GivesTheLogprobsOfTheModelsDistribution) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  SchedulerOptions options;
  options.prefillChunk = 5; // The prompt's rows come in three chunks.
  Scheduler scheduler(*engine, options);
  GenerateOptions sampled = tokens(6);
  sampled.sampling.temperature = 0.9f;
  sampled.sampling.seed = 5;
  LogprobOptions logprobs;
  logprobs.top = 3;
  logprobs.prompt = true;
  std::shared_ptr<Request> request = *scheduler.submit(
      Generation::create(*artifact, kStory, sampled).value(), logprobs);
  std::vector<int32_t> got;
  std::vector<TokenLogprob> scored, prompt;
  while (true) {
    Request::Update update = request->wait();
    got.insert(got.end(), update.tokens.begin(), update.tokens.end());
    ASSERT_EQ(update.logprobs.size(), update.tokens.size());
    scored.insert(scored.end(), update.logprobs.begin(), update.logprobs.end());
    prompt.insert(prompt.end(), update.promptLogprobs.begin(),
                  update.promptLogprobs.end());
    if (update.end)
      break;
  }
  ASSERT_EQ(got.size(), 6u);
  // The logits of every token of the prompt and the sample, from a fresh
  // engine: row i gives the probabilities of token i + 1.
  std::vector<int32_t> all = kStory;
  all.insert(all.end(), got.begin(), got.end());
  std::unique_ptr<Engine> fresh = test::engineOrDie(artifact);
  StatusOr<SequenceId> sequence = fresh->addSequence();
  ASSERT_TRUE(fresh->prefill({{*sequence, all, true}}).isOk());
  const Logits &logits = fresh->logits();
  ASSERT_EQ(prompt.size(), kStory.size() - 1);
  for (size_t i = 1; i < kStory.size(); ++i) {
    SCOPED_TRACE("prompt token " + std::to_string(i));
    expectLogprob(prompt[i - 1], logits.row(i - 1), logits.vocab, kStory[i], 3);
  }
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("sampled token " + std::to_string(i));
    expectLogprob(scored[i], logits.row(kStory.size() - 1 + i), logits.vocab,
                  got[i], 3);
  }
}

TEST(Scheduler, APreemptedRequestSendsItsPromptLogprobsOnce) {
  // Four pages a layer: the story (12 + 40 tokens) outgrows them beside
  // the later request (7 + 45), which is preempted after its prompt was
  // scored and prefilled again with its tokens so far.
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::vector<GenerateResult> expected =
      alone(artifact, {{kStory, tokens(40)}, {kTom, tokens(45)}});
  EngineOptions small;
  small.cacheTokens = 64;
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact, small);
  Scheduler scheduler(*engine, {});
  LogprobOptions logprobs;
  logprobs.top = 0;
  logprobs.prompt = true;
  std::shared_ptr<Request> story =
      submit(scheduler, *artifact, kStory, tokens(40));
  std::shared_ptr<Request> scored = *scheduler.submit(
      Generation::create(*artifact, kTom, tokens(45)).value(), logprobs);
  EXPECT_EQ(collect(*story).tokens, expected[0].tokens);
  std::vector<int32_t> got;
  size_t promptScored = 0, sampledScored = 0;
  while (true) {
    Request::Update update = scored->wait();
    got.insert(got.end(), update.tokens.begin(), update.tokens.end());
    promptScored += update.promptLogprobs.size();
    sampledScored += update.logprobs.size();
    if (update.end)
      break;
  }
  EXPECT_GT(scheduler.stats().preemptions, 0u);
  EXPECT_EQ(got, expected[1].tokens);
  EXPECT_EQ(promptScored, kTom.size() - 1);
  EXPECT_EQ(sampledScored, got.size());
}

TEST(Scheduler, ScoresAPromptWithNoTokenToSample) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  Scheduler scheduler(*engine, {});
  LogprobOptions logprobs;
  logprobs.top = 0;
  logprobs.prompt = true;
  std::shared_ptr<Request> request = *scheduler.submit(
      Generation::create(*artifact, kTom, tokens(0)).value(), logprobs);
  Request::Update update = request->wait();
  while (!update.end) {
    Request::Update more = request->wait();
    update.promptLogprobs.insert(update.promptLogprobs.end(),
                                 more.promptLogprobs.begin(),
                                 more.promptLogprobs.end());
    update.end = more.end;
  }
  EXPECT_EQ(*update.end, StopReason::MaxTokens);
  EXPECT_TRUE(update.tokens.empty());
  ASSERT_EQ(update.promptLogprobs.size(), kTom.size() - 1);
  for (size_t i = 1; i < kTom.size(); ++i)
    EXPECT_EQ(update.promptLogprobs[i - 1].token, kTom[i]);
}

/// A scheduler of one place over tinystories, held by a request that runs
/// until the context ends unless cancelled: a context of 8192 positions,
/// some 3.5 s here (the model's 512 took some 80 ms, short enough for a
/// stalled test thread to find the place freed before it looked).
struct OnePlaceHeld {
  explicit OnePlaceHeld(size_t maxWaiting = 256)
      : artifact(longTinyStories()), engine(test::engineOrDie(artifact)),
        scheduler(*engine, onePlace(maxWaiting)),
        holder(submit(scheduler, *artifact, kStory, tokens(1 << 20))) {
    EXPECT_FALSE(holder->wait().tokens.empty()) << "it did not start";
  }
  static std::shared_ptr<const Artifact> longTinyStories() {
    test::LlamaArtifactOptions options;
    options.maxPositions = 8192;
    return test::openTinyStories("scheduler_test_held", options);
  }
  static SchedulerOptions onePlace(size_t maxWaiting) {
    SchedulerOptions options;
    options.maxBatch = 1;
    options.maxWaiting = maxWaiting;
    return options;
  }

  std::shared_ptr<const Artifact> artifact;
  std::unique_ptr<Engine> engine;
  Scheduler scheduler;
  std::shared_ptr<Request> holder;
};

TEST(Scheduler, ACancelledRequestGivesItsPlaceToTheNext) {
  OnePlaceHeld held;
  std::shared_ptr<Request> second =
      submit(held.scheduler, *held.artifact, kTom, tokens(4));
  held.holder->cancel();
  Finished cancelled = collect(*held.holder);
  EXPECT_EQ(cancelled.reason, StopReason::Cancelled);
  EXPECT_TRUE(cancelled.error.isOk());
  Finished next = collect(*second);
  EXPECT_EQ(next.reason, StopReason::MaxTokens);
  EXPECT_EQ(next.tokens.size(), 4u);
}

TEST(Scheduler, ARequestCancelledWhileItWaitsEndsWithoutAPlace) {
  OnePlaceHeld held;
  std::shared_ptr<Request> waiting =
      submit(held.scheduler, *held.artifact, kTom, tokens(4));
  waiting->cancel();
  Request::Update update = waiting->wait(std::chrono::seconds(10));
  ASSERT_TRUE(update.end.has_value()) << "it still waits for a place";
  EXPECT_EQ(*update.end, StopReason::Cancelled);
  EXPECT_TRUE(update.tokens.empty());
  // Ended while the holder still runs: that one has some 8000 tokens to go
  // to the end of the context, the cancel takes an iteration.
  EXPECT_TRUE(held.holder->wait(std::chrono::milliseconds(0)).end ==
              std::nullopt);
  held.holder->cancel();
  EXPECT_EQ(collect(*held.holder).reason, StopReason::Cancelled);
}

TEST(Scheduler, RefusesRequestsBeyondItsQueue) {
  OnePlaceHeld held(/*maxWaiting=*/1);
  std::shared_ptr<Request> waiting =
      submit(held.scheduler, *held.artifact, kTom, tokens(2));
  StatusOr<std::shared_ptr<Request>> refused = held.scheduler.submit(
      Generation::create(*held.artifact, kTom, tokens(2)).value());
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().message(),
            "this server queues at most 1 requests and 1 are already waiting");
  held.holder->cancel();
  EXPECT_EQ(collect(*waiting).tokens.size(), 2u);
}

TEST(Scheduler, QueuesABatchWholeOrNotAtAll) {
  OnePlaceHeld held(/*maxWaiting=*/2);
  std::shared_ptr<Request> waiting =
      submit(held.scheduler, *held.artifact, kTom, tokens(2));
  std::vector<Scheduler::Submission> batch;
  for (int i = 0; i < 2; ++i)
    batch.push_back(
        {Generation::create(*held.artifact, kTom, tokens(2)).value(), {}, {}});
  StatusOr<std::vector<std::shared_ptr<Request>>> refused =
      held.scheduler.submitAll(std::move(batch));
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().message(),
            "this server queues at most 2 requests and 1 are already "
            "waiting: the 2 of this batch do not fit");
  // Nothing of the batch was queued: the one place left takes another.
  EXPECT_TRUE(held.scheduler.submit(
      Generation::create(*held.artifact, kTom, tokens(2)).value()));
  held.holder->cancel();
  EXPECT_EQ(collect(*waiting).tokens.size(), 2u);
}

TEST(Scheduler, RunsUntilTheContextEnds) {
  std::shared_ptr<const Artifact> artifact = tinyStories();
  std::unique_ptr<Engine> engine = test::engineOrDie(artifact);
  Scheduler scheduler(*engine, {});
  Finished finished =
      collect(*submit(scheduler, *artifact, kStory, tokens(1 << 20)));
  EXPECT_EQ(finished.reason, StopReason::ContextFull);
  EXPECT_EQ(int64_t(kStory.size() + finished.tokens.size()),
            artifact->manifest().model().max_positions());
}

TEST(Scheduler, ShutdownEndsEveryRequestAndRefusesNewOnes) {
  OnePlaceHeld held;
  std::shared_ptr<Request> waiting =
      submit(held.scheduler, *held.artifact, kTom, tokens(1 << 20));
  held.scheduler.shutdown();
  EXPECT_EQ(collect(*held.holder).reason, StopReason::Cancelled);
  EXPECT_EQ(collect(*waiting).reason, StopReason::Cancelled);
  StatusOr<std::shared_ptr<Request>> late = held.scheduler.submit(
      Generation::create(*held.artifact, kTom, tokens(2)).value());
  ASSERT_FALSE(late.isOk());
  EXPECT_EQ(late.status().message(), "the server is shutting down");
}

} // namespace
