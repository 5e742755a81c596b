//===- F32RunsTest.cpp - Runs of f32 entries against the f32 codec --------===//
//
// The run kernels must give the bits of the f32 codec's score() and
// accumulate() called entry by entry, which is what attention over a
// cache's tail computed before them: for head dims with and without a tail
// of fewer than eight columns, runs shorter and longer than a block of
// eight entries (and than an accumulation block), and more query heads
// than one pass takes.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/cache/codecs/F32Runs.h"
#include "CodecReference.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace kvrt;
using namespace kvrt::test;

namespace {

struct RunCase {
  uint32_t headDim;
  int64_t heads;
  int64_t count;
};

std::string describe(const RunCase &c) {
  return "head dim " + std::to_string(c.headDim) + ", " +
         std::to_string(c.heads) + " heads, " + std::to_string(c.count) +
         " entries";
}

TEST(F32Runs, ScoresAndSumsAreTheCodecsEntryByEntry) {
  const std::vector<RunCase> cases = {
      {64, 3, 200}, {64, 1, 9},  {128, 4, 64}, {128, 9, 131}, {36, 5, 17},
      {4, 2, 16},   {80, 7, 70}, {64, 3, 0},   {64, 3, 1},    {16, 1, 8},
  };
  for (const RunCase &c : cases) {
    SCOPED_TRACE(describe(c));
    CodecContext context;
    context.kvHeads = 1;
    context.headDim = c.headDim;
    auto codec = makeCodecOrDie(encodingOf(schema::ENCODING_F32), context);
    const uint32_t n = c.headDim;
    const std::vector<float> entries =
        randomRows(uint32_t(c.count), n, 11, std::vector<float>(n, 1.5f),
                   std::vector<float>(n, 0.25f));
    const std::vector<float> queries = randomRows(uint32_t(c.heads), n, 12);
    const uint8_t *area = reinterpret_cast<const uint8_t *>(entries.data());
    const float scale = 0.125f + 1e-3f;
    // Scores and weights `stride` apart, wider than the run, as attention
    // lays them out.
    const int64_t stride = c.count + 5;
    std::vector<float> scores(size_t(c.heads * stride), -1.0f);
    codecs::f32RunScores(queries.data(), c.heads, n, entries.data(), c.count,
                         scale, scores.data(), stride);
    std::vector<float> perHead(size_t(c.heads)), scratch(n);
    std::vector<float> weights(size_t(c.heads * stride), 0.0f);
    for (int64_t t = 0; t < c.count; ++t) {
      codec->score(queries.data(), c.heads, area, uint32_t(t), perHead.data(),
                   scratch.data());
      for (int64_t h = 0; h < c.heads; ++h) {
        const float expected = perHead[size_t(h)] * scale;
        EXPECT_EQ(std::memcmp(&scores[size_t(h * stride + t)], &expected, 4), 0)
            << "entry " << t << " head " << h;
        // Weights of mixed sizes and signs, as a softmax's are not.
        weights[size_t(h * stride + t)] =
            expected * (t % 3 == 1 ? -0.5f : 1.0f);
      }
    }
    for (int64_t h = 0; h < c.heads; ++h)
      EXPECT_EQ(scores[size_t(h * stride + c.count)], -1.0f)
          << "written past the run, head " << h;

    std::vector<float> acc(size_t(c.heads * n), 0.375f);
    acc[0] = -2.0f;
    std::vector<float> expectedAcc = acc;
    codecs::f32RunAccumulate(weights.data(), stride, c.heads, entries.data(),
                             c.count, n, acc.data());
    for (int64_t t = 0; t < c.count; ++t) {
      for (int64_t h = 0; h < c.heads; ++h)
        perHead[size_t(h)] = weights[size_t(h * stride + t)];
      codec->accumulate(perHead.data(), c.heads, area, uint32_t(t),
                        expectedAcc.data(), scratch.data());
    }
    EXPECT_EQ(std::memcmp(acc.data(), expectedAcc.data(), acc.size() * 4), 0);
  }
}

} // namespace
