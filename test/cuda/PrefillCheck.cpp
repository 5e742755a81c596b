//===- PrefillCheck.cpp - CUDA prefill attention against the CPU ----------===//
//
// Each case stores one sequence of before + rows tokens in a paged cache
// through libkvrt (pages taken from a pool shared with a second sequence,
// so they are not contiguous): the first `before` encoded (bf16, or fp8,
// nvfp4, polar and KIVI, whose earlier tokens the GPU first decodes to
// bf16 pages, PrefillDecode.h), the last `rows` in the CPU's bf16 tail
// (KIVI's cases: whole groups of tokens, which the codec encodes at
// once). It runs cpu::attention for those rows' queries, and
// prefillAttention() into NaN-poisoned output, the first `before` tokens
// read from the (decoded) pages, the last `rows` from their bf16 copy.
// Every output must be finite and, per query row,
//   |gpu - cpu| / |cpu| <= 2e-2   (L2 norms over the row's coordinates).
// The kernel rounds the scaled queries and the softmax weights to bf16 for
// its MMAs (as FlashAttention does) where the CPU keeps fp32, and the
// decoded tokens to bf16 where the CPU scores their codes: about 4e-3 on
// these random rows; a wrong tile, mask, rescaling, code, scale or
// rotation moves rows by far more than 2e-2.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/backends/cuda/DeviceCache.h"
#include "runtime/src/backends/cuda/PrefillAttention.h"
#include "runtime/src/backends/cuda/PrefillDecode.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace kvrt::cuda::test {
namespace {

constexpr double kBound = 2e-2;

struct PrefillCase {
  uint32_t before, rows, qHeads, kvHeads, headDim, pageSize;
  /// The cache's encoding, and polar's or KIVI's bits.
  schema::EncodingKind kind = schema::ENCODING_BF16;
  uint32_t bits = 0;
};

std::vector<float> normalRows(std::mt19937 &rng, size_t count) {
  std::normal_distribution<float> normal;
  std::vector<float> x(count);
  for (float &v : x)
    v = normal(rng);
  return x;
}

bool runPrefillCase(const PrefillCase &c, uint32_t seed) {
  std::mt19937 rng(seed);
  const uint32_t total = c.before + c.rows, width = c.kvHeads * c.headDim;
  const std::vector<float> keys = normalRows(rng, size_t(total) * width);
  const std::vector<float> values = normalRows(rng, size_t(total) * width);
  const std::vector<float> q =
      normalRows(rng, size_t(c.rows) * c.qHeads * c.headDim);

  const schema::Encoding encoding = testEncoding(c.kind, c.bits);
  std::unique_ptr<Codec> sides[2];
  for (int s = 0; s < 2; ++s) {
    CodecContext context;
    context.kvHeads = c.kvHeads;
    context.headDim = c.headDim;
    context.layer = 1;
    context.side = s ? CacheSide::Value : CacheSide::Key;
    if (c.kind == schema::ENCODING_NVFP4)
      context.scales = {0.0123f};
    sides[s] = orDie(makeCodec(encoding, context));
  }
  CodecContext tailContext;
  tailContext.kvHeads = c.kvHeads;
  tailContext.headDim = c.headDim;
  schema::Encoding f32;
  f32.set_kind(schema::ENCODING_F32);
  std::unique_ptr<Codec> tail = orDie(makeCodec(f32, tailContext));
  cpu::CacheCodecs codecs{sides[0].get(), sides[1].get(), tail.get(), true,
                          true};
  CacheLayerShape shape;
  shape.kvHeads = c.kvHeads;
  shape.headDim = c.headDim;
  shape.pageSize = c.pageSize;
  shape.keyHeadBytes = sides[0]->headBytes(c.pageSize);
  shape.valueHeadBytes = sides[1]->headBytes(c.pageSize);
  shape.flushGroup = sides[0]->groupTokens();
  shape.capacityPages = 2 * ((total + c.pageSize - 1) / c.pageSize) + 2;
  PagedCache cache({shape});
  // The sequence and a neighbour take pages in turn.
  const uint64_t sequence = 3, neighbour = 4;
  orDie(cache.addSequence(sequence));
  orDie(cache.addSequence(neighbour));
  cpu::ThreadPool pool(2);
  std::vector<int32_t> positions(total);
  for (uint32_t i = 0; i < total; ++i)
    positions[i] = int32_t(i) + 1;
  // The earlier tokens encoded; the run's own in the tail, appended by one
  // call as the CPU's prefill appends them and reads them (bf16), encoded
  // only after its attention.
  for (uint32_t i = 0; i < c.before; ++i)
    for (uint64_t s : {sequence, neighbour}) {
      orDie(cache.reserve({{s, 1}}));
      cpu::append(pool, cache, 0, codecs, &keys[size_t(i) * width],
                  &values[size_t(i) * width], 1, &s, &positions[i]);
    }
  cpu::encodeTails(pool, cache, 0, codecs, &sequence, 1);
  orDie(cache.reserve({{sequence, c.rows}}));
  const std::vector<uint64_t> runRows(c.rows, sequence);
  cpu::append(pool, cache, 0, codecs, &keys[size_t(c.before) * width],
              &values[size_t(c.before) * width], c.rows, runRows.data(),
              &positions[c.before]);

  const float scale = 1.0f / std::sqrt(float(c.headDim));
  cpu::AttentionParams params;
  params.cache = &cache;
  params.codecs = codecs;
  params.scale = scale;
  std::vector<float> expected(q.size());
  std::vector<std::vector<float>> scratch;
  cpu::attention(pool, params, q.data(), c.rows, c.qHeads, runRows.data(),
                 positions.data() + c.before, expected.data(), scratch,
                 nullptr);
  cpu::encodeTails(pool, cache, 0, codecs, &sequence, 1);

  DeviceCacheLayer device = orDie(DeviceCacheLayer::upload(
      cache, 0, {sequence},
      orDie(deviceSideLayout(encoding, *sides[0], c.pageSize)),
      orDie(deviceSideLayout(encoding, *sides[1], c.pageSize))));
  DeviceBuffer qDevice = orDie(DeviceBuffer::allocate(q.size() * 4));
  orDie(qDevice.upload(q.data(), q.size() * 4));
  DeviceBuffer out = orDie(DeviceBuffer::allocate(q.size() * 4));
  CUDA_OK(cudaMemset(out.get(), 0xff, out.size()));
  // The run's own keys and values in bf16, as its append leaves them.
  std::vector<uint16_t> ownKeys(size_t(c.rows) * width),
      ownValues(ownKeys.size());
  for (size_t i = 0; i < ownKeys.size(); ++i) {
    ownKeys[i] = cpu::floatToBf16(keys[size_t(c.before) * width + i]);
    ownValues[i] = cpu::floatToBf16(values[size_t(c.before) * width + i]);
  }
  DeviceBuffer ownKeysDevice =
      orDie(DeviceBuffer::allocate(ownKeys.size() * 2));
  orDie(ownKeysDevice.upload(ownKeys.data(), ownKeys.size() * 2));
  DeviceBuffer ownValuesDevice =
      orDie(DeviceBuffer::allocate(ownValues.size() * 2));
  orDie(ownValuesDevice.upload(ownValues.data(), ownValues.size() * 2));
  PrefillAttentionArgs args;
  args.cache = device.view();
  args.ownKeys = ownKeysDevice.as<uint16_t>();
  args.ownValues = ownValuesDevice.as<uint16_t>();
  args.pageTable = device.view().pageTables;
  DeviceBuffer decoded;
  if (c.kind != schema::ENCODING_BF16) {
    // Earlier tokens into poisoned bf16 pages first.
    decoded = orDie(DeviceBuffer::allocate(
        std::max<size_t>(decodedTokensBytes(args.cache, c.before), 1)));
    CUDA_OK(cudaMemset(decoded.get(), 0xff, decoded.size()));
    args.cache =
        orDie(decodeEarlierTokens(args.cache, args.pageTable, 0, c.before,
                                  decoded.get(), &args.pageTable, nullptr));
  }
  args.before = c.before;
  args.rows = c.rows;
  args.q = qDevice.as<float>();
  args.out = out.as<float>();
  args.qHeads = c.qHeads;
  args.scale = scale;
  orDie(prefillAttention(args, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<float> got(q.size());
  CUDA_OK(cudaMemcpy(got.data(), out.get(), got.size() * 4,
                     cudaMemcpyDeviceToHost));
  double worst = 0;
  for (size_t row = 0; row < size_t(c.rows) * c.qHeads; ++row) {
    double diff = 0, norm = 0;
    for (uint32_t d = 0; d < c.headDim; ++d) {
      const double g = got[row * c.headDim + d],
                   e = expected[row * c.headDim + d];
      diff += std::isfinite(g) ? (g - e) * (g - e) : INFINITY;
      norm += e * e;
    }
    worst = std::max(worst, std::sqrt(diff / norm));
  }
  const bool ok = worst <= kBound;
  std::printf("%-4s prefill  %s before=%u rows=%u Hq=%u Hkv=%u d=%u P=%u: "
              "max rel err %.2e\n",
              ok ? "ok" : "FAIL", schema::EncodingKind_Name(c.kind).c_str(),
              c.before, c.rows, c.qHeads, c.kvHeads, c.headDim, c.pageSize,
              worst);
  return ok;
}

} // namespace

int runPrefillChecks() {
  const PrefillCase cases[] = {
      // One block, part of one; a chunk after earlier tokens.
      {0, 64, 4, 4, 64, 16},
      {0, 5, 6, 2, 64, 16},
      {100, 77, 6, 2, 64, 8},
      // Many tiles and blocks, groups 3, 4 and 8, page sizes around a tile.
      {0, 1000, 9, 3, 64, 16},
      {513, 700, 32, 8, 128, 16},
      {40, 300, 8, 1, 128, 32},
      {0, 257, 8, 2, 128, 96},
      // Earlier tokens of quantized caches decoded to bf16 pages first.
      {513, 700, 32, 8, 128, 16, schema::ENCODING_POLAR, 4},
      {100, 77, 6, 2, 64, 8, schema::ENCODING_POLAR, 3},
      {300, 130, 8, 2, 128, 96, schema::ENCODING_POLAR, 2},
      {513, 200, 32, 8, 128, 16, schema::ENCODING_FP8},
      {140, 90, 8, 1, 64, 32, schema::ENCODING_NVFP4},
      {512, 192, 32, 8, 128, 64, schema::ENCODING_INT, 4},
      {320, 96, 8, 2, 128, 32, schema::ENCODING_INT, 4},
      {128, 64, 6, 2, 64, 64, schema::ENCODING_INT, 2},
  };
  int failures = 0;
  uint32_t seed = 1000;
  for (const PrefillCase &c : cases)
    failures += runPrefillCase(c, seed++) ? 0 : 1;
  std::printf("prefill checks: %d failed, bound %.0e relative per query "
              "row\n",
              failures, kBound);
  return failures;
}

} // namespace kvrt::cuda::test
