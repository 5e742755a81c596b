//===- AttentionCheck.cpp - CUDA decode attention against the CPU ---------===//
//
// Each case builds one layer's paged cache through libkvrt (codecs,
// PagedCache, cpu::append, pages of the batch's sequences interleaved in
// the pool), runs cpu::attention for one query row per sequence, copies the
// pages to the device and runs decodeAttention() into NaN-poisoned output
// and workspace, with each split kernel that reads the encoding (GroupMma,
// Mma: tensor cores; Fma: CUDA cores). Every output must be finite and,
// per query row, within
//   |gpu - cpu| / |cpu| <= 1e-4   (L2 norms over the row's coordinates),
// 1e-3 for polar, 2e-3 for kivi. Both sides decode the same stored bytes and
// accumulate in fp32; they differ in summation order, exp vs exp2 and, on the
// tensor cores, in the queries and weights carried as hi + lo halves of bf16 or
// f16 (about 2^-16 relative or better each): 1e-6 to 1e-5 here, so 1e-4
// leaves room for long rows and peaked softmaxes while catching any wrong
// entry, scale or weight (those move it by 1e-2 or more; a single bf16
// rounding of the weights alone would give about 1e-3). Polar's levels
// enter the MMAs as f16 (GroupFragments.cuh): about 3e-4, hence its
// bound; a wrong code or scale still moves a row by 1e-2. KIVI's entries
// enter them as zero + code * scale rounded once to f16, likewise, but a
// channel of a key block holds only 2^bits distinct values, each rounded
// once for every token that has its code, so the rounding does not
// average out over tokens: up to 1.06e-3 at 2 bits (2026-12-02), hence
// 2e-3. Its
// lengths are cut to whole groups and its pages rounded up to them, so that
// the CPU's tail is empty and both read codes only (the window, read from
// the exact-token store, is checked by the engine section). Polar runs in
// the rotated domain on both sides (the GPU rotates the queries and the
// outputs with the codec's signs). Low-rank values (bf16 keys, latents of
// ranks d / 2, 3 d / 4 and, odd, 3 d / 4 + 1 and d / 4 + 1 in bf16 on a
// random basis with a mean: coordinates read in pairs and one at a time,
// one and, for d = 128, two value tiles to a stage)
// keep 1e-4: both sides sum the same latents in fp32 and map the sums back
// once per row in fp32 (a wrong latent, weight or basis row moves a row by
// 1e-2 or more); their exact sinks and window are checked by the engine
// section. Low-rank keys (latents of ranks d / 2, 3 d / 4 + 1 and d / 4
// on a random basis with positive weights, beside bf16 values; RoPE of
// base 500000, with YaRN's attention factor 1.1, one case interleaved)
// reach each kernel instance (ranks rounded up to 32, 64, 128), odd ranks'
// 2-byte loads and positions past 100K, also beside low-rank values (ranks
// d / 2 and d / 4 + 1, summed over 64 coordinates): the kernel rebuilds each
// key on the tensor cores from axes rounded to f16 and rounds the key to f16
// (2^-12 relative each, on average): up to 1.6e-3 here (2026-12-04) and
// 2.8e-3 for an odd rank once the seeds moved (2026-12-05), hence 4e-3
// (a wrong axis, angle or latent moves a row by 1e-2 or more). Rows with no
// visible entry must be exactly zero.
//
// Each kernel runs a second time adding H2O's mass (but for latents, which
// the plan refuses): into a pool of 0.5s, each entry's softmax weights
// summed over the group, against float64 sums of cpu::attentionWeights.
// Per sequence and KV head, the L1 error over its entries against their
// total must be within the output's bound (the weights carry the scores'
// errors), and every place no row reads must still hold 0.5 exactly.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DecodeKernels.h"
#include "runtime/src/backends/cuda/DeviceCache.h"
#include "runtime/src/backends/cuda/LatentKeyOperands.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

