//===- PrefillCheck.cpp - CUDA prefill attention against the CPU ----------===//
//
// Each case stores one sequence of before + rows tokens in a bf16 paged
// cache through libkvrt (pages taken from a pool shared with a second
// sequence, so they are not contiguous), runs cpu::attention for the last
// `rows` tokens' queries, and prefillAttention() into NaN-poisoned output,
// the first `before` tokens read from the pages, the last `rows` from
// their bf16 copy.
// Every output must be finite and, per query row,
//   |gpu - cpu| / |cpu| <= 2e-2   (L2 norms over the row's coordinates).
// The kernel rounds the scaled queries and the softmax weights to bf16 for
// its MMAs (as FlashAttention does) where the CPU keeps fp32: about 4e-3
// on these random rows; a wrong tile, mask or rescaling moves rows by far
// more than 2e-2.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/backends/cuda/DeviceCache.h"
#include "runtime/src/backends/cuda/PrefillAttention.h"
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

  schema::Encoding bf16;
  bf16.set_kind(schema::ENCODING_BF16);
  CodecContext context;
  context.kvHeads = c.kvHeads;
  context.headDim = c.headDim;
  std::unique_ptr<Codec> codec = orDie(makeCodec(bf16, context));
  schema::Encoding f32;
  f32.set_kind(schema::ENCODING_F32);
  std::unique_ptr<Codec> tail = orDie(makeCodec(f32, context));
  cpu::CacheCodecs codecs{codec.get(), codec.get(), tail.get(), true, true};
  CacheLayerShape shape;
  shape.kvHeads = c.kvHeads;
  shape.headDim = c.headDim;
  shape.pageSize = c.pageSize;
  shape.keyHeadBytes = shape.valueHeadBytes = codec->headBytes(c.pageSize);
  shape.capacityPages = 2 * ((total + c.pageSize - 1) / c.pageSize) + 2;
  PagedCache cache({shape});
  // The sequence and a neighbour take pages in turn.
  const uint64_t sequence = 3, neighbour = 4;
  orDie(cache.addSequence(sequence));
  orDie(cache.addSequence(neighbour));
  cpu::ThreadPool pool(2);
  std::vector<int32_t> positions(total);
  for (uint32_t i = 0; i < total; ++i) {
    positions[i] = int32_t(i) + 1;
    for (uint64_t s : {sequence, neighbour}) {
      orDie(cache.reserve({{s, 1}}));
      cpu::append(pool, cache, 0, codecs, &keys[size_t(i) * width],
                  &values[size_t(i) * width], 1, &s, &positions[i]);
    }
  }
  cpu::encodeTails(pool, cache, 0, codecs, &sequence, 1);

  const float scale = 1.0f / std::sqrt(float(c.headDim));
  cpu::AttentionParams params;
  params.cache = &cache;
  params.codecs = codecs;
  params.scale = scale;
  std::vector<float> expected(q.size());
  std::vector<std::vector<float>> scratch;
  std::vector<uint64_t> sequences(c.rows, sequence);
  cpu::attention(pool, params, q.data(), c.rows, c.qHeads, sequences.data(),
                 positions.data() + c.before, expected.data(), scratch,
                 nullptr);

  const DeviceSideLayout layout =
      orDie(deviceSideLayout(bf16, *codec, c.pageSize));
  DeviceCacheLayer device =
      orDie(DeviceCacheLayer::upload(cache, 0, {sequence}, layout, layout));
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
  std::printf("%-4s prefill  before=%u rows=%u Hq=%u Hkv=%u d=%u P=%u: max "
              "rel err %.2e\n",
              ok ? "ok" : "FAIL", c.before, c.rows, c.qHeads, c.kvHeads,
              c.headDim, c.pageSize, worst);
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
