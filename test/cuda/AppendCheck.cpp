//===- AppendCheck.cpp - Quantize-on-append against the CPU codecs --------===//
//
// For each encoding the GPU appends, random rows (keys with uneven
// channels, as real keys have) are written by launchAppend() into a
// device pool poisoned with 0xff and by the CPU codec into the same slots
// of a host copy; the two must hold the same bytes. Polar sums its norm
// and scale in another order than the CPU, so an entry whose coordinate
// lies within an ulp of a codebook boundary may differ: at most 1 in 1000
// entries may, and any other difference fails. Low-rank values' bf16
// latents (on a random basis with a mean; ranks even and odd) must match
// byte for byte: both sum in double in one order, unfused. So must
// low-rank keys' (rows at random positions up to 2^18, rotated back by
// RoPE of base 500000 with an attention factor of 1.1, pairs half a head
// apart and interleaved), which both rotate back with the CPU codec's
// tables in double before projecting. KIVI's groups,
// encoded by
// launchKiviFlush() as they leave the window, must match byte for byte.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cuda/Append.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/LatentKeyOperands.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/cache/Codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace kvrt::cuda::test {
namespace {

struct AppendCase {
  const char *name;
  schema::Encoding encoding;
  uint32_t headDim;
  bool polar;
  /// Low-rank: keys (with RoPE's pairs interleaved or not), else values.
  bool keys = false;
  bool interleaved = false;
};

/// What every append of these checks shares: rows' slots and positions,
/// per-head scales (read by fp8 per_head only) and the pages' shape.
AppendArgs appendArgs(const DeviceBuffer &slots, const DeviceBuffer &positions,
                      const DeviceBuffer &scales, uint32_t rows,
                      uint32_t kvHeads, uint32_t headDim, uint32_t pageSize) {
  AppendArgs args;
  args.slots = slots.as<int32_t>();
  args.positions = positions.as<int32_t>();
  args.headScales = scales.as<float>();
  args.rows = rows;
  args.kvHeads = kvHeads;
  args.headDim = headDim;
  args.pageSize = pageSize;
  return args;
}

bool runAppendCase(const AppendCase &c, uint32_t seed) {
  constexpr uint32_t kRows = 1000, kHeads = 4, kPageSize = 16;
  const uint32_t d = c.headDim;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> src(size_t(kRows) * kHeads * d);
  for (size_t i = 0; i < src.size(); ++i)
    src[i] = normal(rng) * (i % d % 13 == 5 ? 4.0f : 0.5f + 0.5f * (i % 5));
  CodecContext context;
  context.kvHeads = kHeads;
  context.headDim = d;
  context.layer = 3;
  if (c.encoding.kind() == schema::ENCODING_FP8 &&
      c.encoding.scale_mode() == schema::SCALE_MODE_PER_HEAD)
    context.scales = {0.011f, 0.02f, 0.005f, 0.04f};
  if (c.encoding.kind() == schema::ENCODING_NVFP4)
    context.scales = {0.0123f};
  // Low-rank: axes of N(0, 1 / d), then a mean of N(0, 1 / 4) (values) or
  // a weight from 0.5 to 2 and such a mean (keys).
  cpu::RopeFrequencies rope;
  rope.attentionFactor = 1.1;
  rope.interleaved = c.interleaved;
  for (uint32_t i = 0; i < d / 2; ++i)
    rope.inverse.push_back(std::pow(500000.0, -2.0 * i / d));
  if (c.encoding.kind() == schema::ENCODING_LOWRANK) {
    const uint32_t rank = c.encoding.rank();
    std::uniform_real_distribution<float> weight(0.5f, 2.0f);
    context.side = c.keys ? CacheSide::Key : CacheSide::Value;
    context.rope = c.keys ? &rope : nullptr;
    const uint32_t columns = c.keys ? rank + 2 : rank + 1;
    context.basis.resize(size_t(kHeads) * d * columns);
    for (size_t i = 0; i < context.basis.size(); ++i)
      context.basis[i] = i % columns < rank ? normal(rng) / std::sqrt(float(d))
                         : i % columns == columns - 1 ? normal(rng) * 0.5f
                                                      : weight(rng);
  }
  std::vector<int32_t> positions(kRows);
  std::uniform_int_distribution<int32_t> position(0, 1 << 18);
  for (int32_t &p : positions)
    p = position(rng);
  std::unique_ptr<Codec> codec = orDie(makeCodec(c.encoding, context));
  const DeviceSideLayout side =
      orDie(deviceSideLayout(c.encoding, *codec, kPageSize));

  // Rows go to slots in a shuffled order across the pages.
  const uint32_t pages = (kRows + kPageSize - 1) / kPageSize;
  std::vector<int32_t> slots(kRows);
  for (uint32_t r = 0; r < kRows; ++r)
    slots[r] = int32_t(r);
  std::shuffle(slots.begin(), slots.end(), rng);
  const uint64_t pageBytes = side.areaStride * kHeads;
  std::vector<uint8_t> expected(pages * pageBytes, 0xff);
  // The CPU rounds appended values to bf16 before encoding them.
  std::vector<float> rounded(d);
  for (uint32_t r = 0; r < kRows; ++r)
    for (uint32_t h = 0; h < kHeads; ++h) {
      for (uint32_t i = 0; i < d; ++i)
        rounded[i] = cpu::bf16ToFloat(
            cpu::floatToBf16(src[(size_t(r) * kHeads + h) * d + i]));
      uint8_t *area =
          &expected[slots[r] / kPageSize * pageBytes + h * side.areaStride];
      codec->encodeAt(rounded.data(), 1, h, uint32_t(slots[r]) % kPageSize,
                      &positions[r], area);
    }

  DeviceBuffer pool = orDie(DeviceBuffer::allocate(expected.size()));
  CUDA_OK(cudaMemset(pool.get(), 0xff, pool.size()));
  DeviceBuffer srcDevice = orDie(DeviceBuffer::allocate(src.size() * 4));
  orDie(srcDevice.upload(src.data(), src.size() * 4));
  DeviceBuffer slotsDevice = orDie(DeviceBuffer::allocate(kRows * 4));
  orDie(slotsDevice.upload(slots.data(), kRows * 4));
  DeviceBuffer scales = orDie(DeviceBuffer::allocate(kHeads * 4));
  if (context.scales.size() == kHeads)
    orDie(scales.upload(context.scales.data(), kHeads * 4));
  DeviceBuffer basis =
      orDie(DeviceBuffer::allocate(context.basis.size() * 4 + 4));
  orDie(basis.upload(context.basis.data(), context.basis.size() * 4));
  LatentKeyOperands operands;
  if (c.keys)
    operands =
        latentKeyOperands(context.basis, kHeads, d, c.encoding.rank(), rope);
  DeviceBuffer positionsDevice = orDie(DeviceBuffer::allocate(kRows * 4));
  orDie(positionsDevice.upload(positions.data(), kRows * 4));
  DeviceBuffer rotations =
      orDie(DeviceBuffer::allocate(operands.rotations.size() * 8 + 8));
  orDie(rotations.upload(operands.rotations.data(),
                         operands.rotations.size() * 8));
  DeviceBuffer ropeInverse =
      orDie(DeviceBuffer::allocate(operands.ropeInverse.size() * 8 + 8));
  orDie(ropeInverse.upload(operands.ropeInverse.data(),
                           operands.ropeInverse.size() * 8));
  AppendArgs args = appendArgs(slotsDevice, positionsDevice, scales, kRows,
                               kHeads, d, kPageSize);
  args.rotations = rotations.as<double>();
  args.ropeInverse = ropeInverse.as<double>();
  args.rotationScale = operands.rotationScale;
  args.src = srcDevice.as<float>();
  args.pool = pool.as<uint8_t>();
  args.basis = basis.as<float>();
  orDie(launchAppend(args, side, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint8_t> got(expected.size());
  CUDA_OK(
      cudaMemcpy(got.data(), pool.get(), got.size(), cudaMemcpyDeviceToHost));

  // Entries (and per-head headers) that differ.
  uint32_t differing = 0;
  for (uint32_t p = 0; p < pages; ++p)
    for (uint32_t h = 0; h < kHeads; ++h) {
      const size_t area = p * pageBytes + h * side.areaStride;
      if (std::memcmp(&got[area], &expected[area], side.codesOffset))
        ++differing;
      for (uint32_t s = 0; s < kPageSize; ++s) {
        const size_t at = area + side.codesOffset + s * side.entryBytes;
        differing += std::memcmp(&got[at], &expected[at], side.entryBytes) != 0;
      }
    }
  const uint32_t allowed = c.polar ? kRows * kHeads / 1000 : 0;
  const bool ok = differing <= allowed;
  std::printf("%-4s append   %-9s d=%u: %u of %u entries differ from the "
              "CPU codec's (at most %u may)\n",
              ok ? "ok" : "FAIL", c.name, d, differing, kRows * kHeads,
              allowed);
  return ok;
}

/// KIVI: launchKiviFlush() encodes one sequence's groups, from its rows'
/// bf16 copies (a call with nothing stored before it and no window), into
/// pages in shuffled order; every key block and value entry must hold the
/// CPU codec's bytes.
bool runKiviFlushCase(uint32_t d, uint32_t bits, uint32_t group,
                      uint32_t seed) {
  constexpr uint32_t kRows = 256, kHeads = 4, kPageSize = 64;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<uint16_t> own(size_t(kRows) * kHeads * d);
  for (size_t i = 0; i < own.size(); ++i)
    own[i] = cpu::floatToBf16(normal(rng) *
                              (i % d % 13 == 5 ? 4.0f : 0.5f + 0.5f * (i % 5)));
  schema::Encoding e;
  e.set_kind(schema::ENCODING_INT);
  e.set_bits(bits);
  e.set_group(group);
  CodecContext context;
  context.kvHeads = kHeads;
  context.headDim = d;
  std::unique_ptr<Codec> keyCodec = orDie(makeCodec(e, context));
  context.side = CacheSide::Value;
  std::unique_ptr<Codec> valueCodec = orDie(makeCodec(e, context));
  PagedKvView view;
  view.key = orDie(deviceSideLayout(e, *keyCodec, kPageSize));
  view.value = orDie(deviceSideLayout(e, *valueCodec, kPageSize));

  const uint32_t pages = kRows / kPageSize;
  std::vector<int32_t> table(pages);
  for (uint32_t p = 0; p < pages; ++p)
    table[p] = int32_t(p);
  std::shuffle(table.begin(), table.end(), rng);
  std::vector<float> rows(own.size());
  for (size_t i = 0; i < own.size(); ++i)
    rows[i] = cpu::bf16ToFloat(own[i]);
  const int64_t stride = int64_t(kHeads) * d;
  const uint64_t keyPage = view.key.areaStride * kHeads,
                 valuePage = view.value.areaStride * kHeads;
  std::vector<uint8_t> keys(pages * keyPage, 0xff),
      values(pages * valuePage, 0xff);
  for (uint32_t t = 0; t < kRows; ++t)
    for (uint32_t h = 0; h < kHeads; ++h) {
      const uint32_t page = uint32_t(table[t / kPageSize]),
                     slot = t % kPageSize;
      if (slot % group == 0)
        keyCodec->encode(&rows[size_t(t) * stride + h * d], stride, h, slot,
                         &keys[page * keyPage + h * view.key.areaStride]);
      valueCodec->encode(&rows[size_t(t) * stride + h * d], stride, h, slot,
                         &values[page * valuePage + h * view.value.areaStride]);
    }

  DeviceBuffer keyPool = orDie(DeviceBuffer::allocate(keys.size()));
  DeviceBuffer valuePool = orDie(DeviceBuffer::allocate(values.size()));
  CUDA_OK(cudaMemset(keyPool.get(), 0xff, keyPool.size()));
  CUDA_OK(cudaMemset(valuePool.get(), 0xff, valuePool.size()));
  DeviceBuffer ownDevice = orDie(DeviceBuffer::allocate(own.size() * 2));
  orDie(ownDevice.upload(own.data(), own.size() * 2));
  // Lengths, table rows (all one sequence), the page table and its call:
  // slot 0, nothing before, kRows after.
  std::vector<int32_t> ints(2 * kRows + pages + 3, 0);
  for (uint32_t r = 0; r < kRows; ++r)
    ints[r] = int32_t(r + 1);
  std::copy(table.begin(), table.end(), ints.begin() + 2 * kRows);
  ints[2 * kRows + pages + 2] = int32_t(kRows);
  DeviceBuffer intsDevice = orDie(DeviceBuffer::allocate(ints.size() * 4));
  orDie(intsDevice.upload(ints.data(), ints.size() * 4));
  // A store the rows never read (nothing was stored before the call).
  DeviceBuffer store =
      orDie(DeviceBuffer::allocate(size_t(group) * kHeads * d * 2));
  const int32_t *deviceInts = intsDevice.as<int32_t>();
  view.lengths = deviceInts;
  view.tableRows = deviceInts + kRows;
  view.pageTables = deviceInts + 2 * kRows;
  view.pageTableStride = pages;
  view.pageSize = kPageSize;
  view.kvHeads = kHeads;
  view.headDim = d;
  view.exact.window = group;
  view.exact.flushGroup = group;
  view.exact.keys = view.exact.values = store.as<uint16_t>();
  view.exact.calls = deviceInts + 2 * kRows + pages;
  view.exact.ownKeys = view.exact.ownValues = ownDevice.as<uint16_t>();
  KiviFlushArgs args;
  args.view = view;
  args.keys = keyPool.as<uint8_t>();
  args.values = valuePool.as<uint8_t>();
  args.rows = kRows;
  orDie(launchKiviFlush(args, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint8_t> gotKeys(keys.size()), gotValues(values.size());
  CUDA_OK(cudaMemcpy(gotKeys.data(), keyPool.get(), keys.size(),
                     cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(gotValues.data(), valuePool.get(), values.size(),
                     cudaMemcpyDeviceToHost));
  uint32_t blocks = 0, entries = 0;
  const uint64_t blockBytes = uint64_t(group) * view.key.entryBytes;
  for (uint32_t p = 0; p < pages; ++p)
    for (uint32_t h = 0; h < kHeads; ++h) {
      for (uint32_t b = 0; b < kPageSize / group; ++b) {
        const size_t at =
            p * keyPage + h * view.key.areaStride + b * blockBytes;
        blocks += std::memcmp(&gotKeys[at], &keys[at], blockBytes) != 0;
      }
      for (uint32_t slot = 0; slot < kPageSize; ++slot) {
        const size_t at = p * valuePage + h * view.value.areaStride +
                          slot * view.value.entryBytes;
        entries += std::memcmp(&gotValues[at], &values[at],
                               view.value.entryBytes) != 0;
      }
    }
  const bool ok = blocks == 0 && entries == 0;
  std::printf("%-4s kivi flush int%u g%-2u d=%u: %u of %u key blocks, %u of "
              "%u value entries differ from the CPU codec's\n",
              ok ? "ok" : "FAIL", bits, group, d, blocks,
              kRows / group * kHeads, entries, kRows * kHeads);
  return ok;
}

/// Low-rank values of `rank` with a bf16 latent.
schema::Encoding lowRankEncoding(uint32_t rank) {
  schema::Encoding e;
  e.set_kind(schema::ENCODING_LOWRANK);
  e.set_rank(rank);
  e.mutable_latent()->set_kind(schema::ENCODING_BF16);
  return e;
}

} // namespace

schema::Encoding testEncoding(schema::EncodingKind kind, uint32_t bits,
                              schema::ScaleMode mode) {
  schema::Encoding e;
  e.set_kind(kind);
  if (kind == schema::ENCODING_FP8) {
    e.set_fp8_format(schema::FP8_FORMAT_E4M3);
    e.set_scale_mode(mode);
  }
  if (kind == schema::ENCODING_POLAR) {
    e.set_bits(bits);
    e.set_rotation(schema::ROTATION_HADAMARD);
    e.set_seed(7);
  }
  if (kind == schema::ENCODING_INT) {
    // KIVI's groups as the attention checks take them: 32 tokens for 4
    // bits, 64 for 2.
    e.set_bits(bits);
    e.set_group(bits == 4 ? 32 : 64);
  }
  return e;
}

/// launchAppends() with the keys' rope folded in and the queries' rope
/// beside it must write, byte for byte, what launchRope() twice and
/// launchAppend() for each side write: both rotate in RopeTurn.cuh's
/// arithmetic. Rows come from one fused projection's columns (q, k, v side
/// by side) at random positions, into slots in shuffled order.
bool runFoldedCase(const char *name, const schema::Encoding &encoding,
                   uint32_t d, bool interleaved, uint32_t seed) {
  constexpr uint32_t kRows = 300, kHeads = 4, kQueryHeads = 12, kPageSize = 16;
  const uint64_t width = uint64_t(kQueryHeads + 2 * kHeads) * d;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> projected(kRows * width);
  for (float &x : projected)
    x = normal(rng);
  std::vector<int32_t> positions(kRows), slots(kRows);
  std::uniform_int_distribution<int32_t> position(0, 1 << 18);
  for (uint32_t r = 0; r < kRows; ++r) {
    positions[r] = position(rng);
    slots[r] = int32_t(r);
  }
  std::shuffle(slots.begin(), slots.end(), rng);
  std::vector<double> inverse(d / 2);
  for (uint32_t i = 0; i < d / 2; ++i)
    inverse[i] = std::pow(500000.0, -2.0 * i / d);
  const double factor = 1.1;

  CodecContext context;
  context.kvHeads = kHeads;
  context.headDim = d;
  if (encoding.kind() == schema::ENCODING_NVFP4)
    context.scales = {0.0123f};
  if (encoding.kind() == schema::ENCODING_FP8 &&
      encoding.scale_mode() == schema::SCALE_MODE_PER_HEAD)
    context.scales = {0.011f, 0.02f, 0.005f, 0.04f};
  std::unique_ptr<Codec> codec = orDie(makeCodec(encoding, context));
  const DeviceSideLayout side =
      orDie(deviceSideLayout(encoding, *codec, kPageSize));
  DeviceBuffer scales = orDie(DeviceBuffer::allocate(kHeads * 4));
  if (context.scales.size() == kHeads)
    orDie(scales.upload(context.scales.data(), kHeads * 4));
  const size_t poolBytes =
      (kRows + kPageSize - 1) / kPageSize * side.areaStride * kHeads;

  DeviceBuffer src = orDie(DeviceBuffer::allocate(projected.size() * 4));
  orDie(src.upload(projected.data(), projected.size() * 4));
  DeviceBuffer positionsDevice = orDie(DeviceBuffer::allocate(kRows * 4));
  orDie(positionsDevice.upload(positions.data(), kRows * 4));
  DeviceBuffer slotsDevice = orDie(DeviceBuffer::allocate(kRows * 4));
  orDie(slotsDevice.upload(slots.data(), kRows * 4));
  DeviceBuffer inverseDevice = orDie(DeviceBuffer::allocate(d / 2 * 8));
  orDie(inverseDevice.upload(inverse.data(), d / 2 * 8));
  DeviceBuffer rotatedKeys =
      orDie(DeviceBuffer::allocate(size_t(kRows) * kHeads * d * 4));
  // Per way (four launches, then one): keys' and values' pools, queries.
  std::vector<DeviceBuffer> pools, queries;
  for (int way = 0; way < 2; ++way) {
    for (int sideIndex = 0; sideIndex < 2; ++sideIndex) {
      pools.push_back(orDie(DeviceBuffer::allocate(poolBytes)));
      CUDA_OK(cudaMemset(pools.back().get(), 0xff, poolBytes));
    }
    const size_t queryBytes = size_t(kRows) * kQueryHeads * d * 4;
    queries.push_back(orDie(DeviceBuffer::allocate(queryBytes)));
    CUDA_OK(cudaMemset(queries.back().get(), 0xff, queryBytes));
  }
  const float *q = src.as<float>(), *k = q + kQueryHeads * d,
              *v = k + kHeads * d;
  AppendArgs keys = appendArgs(slotsDevice, positionsDevice, scales, kRows,
                               kHeads, d, kPageSize);
  AppendArgs values = keys;
  values.src = v;
  values.srcStride = width;

  // Four launches.
  if (!launchRope(q, int64_t(width), kRows, kQueryHeads, d, keys.positions,
                  inverseDevice.as<double>(), factor, interleaved,
                  queries[0].as<float>(), nullptr) ||
      !launchRope(k, int64_t(width), kRows, kHeads, d, keys.positions,
                  inverseDevice.as<double>(), factor, interleaved,
                  rotatedKeys.as<float>(), nullptr))
    orDie(Status::error("launching the rope kernel failed"));
  keys.src = rotatedKeys.as<float>();
  keys.pool = pools[0].as<uint8_t>();
  orDie(launchAppend(keys, side, nullptr));
  values.pool = pools[1].as<uint8_t>();
  orDie(launchAppend(values, side, nullptr));
  // One.
  keys.src = k;
  keys.srcStride = width;
  keys.rope = {inverseDevice.as<double>(), factor, interleaved};
  keys.pool = pools[2].as<uint8_t>();
  values.pool = pools[3].as<uint8_t>();
  QueryRope rope{q, width, kQueryHeads, queries[1].as<float>()};
  orDie(launchAppends(keys, side, values, side, &rope, nullptr));
  CUDA_OK(cudaDeviceSynchronize());

  auto differing = [](const DeviceBuffer &a, const DeviceBuffer &b) {
    std::vector<uint8_t> x(a.size()), y(b.size());
    CUDA_OK(cudaMemcpy(x.data(), a.get(), x.size(), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(y.data(), b.get(), y.size(), cudaMemcpyDeviceToHost));
    size_t n = 0;
    for (size_t i = 0; i < x.size(); ++i)
      n += x[i] != y[i];
    return n;
  };
  const size_t keyBytes = differing(pools[0], pools[2]);
  const size_t valueBytes = differing(pools[1], pools[3]);
  const size_t queryBytes = differing(queries[0], queries[1]);
  const bool ok = !keyBytes && !valueBytes && !queryBytes;
  std::printf("%-4s append   %-9s d=%u%s folded rope, one launch: %zu key, "
              "%zu value, %zu query bytes differ from four launches\n",
              ok ? "ok" : "FAIL", name, d, interleaved ? " interleaved" : "",
              keyBytes, valueBytes, queryBytes);
  return ok;
}

int runAppendChecks() {
  const AppendCase cases[] = {
      {"bf16", testEncoding(schema::ENCODING_BF16), 128, false},
      {"fp8-dyn", testEncoding(schema::ENCODING_FP8), 128, false},
      {"fp8-head",
       testEncoding(schema::ENCODING_FP8, 0, schema::SCALE_MODE_PER_HEAD), 64,
       false},
      {"nvfp4", testEncoding(schema::ENCODING_NVFP4), 128, false},
      {"nvfp4", testEncoding(schema::ENCODING_NVFP4), 64, false},
      {"polar2", testEncoding(schema::ENCODING_POLAR, 2), 128, true},
      {"polar3", testEncoding(schema::ENCODING_POLAR, 3), 64, true},
      {"polar4", testEncoding(schema::ENCODING_POLAR, 4), 128, true},
      {"lowrank", lowRankEncoding(64), 128, false},
      {"lowrank", lowRankEncoding(27), 64, false},
      {"lr-keys", lowRankEncoding(64), 128, false, true},
      {"lr-keys", lowRankEncoding(27), 64, false, true, true},
  };
  int failures = 0;
  uint32_t seed = 2000;
  for (const AppendCase &c : cases)
    failures += runAppendCase(c, seed++) ? 0 : 1;
  for (const AppendCase &c : cases)
    if (!c.keys && c.encoding.kind() != schema::ENCODING_LOWRANK)
      failures += runFoldedCase(c.name, c.encoding, c.headDim, seed % 2, seed++)
                      ? 0
                      : 1;
  for (uint32_t d : {64u, 128u})
    for (uint32_t bits : {2u, 4u})
      for (uint32_t group : {32u, 64u})
        failures += runKiviFlushCase(d, bits, group, seed++) ? 0 : 1;
  std::printf("append checks: %d failed\n", failures);
  return failures;
}

} // namespace kvrt::cuda::test