namespace kvrt::cuda::test {
namespace {

constexpr double kBound = 1e-4, kPolarBound = 1e-3, kKiviBound = 2e-3,
                 kLowRankKeyBound = 4e-3;
constexpr double kRopeBase = 500000, kAttentionFactor = 1.1;

enum class Enc {
  Bf16,
  Fp8Dynamic,
  Fp8PerHead,
  Polar2,
  Polar3,
  Polar4,
  Nvfp4,
  Kivi4,
  Kivi2,
  LowRank,
  LowRankOdd,
  LowRankEven,
  LowRankOddSmall,
  LowRankKeys,
  LowRankKeysOdd,
  LowRankKeysSmall,
  LowRankKeysInterleaved,
  LowRankKeysValues,
  LowRankKeysValuesOdd
};
const char *name(Enc e) {
  static const char *const kNames[] = {"bf16",
                                       "fp8-dyn",
                                       "fp8-head",
                                       "polar2",
                                       "polar3",
                                       "polar4",
                                       "nvfp4",
                                       "kivi4",
                                       "kivi2",
                                       "lowrank",
                                       "lowrank-odd",
                                       "lowrank-even",
                                       "lowrank-odd-small",
                                       "lr-keys",
                                       "lr-keys-odd",
                                       "lr-keys-small",
                                       "lr-keys-gptj",
                                       "lr-kv",
                                       "lr-kv-odd"};
  return kNames[int(e)];
}

/// KIVI's group: 32 tokens for 4 bits, 64 for 2 (both widths and groups
/// are read); 0 for the other encodings.
uint32_t kiviGroup(Enc e) {
  return e == Enc::Kivi4 ? 32 : e == Enc::Kivi2 ? 64 : 0;
}

constexpr SplitKernel kKernels[] = {SplitKernel::GroupMma, SplitKernel::Mma,
                                    SplitKernel::Fma};
const char *const kKernelNames[] = {"group", "mma", "fma"};

struct Case {
  std::vector<uint32_t> lengths;
  uint32_t qHeads, kvHeads, headDim, pageSize;
  /// Token i is stored at position positionStride * i + 1.
  int32_t positionStride = 1;
  /// The query sees tokens [0, visibleFraction * length) (1: all).
  double visibleFraction = 1.0;
  int32_t slidingWindow = 0;
  /// Plans as for this many SMs (0: the device's): one wave holds few
  /// blocks, so a long row's splits run in many waves.
  uint32_t multiprocessors = 0;
};

/// Low-rank values' rank for head dimension d; 0 for the other encodings.
/// Each reaches another path of the latent kernels (DecodeAttentionPlan;
/// d = 128 puts two value tiles in a stage for ranks up to 64): d / 2,
/// coordinates in pairs, two tiles; 3 d / 4 + 1, one at a time, one tile;
/// 3 d / 4, in pairs, one tile (the value dimension of 128: two pairs a
/// lane); d / 4 + 1, one at a time, two tiles.
uint32_t latentRank(Enc e, uint32_t d) {
  switch (e) {
  case Enc::LowRank:
    return d / 2;
  case Enc::LowRankOdd:
    return 3 * d / 4 + 1;
  case Enc::LowRankEven:
    return 3 * d / 4;
  case Enc::LowRankOddSmall:
  case Enc::LowRankKeysValuesOdd:
    return d / 4 + 1;
  case Enc::LowRankKeysValues:
    return d / 2;
  default:
    return 0;
  }
}

/// Low-rank keys' rank for head dimension d, 0 for the other encodings:
/// d / 4, d / 2 and 3 d / 4 + 1 take each kernel instance at d = 128 (the
/// rank rounded up to 32, 64, 128), the last one odd (2-byte loads).
uint32_t latentKeyRank(Enc e, uint32_t d) {
  switch (e) {
  case Enc::LowRankKeys:
  case Enc::LowRankKeysInterleaved:
  case Enc::LowRankKeysValues:
    return d / 2;
  case Enc::LowRankKeysOdd:
  case Enc::LowRankKeysValuesOdd:
    return 3 * d / 4 + 1;
  case Enc::LowRankKeysSmall:
    return d / 4;
  default:
    return 0;
  }
}

/// The encoding of the values (`values`) or keys of `e` for head dimension
/// `d`: low-rank values beside bf16 keys, low-rank keys beside bf16
/// values, else one encoding for both.
schema::Encoding encodingOf(Enc e, bool values, uint32_t d) {
  schema::Encoding encoding;
  const uint32_t keyRank = latentKeyRank(e, d);
  if (const uint32_t rank = values ? latentRank(e, d) : keyRank) {
    encoding.set_kind(schema::ENCODING_LOWRANK);
    encoding.set_rank(rank);
    encoding.mutable_latent()->set_kind(schema::ENCODING_BF16);
  } else if (e == Enc::Bf16 || latentRank(e, d) || keyRank) {
    encoding.set_kind(schema::ENCODING_BF16);
  } else if (e == Enc::Fp8Dynamic || e == Enc::Fp8PerHead) {
    encoding.set_kind(schema::ENCODING_FP8);
    encoding.set_fp8_format(schema::FP8_FORMAT_E4M3);
    encoding.set_scale_mode(e == Enc::Fp8Dynamic ? schema::SCALE_MODE_DYNAMIC
                                                 : schema::SCALE_MODE_PER_HEAD);
  } else if (e == Enc::Nvfp4) {
    encoding.set_kind(schema::ENCODING_NVFP4);
  } else if (kiviGroup(e)) {
    encoding.set_kind(schema::ENCODING_INT);
    encoding.set_bits(e == Enc::Kivi4 ? 4 : 2);
    encoding.set_group(kiviGroup(e));
  } else {
    encoding.set_kind(schema::ENCODING_POLAR);
    encoding.set_bits(e == Enc::Polar2 ? 2 : e == Enc::Polar3 ? 3 : 4);
    encoding.set_rotation(schema::ROTATION_HADAMARD);
    encoding.set_seed(20261201);
  }
  return encoding;
}

/// Keys with uneven channels (scales 0.5 to 2.5, a 4x outlier every 13th
/// channel), as real keys have; plain normal values.
std::vector<float> randomRows(std::mt19937 &rng, size_t rows, uint32_t width,
                              bool keys) {
  std::normal_distribution<float> normal;
  std::vector<float> x(rows * width);
  for (size_t i = 0; i < x.size(); ++i) {
    uint32_t c = uint32_t(i % width);
    float scale = !keys ? 1.0f : c % 13 == 5 ? 4.0f : 0.5f + 0.5f * (c % 5);
    x[i] = normal(rng) * scale;
  }
  return x;
}

/// absmax / 448 per KV head over every sequence's rows.
std::vector<float> headScales(const std::vector<std::vector<float>> &rows,
                              uint32_t kvHeads, uint32_t headDim) {
  std::vector<float> scales(kvHeads, 0.0f);
  for (const std::vector<float> &r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      float &s = scales[i / headDim % kvHeads];
      s = std::max(s, std::fabs(r[i]) / 448.0f);
    }
  return scales;
}

/// Runs one case in one encoding; returns whether it passed.
bool runCase(Case c, Enc enc, uint32_t multiprocessors, uint32_t seed) {
  if (c.multiprocessors)
    multiprocessors = c.multiprocessors;
  const bool polar =
      enc == Enc::Polar2 || enc == Enc::Polar3 || enc == Enc::Polar4;
  const uint32_t keyRank = latentKeyRank(enc, c.headDim);
  const double bound = keyRank          ? kLowRankKeyBound
                       : polar          ? kPolarBound
                       : kiviGroup(enc) ? kKiviBound
                                        : kBound;
  if (const uint32_t group = kiviGroup(enc)) {
    for (uint32_t &length : c.lengths)
      length = length / group * group;
    c.pageSize = std::lcm(c.pageSize, group);
  }
  std::mt19937 rng(seed);
  const uint32_t batch = uint32_t(c.lengths.size());
  const uint32_t width = c.kvHeads * c.headDim;
  std::vector<std::vector<float>> keys, values;
  for (uint32_t length : c.lengths) {
    keys.push_back(randomRows(rng, length, width, true));
    values.push_back(randomRows(rng, length, width, false));
  }
  std::vector<float> q =
      randomRows(rng, batch, c.qHeads * c.headDim, /*keys=*/false);

  const schema::Encoding keyEncoding = encodingOf(enc, false, c.headDim);
  const schema::Encoding valueEncoding = encodingOf(enc, true, c.headDim);
  CodecContext context;
  context.kvHeads = c.kvHeads;
  context.headDim = c.headDim;
  if (enc == Enc::Fp8PerHead)
    context.scales = headScales(keys, c.kvHeads, c.headDim);
  // A tensor scale that is no power of two (keys' block scales up to
  // about 16 / 6 / T, within E4M3's 448).
  if (enc == Enc::Nvfp4)
    context.scales = {0.0123f};
  // Low-rank keys: per KV head and coordinate, rank axes of N(0, 1 / d)
  // and a weight from 0.5 to 2; the RoPE that rotates them.
  cpu::RopeFrequencies rope;
  rope.attentionFactor = kAttentionFactor;
  rope.interleaved = enc == Enc::LowRankKeysInterleaved;
  for (uint32_t i = 0; i < c.headDim / 2; ++i)
    rope.inverse.push_back(std::pow(kRopeBase, -2.0 * i / c.headDim));
  std::vector<float> keyBasis;
  if (keyRank) {
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> weight(0.5f, 2.0f);
    // Per coordinate: the axes, a weight and a mean of N(0, 1) (keys'
    // means are most of their length, docs/lowrank.md).
    const uint32_t columns = keyRank + 2;
    keyBasis.resize(size_t(c.kvHeads) * c.headDim * columns);
    for (size_t i = 0; i < keyBasis.size(); ++i)
      keyBasis[i] = i % columns < keyRank
                        ? normal(rng) / std::sqrt(float(c.headDim))
                    : i % columns == keyRank ? weight(rng)
                                             : normal(rng);
    context.basis = keyBasis;
    context.rope = &rope;
  }
  std::unique_ptr<Codec> key = orDie(makeCodec(keyEncoding, context));
  context.basis.clear();
  context.rope = nullptr;
  context.side = CacheSide::Value;
  if (enc == Enc::Fp8PerHead)
    context.scales = headScales(values, c.kvHeads, c.headDim);
  // A latent's basis: per KV head and coordinate, rank axes of N(0, 1 / d)
  // and a mean of N(0, 1 / 4).
  if (const uint32_t rank = latentRank(enc, c.headDim)) {
    std::normal_distribution<float> normal;
    context.basis.resize(size_t(c.kvHeads) * c.headDim * (rank + 1));
    for (size_t i = 0; i < context.basis.size(); ++i)
      context.basis[i] =
          normal(rng) *
          (i % (rank + 1) == rank ? 0.5f : 1.0f / std::sqrt(c.headDim));
  }
  std::unique_ptr<Codec> value = orDie(makeCodec(valueEncoding, context));
  schema::Encoding f32;
  f32.set_kind(schema::ENCODING_F32);
  std::unique_ptr<Codec> tail = orDie(makeCodec(f32, context));
  cpu::CacheCodecs codecs{key.get(), value.get(), tail.get(), true, true};

  CacheLayerShape shape;
  shape.kvHeads = c.kvHeads;
  shape.headDim = c.headDim;
  shape.pageSize = c.pageSize;
  shape.keyHeadBytes = key->headBytes(c.pageSize);
  shape.valueHeadBytes = value->headBytes(c.pageSize);
  shape.flushGroup = key->groupTokens();
  shape.capacityPages = 0;
  for (uint32_t length : c.lengths)
    shape.capacityPages += (length + c.pageSize - 1) / c.pageSize;
  PagedCache cache({shape});
  std::vector<uint64_t> sequences;
  for (uint32_t b = 0; b < batch; ++b) {
    sequences.push_back(100 + 7 * b);
    orDie(cache.addSequence(sequences.back()));
  }

  // Token by token, the sequences in a new order each round, so that their
  // pages interleave in the pool.
  cpu::ThreadPool pool(2);
  const uint32_t longest =
      *std::max_element(c.lengths.begin(), c.lengths.end());
  std::vector<uint32_t> order(batch);
  for (uint32_t b = 0; b < batch; ++b)
    order[b] = b;
  for (uint32_t i = 0; i < longest; ++i) {
    std::shuffle(order.begin(), order.end(), rng);
    for (uint32_t b : order) {
      if (i >= c.lengths[b])
        continue;
      uint64_t sequence = sequences[b];
      orDie(cache.reserve({{sequence, 1}}));
      int32_t position = c.positionStride * int32_t(i) + 1;
      cpu::append(pool, cache, 0, codecs, &keys[b][size_t(i) * width],
                  &values[b][size_t(i) * width], 1, &sequence, &position);
    }
  }
  cpu::encodeTails(pool, cache, 0, codecs, sequences.data(), batch);

  std::vector<int32_t> queryPositions;
  for (uint32_t length : c.lengths) {
    int64_t seen = std::llround(c.visibleFraction * length);
    queryPositions.push_back(int32_t(c.positionStride * (seen - 1) + 1));
  }
  const float scale = 1.0f / std::sqrt(float(c.headDim));

  cpu::AttentionParams params;
  params.cache = &cache;
  params.codecs = codecs;
  params.scale = scale;
  params.slidingWindow = c.slidingWindow;
  std::vector<float> expected(q.size());
  std::vector<std::vector<float>> scratch;
  cpu::attention(pool, params, q.data(), batch, c.qHeads, sequences.data(),
                 queryPositions.data(), expected.data(), scratch, nullptr);

  DeviceSideLayout keyLayout =
      orDie(deviceSideLayout(keyEncoding, *key, c.pageSize));
  DeviceSideLayout valueLayout =
      orDie(deviceSideLayout(valueEncoding, *value, c.pageSize));
  DeviceCacheLayer device = orDie(
      DeviceCacheLayer::upload(cache, 0, sequences, keyLayout, valueLayout));
  DeviceBuffer basis =
      orDie(DeviceBuffer::allocate(context.basis.size() * 4 + 4));
  orDie(basis.upload(context.basis.data(), context.basis.size() * 4));
  LatentKeyOperands operands;
  if (keyRank)
    operands = latentKeyOperands(keyBasis, c.kvHeads, c.headDim, keyRank, rope);
  DeviceBuffer keyAxes =
      orDie(DeviceBuffer::allocate(operands.axes.size() * 4 + 4));
  orDie(keyAxes.upload(operands.axes.data(), operands.axes.size() * 4));
  DeviceBuffer keyFrequencies =
      orDie(DeviceBuffer::allocate(operands.frequencies.size() * 4 + 4));
  orDie(keyFrequencies.upload(operands.frequencies.data(),
                              operands.frequencies.size() * 4));

  DecodeAttentionShape attentionShape{batch,     c.qHeads,   c.kvHeads,
                                      c.headDim, c.pageSize, device.maxLength(),
                                      keyLayout, valueLayout};
  // Groups past kFoldedGroup heads must be refused with a sentence.
  if (keyRank && c.qHeads / c.kvHeads > kFoldedGroup) {
    StatusOr<DecodeAttentionPlan> refused =
        planDecodeAttention(attentionShape, multiprocessors);
    std::printf("%-4s %-8s Hq=%u Hkv=%u: %s\n", refused ? "FAIL" : "ok",
                name(enc), c.qHeads, c.kvHeads,
                refused ? "planned" : refused.status().message().c_str());
    return !refused;
  }
  DeviceBuffer qDevice = orDie(DeviceBuffer::allocate(q.size() * 4));
  orDie(qDevice.upload(q.data(), q.size() * 4));
  DeviceBuffer positionsDevice =
      orDie(DeviceBuffer::allocate(queryPositions.size() * 4));
  orDie(
      positionsDevice.upload(queryPositions.data(), queryPositions.size() * 4));
  DeviceBuffer out = orDie(DeviceBuffer::allocate(q.size() * 4));

  DecodeAttentionArgs args;
  args.cache = device.view();
  if (valueLayout.kind == DeviceSideLayout::Kind::Latent)
    args.cache.valueBasis = basis.as<float>();
  if (keyRank) {
    args.cache.keyAxes = keyAxes.as<uint32_t>();
    args.cache.keyFrequencies = keyFrequencies.as<uint32_t>();
  }
  args.q = qDevice.as<float>();
  args.queryPositions = positionsDevice.as<int32_t>();
  args.out = out.as<float>();
  args.batch = batch;
  args.qHeads = c.qHeads;
  args.scale = scale;
  args.slidingWindow = c.slidingWindow;

  // H2O's mass: each sequence's softmax weights per entry and KV head,
  // summed over the group, where the device holds the entry; every other
  // place stays as it was (kMassBase).
  const bool addsMass = !latentRank(enc, c.headDim);
  const uint32_t group = c.qHeads / c.kvHeads;
  const size_t massPlaces =
      size_t(shape.capacityPages) * c.kvHeads * c.pageSize;
  constexpr float kMassBase = 0.5f;
  std::vector<double> expectedMass(massPlaces, 0.0);
  std::vector<bool> massRead(massPlaces, false);
  if (addsMass) {
    std::vector<float> weights;
    for (uint32_t b = 0; b < batch; ++b) {
      const int64_t stride = std::max<int64_t>(1, c.lengths[b]);
      weights.assign(
          size_t(cpu::attentionWeightsScratch(params, group, stride)), 0.0f);
      const std::vector<uint32_t> &pages = cache.pages(0, sequences[b]);
      for (uint32_t h = 0; h < c.kvHeads; ++h) {
        const cpu::VisibleEntries visible = cpu::attentionWeights(
            params, sequences[b], h, queryPositions[b],
            &q[(size_t(b) * c.qHeads + h * group) * c.headDim], group, stride,
            weights.data());
        for (uint32_t i = 0; i < c.lengths[b]; ++i) {
          const size_t place =
              (size_t(pages[i / c.pageSize]) * c.kvHeads + h) * c.pageSize +
              i % c.pageSize;
          massRead[place] = true;
          const int64_t at = int64_t(i) - int64_t(visible.first);
          if (at < 0 || at >= visible.count)
            continue;
          for (uint32_t g = 0; g < group; ++g)
            expectedMass[place] += weights[size_t(g) * stride + size_t(at)];
        }
      }
    }
  }
  DeviceBuffer mass = orDie(DeviceBuffer::allocate(massPlaces * 4 + 4));

  // Every split kernel that reads the encoding, without and with H2O's
  // mass; -1: not run.
  double worst[3] = {-1, -1, -1}, worstMass = -1;
  bool ok = true;
  // The first kernel's splits, for the report.
  uint32_t splits = 0, splitTokens = 0;
  for (int run = 0; run < 6; ++run) {
    const int kind = run / 2;
    const bool withMass = run % 2 == 1;
    if (!splitKernelReads(kKernels[kind], keyLayout, valueLayout) ||
        (withMass && !addsMass))
      continue;
    DecodeAttentionShape runShape = attentionShape;
    runShape.addsMass = withMass;
    const DecodeAttentionPlan plan =
        orDie(planDecodeAttention(runShape, multiprocessors, kKernels[kind]));
    if (!splits) {
      splits = plan.splits;
      splitTokens = plan.splitTokens;
    }
    DeviceBuffer workspace = orDie(DeviceBuffer::allocate(plan.workspaceBytes));
    args.workspace = workspace.get();
    args.mass = withMass ? mass.as<float>() : nullptr;
    // All-ones bytes are NaN floats: anything left unwritten shows.
    CUDA_OK(cudaMemset(out.get(), 0xff, out.size()));
    CUDA_OK(cudaMemset(workspace.get(), 0xff, workspace.size()));
    if (withMass) {
      const std::vector<float> base(massPlaces, kMassBase);
      orDie(mass.upload(base.data(), massPlaces * 4));
    }
    orDie(decodeAttention(args, plan, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> got(q.size());
    CUDA_OK(cudaMemcpy(got.data(), out.get(), got.size() * 4,
                       cudaMemcpyDeviceToHost));
    if (withMass) {
      // Per sequence and KV head, the L1 error over its entries against
      // their weights' sum (the group's size, or 0); untouched places
      // exactly as they were.
      std::vector<float> added(massPlaces);
      CUDA_OK(cudaMemcpy(added.data(), mass.get(), massPlaces * 4,
                         cudaMemcpyDeviceToHost));
      std::vector<double> diff(size_t(batch) * c.kvHeads, 0.0),
          total(diff.size(), 0.0);
      worstMass = std::max(worstMass, 0.0);
      for (uint32_t b = 0; b < batch; ++b) {
        const std::vector<uint32_t> &pages = cache.pages(0, sequences[b]);
        for (uint32_t h = 0; h < c.kvHeads; ++h)
          for (uint32_t i = 0; i < c.lengths[b]; ++i) {
            const size_t place =
                (size_t(pages[i / c.pageSize]) * c.kvHeads + h) * c.pageSize +
                i % c.pageSize;
            const double error = std::isfinite(added[place])
                                     ? std::abs(double(added[place]) -
                                                kMassBase - expectedMass[place])
                                     : INFINITY;
            diff[b * c.kvHeads + h] += error;
            total[b * c.kvHeads + h] += expectedMass[place];
          }
      }
      for (size_t i = 0; i < diff.size(); ++i) {
        const double error = total[i] > 0 ? diff[i] / total[i] : diff[i];
        worstMass = std::max(worstMass, error);
        ok &= error <= bound;
      }
      for (size_t place = 0; place < massPlaces; ++place)
        if (!massRead[place] && added[place] != kMassBase) {
          worstMass = INFINITY;
          ok = false;
        }
    }
    worst[kind] = std::max(worst[kind], 0.0);
    for (uint32_t row = 0; row < batch * c.qHeads; ++row) {
      double diff = 0, norm = 0;
      bool finite = true;
      for (uint32_t d = 0; d < c.headDim; ++d) {
        double g = got[row * c.headDim + d], e = expected[row * c.headDim + d];
        finite &= std::isfinite(g);
        diff += (g - e) * (g - e);
        norm += e * e;
      }
      double error = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
      if (!finite)
        error = INFINITY;
      worst[kind] = std::max(worst[kind], error);
      ok &= norm > 0 ? error <= bound : diff == 0;
    }
  }
  std::string lengths;
  for (uint32_t length : c.lengths)
    lengths += (lengths.empty() ? "" : ",") + std::to_string(length);
  std::string errors;
  for (int kind = 0; kind < 3; ++kind) {
    char one[32];
    std::snprintf(one, sizeof(one), " %s %.2e", kKernelNames[kind],
                  worst[kind]);
    if (worst[kind] >= 0)
      errors += one;
  }
  if (worstMass >= 0) {
    char one[32];
    std::snprintf(one, sizeof(one), " mass %.2e", worstMass);
    errors += one;
  }
  std::printf(
      "%-4s %-8s B=%u len=[%s] Hq=%u Hkv=%u d=%u P=%u%s%s%s "
      "splits=%u x %u tok: max rel err%s\n",
      ok ? "ok" : "FAIL", name(enc), batch, lengths.c_str(), c.qHeads,
      c.kvHeads, c.headDim, c.pageSize, c.positionStride != 1 ? " gaps" : "",
      c.visibleFraction < 1 ? " causal-cut" : "",
      c.slidingWindow ? " window" : "", splits, splitTokens, errors.c_str());
  return ok;
}

} // namespace

int runChecks(uint32_t multiprocessors) {
  const std::vector<Case> cases = {
      // Group 1, one token; group 3 with lengths below, at and past a page.
      {{1}, 4, 4, 64, 16},
      {{5, 37, 200}, 6, 2, 64, 16},
      {{0, 50}, 6, 2, 64, 16},
      // Group 4, lengths not multiples of the page or the split.
      {{33, 100, 513, 1000}, 8, 2, 128, 16},
      {{300, 777}, 6, 2, 128, 8},
      {{300, 777}, 6, 2, 128, 4},
      {{300, 777}, 6, 2, 128, 32},
      {{300, 777}, 12, 4, 64, 96},
      // Group 2 and 8.
      {{1500, 129}, 4, 2, 128, 16},
      {{1500}, 8, 1, 128, 16},
      // Masking: a causal cut, then gaps in positions with a window.
      {{500, 1200}, 8, 2, 128, 16, 1, 0.6},
      {{700, 333}, 8, 2, 64, 16, 3, 1.0, 500},
      // The Llama-3-8B attention shape, many splits.
      {{3000, 4097}, 32, 8, 128, 16},
      // Positions past 100K (RoPE's angles of many turns).
      {{257, 700}, 8, 2, 128, 16, 151},
      // Planned for one or two SMs: rows of up to 9 splits in many waves,
      // with a causal cut and a window.
      {{9000, 2500, 700}, 32, 8, 128, 16, 1, 1.0, 0, 2},
      {{6000, 3100}, 8, 2, 128, 16, 1, 0.6, 0, 1},
      {{7000, 4000}, 12, 4, 64, 16, 3, 1.0, 2500, 1},
  };
  int failures = 0;
  uint32_t seed = 1;
  for (Enc enc : {Enc::Bf16, Enc::Fp8Dynamic, Enc::Fp8PerHead, Enc::Polar2,
                  Enc::Polar3, Enc::Polar4, Enc::Nvfp4, Enc::Kivi4, Enc::Kivi2,
                  Enc::LowRank, Enc::LowRankOdd, Enc::LowRankEven,
                  Enc::LowRankOddSmall, Enc::LowRankKeys, Enc::LowRankKeysOdd,
                  Enc::LowRankKeysSmall, Enc::LowRankKeysInterleaved,
                  Enc::LowRankKeysValues, Enc::LowRankKeysValuesOdd})
    for (const Case &c : cases)
      failures += runCase(c, enc, multiprocessors, seed++) ? 0 : 1;
  std::printf("checks: %d failed, bound %.0e (polar %.0e, kivi %.0e, low-rank "
              "keys %.0e) relative per query row\n",
              failures, kBound, kPolarBound, kKiviBound, kLowRankKeyBound);
  return failures;
}

} // namespace kvrt::cuda::test
