//===- EngineTest.cpp - The engine on the real tinystories model ----------===//
//
// Exactness against a float64 reference lives in reference_forward.py; these
// tests check what must not change results (page size, batching, prefill vs
// decode, threads) and how the engine fails.
//
//===----------------------------------------------------------------------===//
#include "EngineSupport.h"

#include "kvrt/Runtime.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

using namespace kvrt;

namespace {

// Story openings as token ids (BOS first).
const std::vector<int32_t> kStory = {1,   80,  147,  201, 282, 215,
                                     286, 598, 1662, 887, 610, 57};
const std::vector<int32_t> kTom = {1, 80, 388, 1174, 1714, 84, 235};

std::shared_ptr<const Artifact> load(const test::LlamaArtifactOptions &o) {
  // One file per distinct artifact: the options' bytes name it.
  return test::openTinyStories("engine_test_" + std::to_string(o.pageSize) +
                                   "_" +
                                   std::to_string(std::hash<std::string>()(
                                       o.cacheEncoding.SerializeAsString())) +
                                   "_" + o.target,
                               o);
}

std::shared_ptr<const Artifact> tinyStories(uint32_t pageSize = 16) {
  test::LlamaArtifactOptions o;
  o.pageSize = pageSize;
  return load(o);
}

std::unique_ptr<Engine> engine(std::shared_ptr<const Artifact> artifact,
                               EngineOptions options = {}) {
  return test::engineOrDie(std::move(artifact), options);
}

/// Logits of every token of `prompt` run alone in a fresh sequence.
std::vector<float> promptLogits(Engine &e, const std::vector<int32_t> &prompt) {
  SequenceId s = e.addSequence().value();
  Status st = e.prefill({{s, prompt, true}});
  EXPECT_TRUE(st.isOk()) << st.message();
  std::vector<float> out = e.logits().values;
  EXPECT_TRUE(e.removeSequence(s).isOk());
  return out;
}

std::vector<int32_t> greedy(Engine &e, const std::vector<int32_t> &prompt,
                            int n = 32) {
  GenerateOptions g;
  g.maxNewTokens = n;
  g.stopAtEos = false;
  auto r = e.generate(prompt, g);
  EXPECT_TRUE(r.isOk()) << r.status().message();
  return r.isOk() ? r->tokens : std::vector<int32_t>();
}

TEST(Engine, PageSizeDoesNotChangeResults) {
  auto reference = engine(tinyStories(16));
  std::vector<float> logits = promptLogits(*reference, kStory);
  std::vector<int32_t> tokens = greedy(*reference, kStory);
  ASSERT_EQ(tokens.size(), 32u);
  for (uint32_t pageSize : {1u, 64u}) {
    auto e = engine(tinyStories(pageSize));
    EXPECT_EQ(promptLogits(*e, kStory), logits) << "page size " << pageSize;
    EXPECT_EQ(greedy(*e, kStory), tokens) << "page size " << pageSize;
  }
  EngineOptions override;
  override.pageSize = 5;
  auto e = engine(tinyStories(16), override);
  EXPECT_EQ(promptLogits(*e, kStory), logits);
}

TEST(Engine, BatchingDoesNotChangeResults) {
  auto e = engine(tinyStories());
  std::vector<float> story = promptLogits(*e, kStory);
  std::vector<float> tom = promptLogits(*e, kTom);

  SequenceId a = e->addSequence().value(), b = e->addSequence().value();
  ASSERT_TRUE(e->prefill({{a, kStory, true}, {b, kTom, true}}).isOk());
  const Logits &both = e->logits();
  ASSERT_EQ(both.rows, kStory.size() + kTom.size());
  size_t split = kStory.size() * both.vocab;
  EXPECT_TRUE(std::equal(story.begin(), story.end(), both.values.begin()));
  EXPECT_TRUE(std::equal(tom.begin(), tom.end(), both.values.begin() + split));

  // Decode steps of both sequences together equal steps of each alone.
  SequenceId c = e->addSequence().value();
  ASSERT_TRUE(e->prefill({{c, kStory}}).isOk());
  for (int32_t token : {300, 301, 302}) {
    ASSERT_TRUE(e->step({{a, token}, {b, token}}).isOk());
    std::vector<float> together(e->logits().row(0),
                                e->logits().row(0) + e->logits().vocab);
    ASSERT_TRUE(e->step({{c, token}}).isOk());
    std::vector<float> alone(e->logits().row(0),
                             e->logits().row(0) + e->logits().vocab);
    EXPECT_EQ(together, alone);
  }
}

// stepGreedy (and prefillGreedy) return each sequence's greedy token of
// the logits step() (prefill()) would have given, and leave no logits;
// generate() decodes through it.
TEST(Engine, StepGreedyReturnsTheTokensOfTheLogits) {
  auto byLogits = engine(tinyStories()), byGreedy = engine(tinyStories());
  std::vector<std::pair<SequenceId, int32_t>> next;
  for (const std::vector<int32_t> *prompt : {&kStory, &kTom}) {
    SequenceId a = byLogits->addSequence().value(),
               b = byGreedy->addSequence().value();
    ASSERT_EQ(a, b);
    ASSERT_TRUE(byLogits->prefill({{a, *prompt}}).isOk());
    ASSERT_TRUE(byGreedy->prefill({{b, *prompt}}).isOk());
    next.push_back({a, 300});
  }
  for (int step = 0; step < 4; ++step) {
    ASSERT_TRUE(byLogits->step(next).isOk());
    StatusOr<std::vector<int32_t>> chosen = byGreedy->stepGreedy(next);
    ASSERT_TRUE(chosen.isOk()) << chosen.status().message();
    ASSERT_EQ(chosen->size(), next.size());
    EXPECT_EQ(byGreedy->logits().rows, 0u);
    const Logits &l = byLogits->logits();
    for (size_t s = 0; s < next.size(); ++s) {
      EXPECT_EQ((*chosen)[s], greedyToken(l.row(s), l.vocab))
          << "step " << step;
      next[s].second = (*chosen)[s];
    }
  }
  // A prefill's last rows likewise; every row's logits it does not give.
  SequenceId fresh = byLogits->addSequence().value();
  ASSERT_EQ(byGreedy->addSequence().value(), fresh);
  ASSERT_TRUE(byLogits->prefill({{fresh, kTom}}).isOk());
  StatusOr<std::vector<int32_t>> first =
      byGreedy->prefillGreedy({{fresh, kTom}});
  ASSERT_TRUE(first.isOk()) << first.status().message();
  EXPECT_EQ(*first, std::vector<int32_t>{greedyToken(
                        byLogits->logits().row(0), byLogits->logits().vocab)});
  EXPECT_EQ(byGreedy->prefillGreedy({{fresh, {5}, true}}).status().message(),
            "prefill entry 0 asks for the logits of every token, which a "
            "greedy prefill does not return");
  StatusOr<std::vector<int32_t>> unknown = byGreedy->stepGreedy({{99, 1}});
  ASSERT_FALSE(unknown.isOk());
  EXPECT_EQ(unknown.status().message(),
            "prefill entry 0 names sequence 99, which does not exist");
}

TEST(Engine, PrefillEqualsStepByStep) {
  auto e = engine(tinyStories());
  std::vector<float> all = promptLogits(*e, kStory);
  SequenceId s = e->addSequence().value();
  size_t vocab = size_t(e->vocabSize());
  for (size_t i = 0; i < kStory.size(); ++i) {
    ASSERT_TRUE(e->step({{s, kStory[i]}}).isOk());
    EXPECT_EQ(std::memcmp(e->logits().row(0), all.data() + i * vocab,
                          vocab * sizeof(float)),
              0)
        << "token " << i;
  }
  EXPECT_EQ(e->sequenceLength(s).value(), int64_t(kStory.size()));
}

TEST(Engine, AForkSharesWholePagesAndContinuesAsAFreshSequence) {
  auto e = engine(tinyStories(16));
  std::vector<int32_t> prompt = kStory;
  for (const std::vector<int32_t> *part : {&kStory, &kStory, &kTom})
    prompt.insert(prompt.end(), part->begin() + 1, part->end());
  ASSERT_EQ(prompt.size(), 40u);
  SequenceId source = e->addSequence().value();
  ASSERT_TRUE(e->prefill({{source, prompt}}).isOk());
  const uint64_t held = e->stats().kvBytesInUse;
  // Fewer tokens than a page: an empty sequence.
  ForkedSequence none = e->forkSequence(source, 15).value();
  EXPECT_EQ(none.tokens, 0);
  EXPECT_EQ(e->sequenceLength(none.sequence).value(), 0);
  ASSERT_TRUE(e->removeSequence(none.sequence).isOk());
  // Two whole pages of 16, taken as they are.
  ForkedSequence fork = e->forkSequence(source, 40).value();
  EXPECT_EQ(fork.tokens, 32);
  EXPECT_EQ(e->sequenceLength(fork.sequence).value(), 32);
  EXPECT_EQ(e->stats().kvBytesInUse, held) << "the fork copied pages";
  // Its source gone, the fork goes on with other tokens than the source
  // had, and gives what a fresh sequence of the same tokens gives.
  ASSERT_TRUE(e->removeSequence(source).isOk());
  std::vector<int32_t> rest(kTom.begin() + 1, kTom.end());
  ASSERT_TRUE(e->prefill({{fork.sequence, rest, true}}).isOk());
  std::vector<float> forked = e->logits().values;
  std::vector<int32_t> whole(prompt.begin(), prompt.begin() + 32);
  whole.insert(whole.end(), rest.begin(), rest.end());
  std::vector<float> fresh = promptLogits(*e, whole);
  ASSERT_EQ(forked.size(), rest.size() * size_t(e->vocabSize()));
  EXPECT_TRUE(std::equal(forked.begin(), forked.end(),
                         fresh.end() - std::ptrdiff_t(forked.size())));
  EXPECT_EQ(e->forkSequence(999, 4).status().message(),
            "sequence 999 does not exist");
  EXPECT_EQ(e->forkSequence(fork.sequence, -1).status().message(),
            "cannot fork -1 tokens");
  ASSERT_TRUE(e->removeSequence(fork.sequence).isOk());
  EXPECT_EQ(e->stats().kvBytesInUse, 0u) << "a shared page leaked";
}

TEST(Engine, ThreadCountDoesNotChangeResults) {
  EngineOptions one;
  one.threads = 1;
  EngineOptions three;
  three.threads = 3;
  auto artifact = tinyStories();
  EXPECT_EQ(promptLogits(*engine(artifact, one), kStory),
            promptLogits(*engine(artifact, three), kStory));
}

TEST(Engine, ExplicitPositionsMayLeaveGaps) {
  auto e = engine(tinyStories());
  SequenceId s = e->addSequence().value();
  ASSERT_TRUE(e->forward({{s, 1, 0, false}, {s, 80, 5, true}}).isOk());
  Status back = e->forward({{s, 147, 5, true}});
  ASSERT_FALSE(back.isOk());
  EXPECT_EQ(back.message(), "batch row 0 puts sequence " + std::to_string(s) +
                                " at position 5, but its next position is at "
                                "least 6");
}

TEST(Engine, BadBatchesChangeNothing) {
  auto e = engine(tinyStories());
  SequenceId s = e->addSequence().value();
  ASSERT_TRUE(e->prefill({{s, {1, 80}}}).isOk());
  Status bad = e->forward({{s, 147, 2, false}, {s, 2048, 3, true}});
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.message(), "batch row 1 holds token id 2048, outside the "
                           "vocabulary of 2048 tokens");
  EXPECT_EQ(e->prefill({{s, {-1}}}).message(),
            "batch row 0 holds token id -1, outside the vocabulary of 2048 "
            "tokens");
  EXPECT_EQ(e->step({{999, 5}}).message(),
            "prefill entry 0 names sequence 999, which does not exist");
  EXPECT_EQ(e->forward({}).message(), "a batch needs at least one token");
  EXPECT_EQ(e->sequenceLength(s).value(), 2);
  // The sequence continues as if the failures had not happened.
  ASSERT_TRUE(e->prefill({{s, {147, 201}}}).isOk());
  std::vector<float> last(e->logits().row(0),
                          e->logits().row(0) + e->logits().vocab);
  std::vector<float> fresh = promptLogits(*e, {1, 80, 147, 201});
  EXPECT_TRUE(std::equal(last.begin(), last.end(), fresh.end() - 2048));
}

