//===- EngineSparseTest.cpp - Sparse selection on the real model ---------===//
//
// What must hold whatever the inputs: a selection as large as the sequence
// changes nothing; prefill rows attend densely; decode rows of a longer
// sequence attend to fewer entries, so their logits change; results do not
// depend on the thread count; selection composes with eviction (the
// summaries are rebuilt after each compaction).
//
//===----------------------------------------------------------------------===//
#include "EngineSupport.h"

#include <gtest/gtest.h>

using namespace kvrt;

namespace {

const std::vector<int32_t> kStory = {1,    80,  147, 201,  282, 215, 286, 598,
                                     1662, 887, 610, 57,   80,  147, 201, 282,
                                     215,  286, 598, 1662, 887, 610, 57,  13};

schema::SelectParams selectParams(uint32_t block, uint32_t topBlocks,
                                  uint32_t topTokens) {
  schema::SelectParams s;
  s.set_block(block);
  s.set_top_blocks(topBlocks);
  s.set_top_tokens(topTokens);
  return s;
}

schema::PrefetchParams offload(uint64_t devicePages, uint32_t runnersUp) {
  schema::PrefetchParams p;
  p.set_device_pages(devicePages);
  p.set_runners_up(runnersUp);
  return p;
}

std::shared_ptr<const Artifact>
artifact(const std::string &name, std::optional<schema::SelectParams> select,
         std::optional<schema::EvictParams> evict = {},
         std::optional<schema::PrefetchParams> prefetch = {}) {
  test::LlamaArtifactOptions o;
  o.cacheEncoding.set_kind(schema::ENCODING_BF16);
  o.select = select;
  o.evict = evict;
  o.prefetch = prefetch;
  return test::openTinyStories("engine_sparse_" + name, o);
}

std::unique_ptr<Engine> engine(std::shared_ptr<const Artifact> a,
                               unsigned threads = 2) {
  EngineOptions options;
  options.threads = threads;
  return test::engineOrDie(std::move(a), options);
}

/// The logits of the prompt's last token, then of `steps` decode steps
/// (teacher-forced with fixed tokens), one vector each.
std::vector<std::vector<float>> run(Engine &e, int steps) {
  std::vector<std::vector<float>> out;
  SequenceId s = e.addSequence().value();
  EXPECT_TRUE(e.prefill({{s, kStory, false}}).isOk());
  out.emplace_back(e.logits().values);
  for (int step = 0; step < steps; ++step) {
    Status stepped = e.step({{s, int32_t(100 + 7 * step)}});
    EXPECT_TRUE(stepped.isOk()) << stepped.message();
    out.emplace_back(e.logits().values);
  }
  return out;
}

TEST(EngineSparse, ASelectionAsLargeAsTheSequenceChangesNothing) {
  auto dense = run(*engine(artifact("dense", {})), 20);
  auto wide = run(*engine(artifact("wide", selectParams(4, 16, 64))), 20);
  EXPECT_EQ(wide, dense);
}

TEST(EngineSparse, PrefillIsDenseAndLongDecodesSelect) {
  auto dense = run(*engine(artifact("dense", {})), 20);
  // 8 entries of the top 3 blocks of 4: the prompt's 24 tokens already
  // exceed them.
  auto sparse = run(*engine(artifact("narrow", selectParams(4, 3, 8))), 20);
  ASSERT_EQ(sparse.size(), dense.size());
  EXPECT_EQ(sparse[0], dense[0]) << "the prefill's logits";
  for (size_t step = 1; step < dense.size(); ++step)
    EXPECT_NE(sparse[step], dense[step]) << "decode step " << step;
}

TEST(EngineSparse, ThreadsDoNotChangeResults) {
  auto a = artifact("threads", selectParams(4, 3, 8));
  EXPECT_EQ(run(*engine(a, 1), 12), run(*engine(a, 3), 12));
}

TEST(EngineSparse, SelectionComposesWithEviction) {
  schema::EvictParams evict;
  evict.set_method(schema::EVICT_METHOD_H2O);
  evict.set_budget_tokens(16);
  evict.set_interval(4);
  evict.set_window(4);
  auto evicting = artifact("evict", {}, evict);
  auto both = artifact("evict_select", selectParams(4, 2, 6), evict);
  auto e = engine(both);
  auto sparse = run(*e, 20);
  EXPECT_GE(e->stats().kvCompactions, 4u);
  auto onlyEvicted = run(*engine(evicting), 20);
  EXPECT_EQ(sparse[0], onlyEvicted[0]) << "the prefill's logits";
  EXPECT_NE(sparse.back(), onlyEvicted.back());
  EXPECT_EQ(run(*engine(both, 1), 20), sparse);
}

TEST(EngineSparse, OffloadCountsWithoutChangingResults) {
  // Blocks of 4 in pages of 16: 3 blocks and the newest page.
  auto selecting = run(*engine(artifact("select", selectParams(4, 3, 8))), 20);
  auto roomy = engine(
      artifact("offload_roomy", selectParams(4, 3, 8), {}, offload(64, 1)));
  EXPECT_EQ(run(*roomy, 20), selecting);
  EngineStats::Offload o = roomy->stats().offload;
  EXPECT_GT(o.pagesRead, 0u);
  EXPECT_EQ(o.hits + o.misses, o.pagesRead);
  // Every page was written on the device by an append, and 64 slots hold
  // them all.
  EXPECT_EQ(o.misses, 0u);

  // Two slots cannot hold the 3 blocks each of 4 KV heads of a decode row
  // may read: the step is refused before it stores anything.
  auto tight = engine(
      artifact("offload_tight", selectParams(4, 3, 8), {}, offload(2, 0)));
  SequenceId s = tight->addSequence().value();
  ASSERT_TRUE(tight->prefill({{s, kStory, false}}).isOk());
  Status stepped = tight->step({{s, 5}});
  EXPECT_EQ(stepped.message(),
            "layer 0 is offloaded with room for 2 KV-head pages on the "
            "device, but 1 decode row may read 12 at once (top_blocks 3 for "
            "each of 4 KV heads); raise the offload budget or decode fewer "
            "sequences at a time");
  EXPECT_EQ(tight->sequenceLength(s).value(), int64_t(kStory.size()));
}

TEST(EngineSparse, AFullHostPoolRefusesTheStepAndLosesNothing) {
  // The offloaded cache's host pool is the cache's own: 32 tokens here.
  EngineOptions options;
  options.cacheTokens = 32;
  auto e = test::engineOrDie(
      artifact("offload_full", selectParams(4, 3, 8), {}, offload(64, 0)),
      options);
  SequenceId s = e->addSequence().value();
  ASSERT_TRUE(e->prefill({{s, kStory, false}}).isOk());
  Status stepped = Status::ok();
  int64_t before = 0;
  for (int step = 0; step < 40 && stepped.isOk(); ++step) {
    before = e->sequenceLength(s).value();
    stepped = e->step({{s, int32_t(100 + step)}});
  }
  ASSERT_FALSE(stepped.isOk());
  EXPECT_NE(stepped.message().find("KV cache pool exhausted"),
            std::string::npos)
      << stepped.message();
  // The refused step stored nothing.
  EXPECT_EQ(e->sequenceLength(s).value(), before);
  EXPECT_EQ(before, 32);
}

} // namespace
