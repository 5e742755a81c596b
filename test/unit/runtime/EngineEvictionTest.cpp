//===- EngineEvictionTest.cpp - The plan's evict calls on the real model --===//
//
// What must hold whatever the method: a budget the cache never reaches
// changes nothing; a reached one bounds the cache between budget and
// budget + interval; a prefill longer than the budget is compacted at once;
// results do not depend on the thread count.
//
//===----------------------------------------------------------------------===//
#include "EngineSupport.h"

#include <gtest/gtest.h>

using namespace kvrt;

namespace {

constexpr int64_t kLayers = 2, kHeads = 8, kHalf = 8;
const std::vector<int32_t> kStory = {1,   80,  147,  201, 282, 215,
                                     286, 598, 1662, 887, 610, 57};

struct Case {
  schema::EvictMethod method;
  const char *name;
  schema::EvictHeads heads = schema::EVICT_HEADS_EACH;
};
// Each scoring method per KV head and shared by the heads.
const Case kMethods[] = {
    {schema::EVICT_METHOD_TRIATTENTION, "triattention"},
    {schema::EVICT_METHOD_SNAPKV, "snapkv"},
    {schema::EVICT_METHOD_H2O, "h2o"},
    {schema::EVICT_METHOD_STREAMING, "streaming", schema::EVICT_HEADS_SHARED},
    {schema::EVICT_METHOD_TRIATTENTION, "triattention_shared",
     schema::EVICT_HEADS_SHARED},
    {schema::EVICT_METHOD_SNAPKV, "snapkv_shared", schema::EVICT_HEADS_SHARED},
    {schema::EVICT_METHOD_H2O, "h2o_shared", schema::EVICT_HEADS_SHARED}};

schema::EvictParams params(schema::EvictMethod method, uint64_t budget,
                           uint32_t interval, uint32_t window) {
  schema::EvictParams e;
  e.set_method(method);
  e.set_budget_tokens(budget);
  e.set_interval(interval);
  e.set_window(window);
  e.set_sinks(method == schema::EVICT_METHOD_STREAMING ? 2 : 0);
  e.set_observe(4);
  e.set_kernel(3);
  return e;
}

schema::EvictParams params(const Case &c, uint64_t budget, uint32_t interval,
                           uint32_t window) {
  schema::EvictParams e = params(c.method, budget, interval, window);
  e.set_heads(c.heads);
  return e;
}

/// The tinystories model with `evict` after every attention (none when
/// unset), and synthetic TriAttention centres: every pair's centre on the
/// real axis, a little less concentrated than its magnitude.
std::shared_ptr<const Artifact>
artifact(const std::string &name, std::optional<schema::EvictParams> evict,
         schema::EncodingKind encoding = schema::ENCODING_F32) {
  test::LlamaArtifactOptions o;
  o.evict = evict;
  o.cacheEncoding.set_kind(encoding);
  if (encoding == schema::ENCODING_POLAR)
    o.cacheEncoding.set_bits(4);
  for (int64_t i = 0; i < kHeads * kHalf; ++i) {
    o.queryCentre.push_back(1.0f + 0.1f * float(i % 5));
    o.queryCentre.push_back(0.25f * float(i % 3));
    o.queryMagnitude.push_back(2.0f);
  }
  return test::openTinyStories("engine_evict_" + name, o);
}

std::unique_ptr<Engine> engine(std::shared_ptr<const Artifact> a,
                               unsigned threads = 2) {
  EngineOptions options;
  options.threads = threads;
  return test::engineOrDie(std::move(a), options);
}

std::vector<int32_t> greedy(Engine &e, int n) {
  GenerateOptions g;
  g.maxNewTokens = n;
  g.stopAtEos = false;
  auto r = e.generate(kStory, g);
  EXPECT_TRUE(r.isOk()) << r.status().message();
  return r.isOk() ? r->tokens : std::vector<int32_t>();
}

TEST(EngineEviction, AnUnreachedBudgetChangesNothing) {
  std::vector<int32_t> plain = greedy(*engine(artifact("none", {})), 40);
  for (const Case &c : kMethods) {
    auto e =
        engine(artifact(std::string("far_") + c.name, params(c, 1000, 8, 4)));
    EXPECT_EQ(greedy(*e, 40), plain) << c.name;
    EXPECT_EQ(e->stats().kvCompactions, 0u) << c.name;
  }
}

TEST(EngineEviction, AnEvictingCacheSharesNoPages) {
  // Compaction moves kept entries within a sequence's pages: a fork
  // sharing them would see its source's evictions.
  auto e = engine(artifact("far_fork", params(kMethods[0], 1000, 8, 4)));
  SequenceId source = e->addSequence().value();
  std::vector<int32_t> prompt(40, kStory[5]);
  prompt[0] = 1;
  ASSERT_TRUE(e->prefill({{source, prompt}}).isOk());
  ForkedSequence fork = e->forkSequence(source, 40).value();
  EXPECT_EQ(fork.tokens, 0);
  EXPECT_EQ(e->sequenceLength(fork.sequence).value(), 0);
}

TEST(EngineEviction, TheCacheStaysWithinBudgetPlusInterval) {
  const uint64_t budget = 20, interval = 8;
  for (const Case &c : kMethods) {
    auto e = engine(
        artifact(std::string("near_") + c.name, params(c, budget, 8, 4)));
    SequenceId s = e->addSequence().value();
    ASSERT_TRUE(e->prefill({{s, kStory, true}}).isOk());
    uint64_t appended = kStory.size();
    int32_t token = 5;
    for (int step = 0; step < 60; ++step) {
      ASSERT_TRUE(e->step({{s, token}}).isOk()) << c.name;
      ++appended;
      token = int32_t(100 + step);
      EngineStats st = e->stats();
      ASSERT_EQ(st.kvEvictedEntries % kLayers, 0u);
      uint64_t length = appended - st.kvEvictedEntries / kLayers;
      EXPECT_LT(length, budget + interval) << c.name << " step " << step;
      if (appended >= budget + interval)
        EXPECT_GE(length, budget) << c.name << " step " << step;
    }
    EXPECT_GE(e->stats().kvCompactions, 2u * kLayers) << c.name;
  }
}

TEST(EngineEviction, ALongPrefillIsCompactedAtOnce) {
  for (const Case &c : kMethods) {
    schema::EvictParams p = params(c, 0, 64, 2);
    p.set_budget_fraction(0.5);
    auto e = engine(artifact(std::string("half_") + c.name, p));
    SequenceId s = e->addSequence().value();
    ASSERT_TRUE(e->prefill({{s, kStory, true}}).isOk());
    EXPECT_EQ(e->stats().kvEvictedEntries, kLayers * kStory.size() / 2)
        << c.name;
    // Decoding continues from the compacted cache.
    ASSERT_TRUE(e->step({{s, 7}}).isOk());
  }
}

TEST(EngineEviction, ThreadsDoNotChangeResults) {
  for (const Case &c : kMethods) {
    auto a = artifact(std::string("threads_") + c.name, params(c, 16, 4, 2));
    EXPECT_EQ(greedy(*engine(a, 1), 48), greedy(*engine(a, 3), 48)) << c.name;
  }
}

TEST(EngineEviction, CompressedCachesCompactToo) {
  for (schema::EncodingKind kind :
       {schema::ENCODING_BF16, schema::ENCODING_POLAR,
        schema::ENCODING_NVFP4}) {
    auto e = engine(
        artifact("encoded_" + std::to_string(int(kind)),
                 params(schema::EVICT_METHOD_TRIATTENTION, 16, 4, 2), kind));
    greedy(*e, 40);
    EXPECT_GT(e->stats().kvCompactions, 0u) << kind;
  }
}

TEST(EngineEviction, FidelityComparesWithTheUnevictedCopy) {
  // The bf16 copy the probe attends over is never evicted from, so it is
  // longer than the cache: attention must size its buffers for both, the
  // output error includes what eviction dropped, and top-k overlap is only
  // counted where both saw as many entries (here: before the first
  // compaction).
  EngineOptions options;
  options.measureFidelity = true;
  auto created = Engine::create(
      artifact("fidelity", params(schema::EVICT_METHOD_STREAMING, 16, 4, 2)),
      options);
  ASSERT_TRUE(created.isOk()) << created.status().message();
  Engine &e = **created;
  SequenceId s = e.addSequence().value();
  ASSERT_TRUE(
      e.prefill({{s, {kStory.begin(), kStory.begin() + 4}, true}}).isOk());
  for (int step = 0; step < 40; ++step)
    ASSERT_TRUE(e.step({{s, int32_t(100 + step)}}).isOk());
  ASSERT_GT(e.stats().kvCompactions, 0u);
  for (const LayerFidelity &f : e.fidelity()) {
    EXPECT_EQ(f.queries, 40u * kHeads);
    // Eviction costs some accuracy (about 0.17 here); a reference
    // attention that overran its buffers reads as errors above 2.
    EXPECT_GT(f.outputRelativeError, 0.0) << "layer " << f.layer;
    EXPECT_LT(f.outputRelativeError, 1.0) << "layer " << f.layer;
    // Only the steps before the first compaction count, where the two
    // caches hold the same bf16 entries.
    EXPECT_EQ(f.topKOverlap, 1.0) << "layer " << f.layer;
  }
}

/// Expects writing the tinystories artifact with `evict` (as `name`) to
/// fail with a message that contains `sentence`: the writer validates the
/// manifest as the reader does.
void expectRefused(const schema::EvictParams &evict, const std::string &name,
                   const std::string &sentence) {
  test::LlamaArtifactOptions o;
  o.evict = evict;
  o.queryCentre.assign(size_t(2 * kHeads * kHalf), 1.0f);
  o.queryMagnitude.assign(size_t(kHeads * kHalf), 2.0f);
  std::string path = ::testing::TempDir() + "/engine_evict_" + name + ".kvpkg";
  Status written = test::writeLlamaArtifact(test::tinyStoriesDir(), path, o);
  EXPECT_FALSE(written.isOk()) << name;
  EXPECT_NE(written.message().find(sentence), std::string::npos)
      << written.message();
}

TEST(EngineEviction, AnUnknownHeadsSelectionIsRefused) {
  schema::EvictParams e = params(schema::EVICT_METHOD_H2O, 16, 4, 2);
  e.set_heads(schema::EvictHeads(7));
  expectRefused(e, "heads", "heads 7 is not a selection this runtime knows");
}

TEST(EngineEviction, AHorizonThatIsNoPowerOfTwoIsRefused) {
  schema::EvictParams e = params(schema::EVICT_METHOD_TRIATTENTION, 16, 4, 2);
  e.set_horizon(3000);
  expectRefused(e, "horizon", "horizon is 3000; it must be a power of two");
}

TEST(EngineEviction, AnUnknownOrMisplacedCombinationIsRefused) {
  schema::EvictParams e = params(schema::EVICT_METHOD_TRIATTENTION, 16, 4, 2);
  e.set_combine(schema::EvictCombine(5));
  expectRefused(e, "combine",
                "combine 5 is not a combination this runtime knows");
  e = params(schema::EVICT_METHOD_H2O, 16, 4, 2);
  e.set_combine(schema::EVICT_COMBINE_ZMAX);
  expectRefused(e, "combine-h2o",
                "combine is zmax, which only triattention takes");
}

TEST(EngineEviction, KiviKeysAreRefusedWhenTheEngineIsCreated) {
  test::LlamaArtifactOptions o;
  o.evict = params(schema::EVICT_METHOD_H2O, 16, 4, 2);
  o.cacheEncoding.set_kind(schema::ENCODING_INT);
  o.cacheEncoding.set_bits(4);
  o.cacheEncoding.set_group(32);
  o.valueEncoding = schema::Encoding();
  o.valueEncoding->set_kind(schema::ENCODING_BF16);
  std::string path = ::testing::TempDir() + "/engine_evict_kivi.kvpkg";
  ASSERT_TRUE(test::writeLlamaArtifact(test::tinyStoriesDir(), path, o).isOk());
  auto a = Artifact::open(path);
  ASSERT_TRUE(a.isOk()) << a.status().message();
  auto e = Engine::create(*a);
  ASSERT_FALSE(e.isOk());
  EXPECT_NE(e.status().message().find("KIVI"), std::string::npos)
      << e.status().message();
}

} // namespace