TEST(Engine, CacheExhaustionIsAnError) {
  EngineOptions small;
  small.cacheTokens = 32;
  auto e = engine(tinyStories(16), small);
  EXPECT_EQ(e->stats().kvCapacityTokens, 32u);
  SequenceId a = e->addSequence().value(), b = e->addSequence().value();
  std::vector<int32_t> long_(40, 80);
  long_[0] = 1;
  Status s = e->prefill({{a, long_}});
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "KV cache pool exhausted: layer 0 needs 3 more pages "
                         "of 16 tokens but 2 of its 2 are free; remove "
                         "finished sequences or raise "
                         "EngineOptions::cacheTokens");
  ASSERT_TRUE(e->prefill({{a, kStory}}).isOk());
  EXPECT_FALSE(e->prefill({{b, kStory}, {b, kTom}}).isOk());
  ASSERT_TRUE(e->removeSequence(a).isOk());
  EXPECT_TRUE(e->prefill({{b, kStory}, {b, kTom}}).isOk());
  EXPECT_EQ(e->stats().kvBytesInUse, e->stats().peakKvBytes);
}

TEST(Engine, GenerateStreamsAndStops) {
  auto e = engine(tinyStories());
  std::vector<int32_t> streamed;
  GenerateOptions g;
  g.maxNewTokens = 10;
  g.stopAtEos = false;
  auto r = e->generate(kStory, g, [&](int32_t t) {
    streamed.push_back(t);
    return streamed.size() < 4;
  });
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->reason, StopReason::Cancelled);
  EXPECT_EQ(r->tokens, streamed);
  EXPECT_EQ(streamed.size(), 4u);

  std::vector<int32_t> first = greedy(*e, kStory, 10);
  g.stopTokens = {first[2]};
  r = e->generate(kStory, g);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->reason, StopReason::StopToken);
  EXPECT_EQ(r->tokens, std::vector<int32_t>(first.begin(), first.begin() + 2));

  g = {};
  g.maxNewTokens = 1000;
  r = e->generate(kStory, g);
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->reason == StopReason::StopToken ||
              r->reason == StopReason::ContextFull);
  EXPECT_EQ(e->generate({}, g).status().message(),
            "generate needs a prompt of at least one token");
}

