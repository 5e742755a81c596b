//===- PlainRunsTest.cpp - Long runs of f32 and bf16 entries --------------===//
//
// The f32 and bf16 codecs score runs eight entries at a time and sum them
// with the accumulators in registers (EntryLoops.h); attention reads a
// prefill's whole prompt from the f32 tail that way. Their runs must give
// the bits of score() and accumulate() entry by entry: for head dims with
// and without a tail of fewer than eight columns, runs shorter and longer
// than a block of eight entries and than an accumulation block, and more
// query heads than one pass takes.
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace kvrt;
using namespace kvrt::test;

namespace {

struct RunCase {
  schema::EncodingKind kind;
  uint32_t headDim;
  int64_t heads;
  uint32_t count;
};

std::string describe(const RunCase &c) {
  return std::string(c.kind == schema::ENCODING_F32 ? "f32" : "bf16") +
         ", head dim " + std::to_string(c.headDim) + ", " +
         std::to_string(c.heads) + " heads, " + std::to_string(c.count) +
         " entries";
}

TEST(PlainRuns, LongRunsAreEntryByEntryBitForBit) {
  const std::vector<RunCase> cases = {
      {schema::ENCODING_F32, 64, 3, 200},   {schema::ENCODING_F32, 64, 1, 9},
      {schema::ENCODING_F32, 128, 4, 64},   {schema::ENCODING_F32, 128, 9, 131},
      {schema::ENCODING_F32, 36, 5, 17},    {schema::ENCODING_F32, 4, 2, 16},
      {schema::ENCODING_F32, 80, 7, 70},    {schema::ENCODING_F32, 64, 3, 0},
      {schema::ENCODING_F32, 64, 3, 1},     {schema::ENCODING_F32, 16, 1, 8},
      {schema::ENCODING_BF16, 64, 3, 200},  {schema::ENCODING_BF16, 36, 5, 17},
      {schema::ENCODING_BF16, 128, 9, 131},
  };
  for (const RunCase &c : cases) {
    SCOPED_TRACE(describe(c));
    CodecContext context;
    context.kvHeads = 1;
    context.headDim = c.headDim;
    auto codec = makeCodecOrDie(encodingOf(c.kind), context);
    const uint32_t n = c.headDim;
    const std::vector<float> rows =
        randomRows(c.count, n, 11, std::vector<float>(n, 1.5f),
                   std::vector<float>(n, 0.25f));
    std::vector<uint8_t> area(codec->headBytes(c.count + 1));
    for (uint32_t t = 0; t < c.count; ++t)
      codec->encode(rows.data() + t * n, n, 0, t, area.data());
    const std::vector<float> queries = randomRows(uint32_t(c.heads), n, 12);
    const float scale = 0.125f + 1e-3f;
    // Scores and weights `stride` apart, wider than the run, as attention
    // lays them out.
    const int64_t stride = c.count + 5;
    std::vector<float> scores(size_t(c.heads * stride), -1.0f);
    std::vector<float> perHead(size_t(c.heads)), scratch(n);
    codec->scoreRun(queries.data(), c.heads, area.data(), 0, c.count, nullptr,
                    scale, scores.data(), stride, scratch.data());
    std::vector<float> weights(size_t(c.heads * stride), 0.0f);
    for (uint32_t t = 0; t < c.count; ++t) {
      codec->score(queries.data(), c.heads, area.data(), t, perHead.data(),
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
    codec->accumulateRun(weights.data(), stride, c.heads, area.data(), 0,
                         c.count, acc.data(), scratch.data());
    for (uint32_t t = 0; t < c.count; ++t) {
      for (int64_t h = 0; h < c.heads; ++h)
        perHead[size_t(h)] = weights[size_t(h * stride + t)];
      codec->accumulate(perHead.data(), c.heads, area.data(), t,
                        expectedAcc.data(), scratch.data());
    }
    EXPECT_EQ(std::memcmp(acc.data(), expectedAcc.data(), acc.size() * 4), 0);
  }
}

} // namespace
