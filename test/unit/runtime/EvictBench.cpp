//===- EvictBench.cpp - TriAttention scoring against one decode step ------===//
//
// Prints the time to score 32K cached keys of 3 KV heads (d = 64, 3 query
// heads each, the default model's shape) with TriAttention, against one
// decode step's attention over the same 32K keys in the layer (bf16 and
// f32 caches). A measurement for docs/eviction.md, not a test.
//
//===----------------------------------------------------------------------===//
#include "CodecReference.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/evict/Scores.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace kvrt;

namespace {

constexpr uint32_t kKvHeads = 3, kGroup = 3, kD = 64, kPageSize = 64;

template <typename Fn> double bestSeconds(int repeats, const Fn &fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - start)
                              .count());
  }
  return best;
}

double attentionSeconds(schema::EncodingKind kind, uint32_t tokens,
                        unsigned threads, const std::vector<float> &keys,
                        const std::vector<float> &values) {
  schema::Encoding encoding, f32;
  encoding.set_kind(kind);
  f32.set_kind(schema::ENCODING_F32);
  CodecContext context;
  context.kvHeads = kKvHeads;
  context.headDim = kD;
  auto codec = test::makeCodecOrDie(encoding, context);
  auto tail = test::makeCodecOrDie(f32, context);
  cpu::CacheCodecs codecs{codec.get(), codec.get(), tail.get(),
                          kind != schema::ENCODING_F32,
                          kind != schema::ENCODING_F32};
  CacheLayerShape shape;
  shape.kvHeads = kKvHeads;
  shape.headDim = kD;
  shape.pageSize = kPageSize;
  shape.keyHeadBytes = shape.valueHeadBytes = codec->headBytes(kPageSize);
  shape.capacityPages = tokens / kPageSize + 2;
  PagedCache cache({shape});
  uint64_t seq = 1;
  (void)cache.addSequence(seq);
  (void)cache.reserve({{seq, tokens}});
  cpu::ThreadPool pool(threads);
  std::vector<int32_t> positions(tokens);
  std::vector<uint64_t> sequences(tokens, seq);
  for (uint32_t i = 0; i < tokens; ++i)
    positions[i] = int32_t(i);
  cpu::append(pool, cache, 0, codecs, keys.data(), values.data(), tokens,
              sequences.data(), positions.data());
  cpu::encodeTails(pool, cache, 0, codecs, &seq, 1);
  cpu::AttentionParams params;
  params.cache = &cache;
  params.codecs = codecs;
  params.scale = 0.125f;
  std::vector<float> q = test::randomRows(1, kKvHeads * kGroup * kD, 3),
                     out(q.size());
  std::vector<std::vector<float>> scratch;
  int32_t now = int32_t(tokens);
  return bestSeconds(5, [&] {
    cpu::attention(pool, params, q.data(), 1, kKvHeads * kGroup, &seq, &now,
                   out.data(), scratch, nullptr);
  });
}

} // namespace

int main(int argc, char **argv) {
  uint32_t tokens = argc > 1 ? uint32_t(std::atoi(argv[1])) : 32768;
  std::vector<float> keys = test::randomRows(tokens, kKvHeads * kD, 1);
  std::vector<float> values = test::randomRows(tokens, kKvHeads * kD, 2);
  schema::Rope rope;
  rope.set_theta(100000);
  rope.set_style(schema::ROPE_STYLE_HALF);
  cpu::RopeFrequencies freqs = cpu::ropeFrequencies(rope, kD);
  std::vector<evict::QueryCentre> centres(kGroup);
  for (uint32_t h = 0; h < kGroup; ++h)
    for (uint32_t f = 0; f < kD / 2; ++f) {
      centres[h].re.push_back(0.3 * f - h);
      centres[h].im.push_back(1.0 - 0.1 * f);
      centres[h].magnitude.push_back(2.0 + f);
    }
  std::vector<double> grid = evict::geometricDistances();
  std::vector<float> scores(size_t(tokens) * kKvHeads);
  for (auto aggregation :
       {evict::HeadAggregation::Mean, evict::HeadAggregation::Max}) {
    double seconds = bestSeconds(5, [&] {
      for (uint32_t g = 0; g < kKvHeads; ++g) {
        evict::TriAttentionScorer scorer(freqs, kD, centres.data(), kGroup,
                                         tokens, grid, aggregation);
        scorer.score(keys.data() + g * kD, kKvHeads * kD, tokens,
                     scores.data() + size_t(g) * tokens);
      }
    });
    std::printf("triattention %s: %u keys x %u KV heads x d=%u, %zu "
                "distances: %.3f ms (1 thread)\n",
                aggregation == evict::HeadAggregation::Mean ? "mean" : "max",
                tokens, kKvHeads, kD, grid.size(), seconds * 1e3);
  }
  for (unsigned threads : {1u, 2u})
    for (auto kind : {schema::ENCODING_BF16, schema::ENCODING_F32})
      std::printf(
          "attention, one decode row, %u query heads, %s cache: "
          "%.3f ms (%u threads)\n",
          kKvHeads * kGroup, kind == schema::ENCODING_BF16 ? "bf16" : "f32",
          attentionSeconds(kind, tokens, threads, keys, values) * 1e3, threads);
  return 0;
}