TEST(Engine, AMinimumLengthKeepsStopTokensFromBeingDrawnUntilItIsReached) {
  auto e = engine(tinyStories());
  std::vector<int32_t> first = greedy(*e, kStory, 10);
  GenerateOptions g;
  g.maxNewTokens = 10;
  g.stopAtEos = false;
  g.stopTokens = {first[2]};
  // The stop token would end it after two tokens; with a minimum of 5 the
  // third is the next most likely token, and a later one may stop it.
  g.minNewTokens = 5;
  StatusOr<GenerateResult> r = e->generate(kStory, g);
  ASSERT_TRUE(r.isOk());
  ASSERT_GE(r->tokens.size(), 5u);
  EXPECT_EQ(std::vector<int32_t>(r->tokens.begin(), r->tokens.begin() + 2),
            std::vector<int32_t>(first.begin(), first.begin() + 2));
  for (size_t i = 0; i < 5; ++i)
    EXPECT_NE(r->tokens[i], first[2]) << "token " << i;
  g.minNewTokens = 11;
  EXPECT_EQ(e->generate(kStory, g).status().message(),
            "the minimum of 11 new tokens is not between 0 and the maximum "
            "of 10");
}

TEST(Engine, SamplingIsReproducibleFromItsSeed) {
  auto e = engine(tinyStories());
  GenerateOptions g;
  g.maxNewTokens = 24;
  g.stopAtEos = false;
  g.sampling.temperature = 1.0f;
  g.sampling.topP = 0.9f;
  g.sampling.seed = 5;
  auto a = e->generate(kTom, g), b = e->generate(kTom, g);
  g.sampling.seed = 6;
  auto c = e->generate(kTom, g);
  ASSERT_TRUE(a.isOk() && b.isOk() && c.isOk());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

TEST(Engine, ReportsStats) {
  auto e = engine(tinyStories());
  greedy(*e, kStory, 16);
  EngineStats s = e->stats();
  // 2 layers x 4 KV heads x 16 dims x (key + value) x 4 bytes.
  EXPECT_EQ(s.kvBytesPerToken, 1024.0);
  EXPECT_EQ(s.prefillTokens, kStory.size());
  EXPECT_EQ(s.decodeTokens, 15u);
  EXPECT_GT(s.decodeTokensPerSecond(), 0);
  EXPECT_GT(s.prefillTokensPerSecond(), 0);
  EXPECT_EQ(s.kvBytesInUse, 0u);
  // 28 tokens in pages of 16: two pages per layer.
  EXPECT_EQ(s.peakKvBytes, 2u * 2 * (16 * 4 * 16 * 4 * 2 + 16 * 4));
}

TEST(Engine, GenerateNamesAPromptTokenOutsideTheVocabulary) {
  auto e = engine(tinyStories());
  GenerateOptions g;
  g.maxNewTokens = 4;
  EXPECT_EQ(e->generate({1, 80, 2048}, g).status().message(),
            "the prompt's token 2 is id 2048, outside the vocabulary of 2048 "
            "tokens");
  EXPECT_EQ(e->stats().prefillTokens, 0u);
}

TEST(Engine, APromptOfOneTokenIsAPrefill) {
  auto e = engine(tinyStories());
  greedy(*e, {kStory[0]}, 3);
  EngineStats s = e->stats();
  EXPECT_EQ(s.prefillTokens, 1u);
  EXPECT_EQ(s.decodeTokens, 2u);
}

TEST(Engine, Bf16CacheStaysClose) {
  test::LlamaArtifactOptions o;
  o.cacheEncoding.set_kind(schema::ENCODING_BF16);
  auto bf16 = engine(load(o));
  EXPECT_EQ(bf16->stats().kvBytesPerToken, 512.0);
  std::vector<float> a = promptLogits(*bf16, kStory);
  std::vector<float> b = promptLogits(*engine(tinyStories()), kStory);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  EXPECT_LT(diff / scale, 1e-2);
}

/// Logits of each of `steps` decode steps after prefilling `prompt`, each
/// step fed the next token of kTom (cycling).
std::vector<float> decodeLogits(Engine &e, const std::vector<int32_t> &prompt,
                                int steps) {
  SequenceId s = e.addSequence().value();
  EXPECT_TRUE(e.prefill({{s, prompt}}).isOk());
  std::vector<float> out;
  for (int i = 0; i < steps; ++i) {
    Status st = e.step({{s, kTom[size_t(i) % kTom.size()]}});
    EXPECT_TRUE(st.isOk()) << st.message();
    out.insert(out.end(), e.logits().values.begin(), e.logits().values.end());
  }
  EXPECT_TRUE(e.removeSequence(s).isOk());
  return out;
}

double relativeDifference(const std::vector<float> &a,
                          const std::vector<float> &b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return diff / scale;
}

TEST(Engine, AnExactWindowReadsRecentTokensExact) {
  // Decode steps read earlier tokens encoded, but a polar or fp8 cache
  // whose exact window covers the whole sequence reads every one in bf16:
  // the bf16 cache's logits. Without the window, they differ.
  test::LlamaArtifactOptions o;
  o.cacheEncoding.set_kind(schema::ENCODING_BF16);
  const std::vector<float> bf16 = decodeLogits(*engine(load(o)), kStory, 12);
  for (bool polar : {true, false}) {
    SCOPED_TRACE(polar ? "polar-2" : "fp8 dynamic");
    schema::Encoding &e = o.cacheEncoding;
    e.Clear();
    if (polar) {
      e.set_kind(schema::ENCODING_POLAR);
      e.set_bits(2);
      e.set_rotation(schema::ROTATION_HADAMARD);
    } else {
      e.set_kind(schema::ENCODING_FP8);
      e.set_fp8_format(schema::FP8_FORMAT_E4M3);
      e.set_scale_mode(schema::SCALE_MODE_DYNAMIC);
    }
    const std::vector<float> coded = decodeLogits(*engine(load(o)), kStory, 12);
    e.set_residual(32);
    e.set_sinks(2);
    const std::vector<float> windowed =
        decodeLogits(*engine(load(o)), kStory, 12);
    EXPECT_GT(relativeDifference(coded, bf16), 1e-4);
    EXPECT_LT(relativeDifference(windowed, bf16), 1e-5);
  }
}

TEST(Engine, FidelityComparesWithABf16Copy) {
  EngineOptions measure;
  measure.measureFidelity = true;
  measure.fidelityTopK = 4;
  test::LlamaArtifactOptions o;
  o.cacheEncoding.set_kind(schema::ENCODING_BF16);
  auto bf16 = engine(load(o), measure);
  greedy(*bf16, kStory, 8);
  std::vector<LayerFidelity> same = bf16->fidelity();
  ASSERT_EQ(same.size(), 2u);
  for (const LayerFidelity &f : same) {
    // Each of 8 query heads, for 7 decode steps; the prompt is not probed.
    EXPECT_EQ(f.queries, 8u * 7);
    EXPECT_EQ(f.outputRelativeError, 0.0);
    EXPECT_EQ(f.topKOverlap, 1.0);
  }
  // An f32 cache differs from bf16 by bf16's rounding, no more.
  auto f32 = engine(tinyStories(), measure);
  greedy(*f32, kStory, 8);
  for (const LayerFidelity &f : f32->fidelity()) {
    EXPECT_GT(f.outputRelativeError, 0.0);
    EXPECT_LT(f.outputRelativeError, 1e-2);
    EXPECT_GT(f.topKOverlap, 0.9);
  }
  f32->resetFidelity();
  EXPECT_EQ(f32->fidelity()[0].queries, 0u);
  EXPECT_TRUE(engine(tinyStories())->fidelity().empty());
}

TEST(Engine, RefusesWhatTheCpuBackendCannotRun) {
  // (Low-rank keys without RoPE: LowRankCodecTest.)
  test::LlamaArtifactOptions o;
  o.target = "tpu";
  auto tpu = load(o);
  EXPECT_EQ(Engine::create(tpu).status().message(),
            tpu->name() + ": target \"tpu\" cannot run on the cpu backend, "
                          "which runs cpu, h100 and h200 artifacts");
  EngineOptions npu;
  npu.backend = "npu";
  EXPECT_EQ(
      Engine::create(tinyStories(), npu)
          .status()
          .message()
          .rfind("backend \"npu\" is not built into this runtime (available: "
                 "cpu",
                 0),
      0u);
}

#ifdef KVRT_HAVE_CUDA
TEST(Engine, CudaBackendNamesWhatIsMissing) {
  EngineOptions cuda;
  cuda.backend = "cuda";
  StatusOr<std::unique_ptr<Engine>> engine =
      Engine::create(tinyStories(), cuda);
  if (engine)
    GTEST_SKIP() << "this machine has a GPU";
  // Without a GPU (CI): one sentence saying so; with one, the tiny model's
  // head dimension (16) is not one the decode kernels take.
  const std::string &message = engine.status().message();
  EXPECT_TRUE(message.rfind("the cuda backend found no usable GPU", 0) == 0 ||
              message.find("head dimensions 64 and 128, not 16") !=
                  std::string::npos)
      << message;
}
#endif

/// An engine over `model` (written as engine_test_NAME.kvpkg) that shows
/// `observer` what it runs.
std::unique_ptr<Engine> observedEngine(const test::RandomLlama &model,
                                       const std::string &name,
                                       AppendObserver &observer) {
  ArtifactWriter writer;
  EXPECT_TRUE(test::buildLlama(writer, model.config, model.weights, {}).isOk());
  std::string path = ::testing::TempDir() + "/engine_test_" + name + ".kvpkg";
  EXPECT_TRUE(writer.write(path).isOk());
  EngineOptions options;
  options.observer = &observer;
  return engine(Artifact::open(path).value(), options);
}

/// Records what an AppendObserver sees: the pre-RoPE calls in order, and
/// the keys appended (after RoPE).
struct PreRopeRecorder final : AppendObserver {
  struct Call {
    uint32_t layer;
    RopeInput input;
    int64_t rows, heads, headDim;
    RopePairing pairing;
    std::vector<float> x;
  };
  std::vector<Call> calls;
  std::map<uint32_t, std::vector<float>> appendedKeys;

  void onAppend(uint32_t layer, const float *keys, const float *, int64_t rows,
                int64_t kvHeads, int64_t headDim) override {
    appendedKeys[layer].assign(keys, keys + rows * kvHeads * headDim);
  }
  void onPreRope(uint32_t layer, RopeInput input, const float *x, int64_t rows,
                 int64_t heads, int64_t headDim, RopePairing pairing) override {
    calls.push_back({layer, input, rows, heads, headDim, pairing,
                     std::vector<float>(x, x + rows * heads * headDim)});
  }
};

TEST(Engine, ObserverSeesEachLayersQueriesAndKeysBeforeRope) {
  for (schema::RopeStyle style :
       {schema::ROPE_STYLE_HALF, schema::ROPE_STYLE_INTERLEAVED}) {
    SCOPED_TRACE(schema::RopeStyle_Name(style));
    test::RandomLlama model = test::makeRandomLlama(5);
    model.config.mutable_rope()->set_style(style);
    PreRopeRecorder recorder;
    std::unique_ptr<Engine> e = observedEngine(
        model, "prerope_" + std::to_string(int(style)), recorder);
    SequenceId s = e->addSequence().value();
    const std::vector<int32_t> tokens = {1, 7, 12, 30, 3};
    ASSERT_TRUE(e->prefill({{s, tokens}}).isOk());

    const schema::ModelConfig &c = model.config;
    int64_t rows = int64_t(tokens.size()), d = c.head_dim(), half = d / 2;
    bool interleaved = style == schema::ROPE_STYLE_INTERLEAVED;
    ASSERT_EQ(recorder.calls.size(), size_t(2 * c.num_layers()));
    for (int64_t l = 0; l < c.num_layers(); ++l) {
      // The plan rotates the queries, then the keys, of each layer.
      const PreRopeRecorder::Call &q = recorder.calls[2 * l],
                                  &k = recorder.calls[2 * l + 1];
      EXPECT_EQ(q.layer, uint32_t(l));
      EXPECT_EQ(k.layer, uint32_t(l));
      EXPECT_EQ(q.input, RopeInput::Query);
      EXPECT_EQ(k.input, RopeInput::Key);
      EXPECT_EQ(q.heads, c.num_heads());
      EXPECT_EQ(k.heads, c.num_kv_heads());
      for (const PreRopeRecorder::Call *call : {&q, &k}) {
        EXPECT_EQ(call->rows, rows);
        EXPECT_EQ(call->headDim, d);
        EXPECT_EQ(call->pairing,
                  interleaved ? RopePairing::Interleaved : RopePairing::Half);
      }
      // Rotating the keys seen before RoPE, pair by pair as the pairing
      // says, gives the keys appended to the cache.
      const std::vector<float> &cached = recorder.appendedKeys[uint32_t(l)];
      ASSERT_EQ(cached.size(), k.x.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t h = 0; h < k.heads; ++h)
          for (int64_t f = 0; f < half; ++f) {
            int64_t base = (r * k.heads + h) * d;
            int64_t a = base + (interleaved ? 2 * f : f);
            int64_t b = base + (interleaved ? 2 * f + 1 : f + half);
            double angle = double(r) * std::pow(c.rope().theta(),
                                                -double(2 * f) / double(d));
            double re = k.x[a], im = k.x[b];
            EXPECT_NEAR(cached[a], re * std::cos(angle) - im * std::sin(angle),
                        1e-5);
            EXPECT_NEAR(cached[b], re * std::sin(angle) + im * std::cos(angle),
                        1e-5);
          }
    }
    // Layer 0's queries before RoPE are q_proj(rms_norm(embedding)).
    const std::vector<float> &embed =
        model.storage.at("model.embed_tokens.weight");
    const std::vector<float> &norm =
        model.storage.at("model.layers.0.input_layernorm.weight");
    const std::vector<float> &wq =
        model.storage.at("model.layers.0.self_attn.q_proj.weight");
    int64_t hidden = c.hidden_size(), width = c.num_heads() * d;
    for (int64_t r = 0; r < rows; ++r) {
      const float *x = embed.data() + tokens[size_t(r)] * hidden;
      double squares = 0;
      for (int64_t i = 0; i < hidden; ++i)
        squares += double(x[i]) * x[i];
      double inverse =
          1 / std::sqrt(squares / double(hidden) + c.rms_norm_eps());
      for (int64_t o = 0; o < width; ++o) {
        double q = 0;
        for (int64_t i = 0; i < hidden; ++i)
          q += double(wq[o * hidden + i]) * x[i] * inverse * norm[i];
        EXPECT_NEAR(recorder.calls[0].x[r * width + o], q, 1e-5);
      }
    }
  }
}

/// Records the queries before RoPE, the keys appended (after RoPE) and the
/// attention weights reported.
struct AttentionRecorder final : AppendObserver {
  struct Weights {
    uint32_t layer, kvHead;
    int32_t position;
    int64_t group;
    uint64_t first;
    std::vector<float> w;
  };
  std::map<uint32_t, std::vector<float>> queries, keys;
  std::vector<Weights> reported;

  bool wantsAttention() const override { return true; }
  void onAppend(uint32_t layer, const float *k, const float *, int64_t rows,
                int64_t kvHeads, int64_t headDim) override {
    keys[layer].insert(keys[layer].end(), k, k + rows * kvHeads * headDim);
  }
  void onPreRope(uint32_t layer, RopeInput input, const float *x, int64_t rows,
                 int64_t heads, int64_t headDim, RopePairing) override {
    if (input == RopeInput::Query)
      queries[layer].assign(x, x + rows * heads * headDim);
  }
  void onAttention(uint32_t layer, uint64_t, int32_t position, uint32_t kvHead,
                   const float *weights, int64_t group, uint64_t first,
                   int64_t count) override {
    reported.push_back({layer, kvHead, position, group, first,
                        std::vector<float>(weights, weights + group * count)});
  }
};

TEST(Engine, ObserverSeesTheAttentionWeightsItUsed) {
  // A prefill of 5 tokens, then one decode step: per layer, row and KV
  // head, the softmax over the cache of each query head of the group,
  // recomputed here in double from the queries before RoPE and the keys.
  test::RandomLlama model = test::makeRandomLlama(5);
  AttentionRecorder recorder;
  std::unique_ptr<Engine> e = observedEngine(model, "attention", recorder);
  SequenceId s = e->addSequence().value();
  ASSERT_TRUE(e->prefill({{s, {1, 7, 12, 30, 3}}}).isOk());
  const schema::ModelConfig &c = model.config;
  const int64_t layers = c.num_layers(), kvHeads = c.num_kv_heads();
  const int64_t heads = c.num_heads(), group = heads / kvHeads;
  const int64_t d = c.head_dim(), half = d / 2;
  ASSERT_EQ(recorder.reported.size(), size_t(layers * 5 * kvHeads));
  // Half-style RoPE at `position` of head `h` of `x`, in double.
  auto rotated = [&](const float *x, int64_t position) {
    std::vector<double> y(static_cast<size_t>(d), 0.0);
    for (int64_t f = 0; f < half; ++f) {
      double angle = double(position) *
                     std::pow(c.rope().theta(), -double(2 * f) / double(d));
      y[f] = x[f] * std::cos(angle) - x[f + half] * std::sin(angle);
      y[f + half] = x[f] * std::sin(angle) + x[f + half] * std::cos(angle);
    }
    return y;
  };
  auto check = [&](size_t at, int64_t row, int64_t position) {
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t g = 0; g < kvHeads; ++g) {
        const AttentionRecorder::Weights &r =
            recorder
                .reported[at + size_t((l * (at ? 1 : 5) + row) * kvHeads + g)];
        EXPECT_EQ(r.layer, uint32_t(l));
        EXPECT_EQ(r.kvHead, uint32_t(g));
        EXPECT_EQ(r.position, position);
        EXPECT_EQ(r.group, group);
        EXPECT_EQ(r.first, 0u);
        int64_t count = position + 1;
        ASSERT_EQ(r.w.size(), size_t(group * count));
        for (int64_t h = 0; h < group; ++h) {
          const float *q = recorder.queries[uint32_t(l)].data() +
                           (row * heads + g * group + h) * d;
          std::vector<double> qr = rotated(q, position), scores;
          double largest = -INFINITY, sum = 0;
          for (int64_t t = 0; t < count; ++t) {
            const float *k =
                recorder.keys[uint32_t(l)].data() + (t * kvHeads + g) * d;
            double dot = 0;
            for (int64_t i = 0; i < d; ++i)
              dot += qr[size_t(i)] * k[i];
            scores.push_back(dot / std::sqrt(double(d)));
            largest = std::max(largest, scores.back());
          }
          for (double &x : scores)
            sum += (x = std::exp(x - largest));
          for (int64_t t = 0; t < count; ++t)
            EXPECT_NEAR(r.w[size_t(h * count + t)], scores[size_t(t)] / sum,
                        1e-5)
                << "layer " << l << " row " << row << " head " << h;
        }
      }
  };
  for (int64_t row = 0; row < 5; ++row)
    check(0, row, row);
  size_t prefilled = recorder.reported.size();
  ASSERT_TRUE(e->step({{s, 9}}).isOk());
  ASSERT_EQ(recorder.reported.size(), prefilled + size_t(layers * kvHeads));
  check(prefilled, 0, 5);
}

} // namespace
