//===- AttentionBench.cpp - Timing decode attention on the GPU ------------===//
//
// The Llama-3-8B attention shape (32 query heads, 8 KV heads, d = 128, pages
// of 16 tokens or --page-size) for B in {1, 8, 32} and L in {8K, 32K, 128K}, in
// bf16, fp8 (dynamic and per_head scales), polar (2, 3 and 4 bits), nvfp4, KIVI
// (4 and 2 bits, groups of 32 tokens in pages of 32) and bf16 keys with
// low-rank values, bf16 latents of rank 64 (kv-lowrank's ratio 0.5) and 63
// (odd: read a coordinate at a time); the bytes count the basis, which the
// merge reads to map each row back; and low-rank keys beside bf16 values,
// bf16 latents of rank 64 and 32 (ratios 0.5 and 0.25) rebuilt and rotated
// in the kernel (the bytes count their axes, which each block reads), and
// beside values of rank 64 (lrkv64). Pools
// hold random valid entries; each sequence's pages are a random draw from a
// pool sized for B = 32, L = 128K. Each rep is timed alone with CUDA events
// after a 256 MB memset that evicts the L2 (a layer's cache is not in L2 when
// its step comes); the median of the reps is reported, for each split kernel
// that reads the encoding (group, mma: tensor cores; fma: CUDA cores; polar
// times include its two rotations), with the bytes the kernels must read (K and
// V areas, positions, page tables), the GB/s that gives, and the floor: those
// bytes over the bandwidth of a 1 GiB device-to-device cudaMemcpy measured in
// the same run (bytes read plus bytes written).
//
// B = 1, L = 8K is also checked against a float64 attention over the
// entries decoded by the CPU codecs from the device's own bytes (polar: in
// its rotated domain, the query rotated and the output rotated back by the
// codecs).
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/LatentKeyOperands.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/cache/Codec.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace kvrt::cuda::test {
namespace {

constexpr uint32_t kQHeads = 32, kKvHeads = 8, kHeadDim = 128;
constexpr uint32_t kMaxBatch = 32, kMaxLength = 131072;
constexpr size_t kFlushBytes = 256u << 20;

struct Encoding {
  const char *name;
  schema::Encoding encoding;
  /// The values' encoding where it is not `encoding` (low-rank values).
  std::optional<schema::Encoding> values;
};

std::vector<Encoding> encodings() {
  std::vector<Encoding> list(14);
  list[0].name = "bf16";
  list[0].encoding.set_kind(schema::ENCODING_BF16);
  list[1].name = "fp8-dyn";
  list[1].encoding.set_kind(schema::ENCODING_FP8);
  list[1].encoding.set_scale_mode(schema::SCALE_MODE_DYNAMIC);
  list[2].name = "fp8-head";
  list[2].encoding.set_kind(schema::ENCODING_FP8);
  list[2].encoding.set_scale_mode(schema::SCALE_MODE_PER_HEAD);
  const char *polar[] = {"polar4", "polar3", "polar2"};
  for (int i = 0; i < 3; ++i) {
    Encoding &e = list[3 + i];
    e.name = polar[i];
    e.encoding.set_kind(schema::ENCODING_POLAR);
    e.encoding.set_bits(4 - i);
    e.encoding.set_rotation(schema::ROTATION_HADAMARD);
    e.encoding.set_seed(20261201);
  }
  list[6].name = "nvfp4";
  list[6].encoding.set_kind(schema::ENCODING_NVFP4);
  const char *kivi[] = {"kivi4", "kivi2"};
  for (int i = 0; i < 2; ++i) {
    Encoding &e = list[7 + i];
    e.name = kivi[i];
    e.encoding.set_kind(schema::ENCODING_INT);
    e.encoding.set_bits(4 - 2 * i);
    e.encoding.set_group(32);
  }
  // Rank 64 reads its latents in 4-byte pairs; 63, odd, one coordinate at
  // a time.
  const uint32_t ranks[] = {kHeadDim / 2, kHeadDim / 2 - 1};
  const char *lowrank[] = {"lowrank64", "lowrank63"};
  for (int i = 0; i < 2; ++i) {
    Encoding &e = list[9 + i];
    e.name = lowrank[i];
    e.encoding.set_kind(schema::ENCODING_BF16);
    e.values.emplace();
    e.values->set_kind(schema::ENCODING_LOWRANK);
    e.values->set_rank(ranks[i]);
    e.values->mutable_latent()->set_kind(schema::ENCODING_BF16);
  }
  const char *lowrankKeys[] = {"lrkeys64", "lrkeys32"};
  for (int i = 0; i < 2; ++i) {
    Encoding &e = list[11 + i];
    e.name = lowrankKeys[i];
    e.encoding.set_kind(schema::ENCODING_LOWRANK);
    e.encoding.set_rank(kHeadDim / 2 >> i);
    e.encoding.mutable_latent()->set_kind(schema::ENCODING_BF16);
    e.values.emplace();
    e.values->set_kind(schema::ENCODING_BF16);
  }
  // Keys and values both latents of rank 64: half of bf16's bytes.
  Encoding &both = list[13];
  both.name = "lrkv64";
  both.encoding = list[11].encoding;
  both.values = list[9].values;
  return list;
}

constexpr SplitKernel kKernels[] = {SplitKernel::GroupMma, SplitKernel::Mma,
                                    SplitKernel::Fma};
const char *const kKernelNames[] = {"group", "mma", "fma"};

/// A low-rank basis for the shape: axes of N(0, 1 / d), then for keys
/// weights of 1 + |N(0, 1 / 4)|, then means of N(0, 1 / 4).
std::vector<float> randomBasis(uint32_t rank, bool keys) {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  const uint32_t columns = keys ? rank + 2 : rank + 1;
  std::vector<float> basis(size_t(kKvHeads) * kHeadDim * columns);
  for (size_t i = 0; i < basis.size(); ++i)
    basis[i] = i % columns < rank ? normal(rng) / std::sqrt(float(kHeadDim))
               : i % columns == columns - 1
                   ? normal(rng) * 0.5f
                   : 1.0f + std::fabs(normal(rng)) * 0.5f;
  return basis;
}

/// Llama-3's RoPE (base 500000) for the shape.
cpu::RopeFrequencies llamaRope() {
  cpu::RopeFrequencies rope;
  for (uint32_t i = 0; i < kHeadDim / 2; ++i)
    rope.inverse.push_back(std::pow(500000.0, -2.0 * i / kHeadDim));
  return rope;
}

/// One side's codec (per_head scales of 1: only the layout matters here,
/// and decode() reads the scale stored in the area; nvfp4: one tensor
/// scale, which is not stored, so not 1; low-rank: `basis`, and for keys
/// `rope`).
std::unique_ptr<Codec> codecFor(const schema::Encoding &encoding,
                                CacheSide side, const std::vector<float> &basis,
                                const cpu::RopeFrequencies *rope = nullptr) {
  CodecContext context;
  context.side = side;
  context.kvHeads = kKvHeads;
  context.headDim = kHeadDim;
  context.scales.assign(kKvHeads, 1.0f);
  if (encoding.kind() == schema::ENCODING_NVFP4)
    context.scales = {0.0123f};
  context.basis = basis;
  context.rope = rope;
  return orDie(makeCodec(encoding, context));
}

struct Pool {
  DeviceSideLayout key, value;
  DeviceBuffer keys, values;
  /// Low-rank values' basis (empty otherwise).
  DeviceBuffer basis;
  /// Low-rank keys' operands (LatentKeyOperands.h; empty otherwise).
  DeviceBuffer keyAxes, keyFrequencies;
};

/// float64 attention of sequence 0 over its entries as the CPU codecs
/// decode the device's bytes; returns the largest relative error per row.
double referenceError(const Pool &pool, const Codec &keyCodec,
                      const Codec &valueCodec,
                      const std::vector<int32_t> &table, uint32_t pageSize,
                      uint32_t length, const std::vector<float> &q,
                      const std::vector<float> &out, float scale) {
  const uint32_t pages = length / pageSize;
  const uint64_t keyPage = pool.key.areaStride * kKvHeads;
  const uint64_t valuePage = pool.value.areaStride * kKvHeads;
  std::vector<uint8_t> keys(pages * keyPage), values(pages * valuePage);
  for (uint32_t i = 0; i < pages; ++i) {
    CUDA_OK(cudaMemcpy(&keys[i * keyPage],
                       pool.keys.as<uint8_t>() + table[i] * keyPage, keyPage,
                       cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(&values[i * valuePage],
                       pool.values.as<uint8_t>() + table[i] * valuePage,
                       valuePage, cudaMemcpyDeviceToHost));
  }
  std::vector<float> k(size_t(length) * kKvHeads * kHeadDim),
      v(size_t(length) * kKvHeads * kHeadDim);
  for (uint32_t t = 0; t < length; ++t)
    for (uint32_t h = 0; h < kKvHeads; ++h) {
      size_t at = (size_t(t) * kKvHeads + h) * kHeadDim;
      // Low-rank keys rebuilt at their positions (token t is at t).
      const uint8_t *keyArea =
          &keys[t / pageSize * keyPage + h * pool.key.areaStride];
      if (keyCodec.storedBeforeRope())
        keyCodec.decodeAt(keyArea, t % pageSize, h, int32_t(t), &k[at]);
      else
        keyCodec.decode(keyArea, t % pageSize, &k[at]);
      valueCodec.decode(
          &values[t / pageSize * valuePage + h * pool.value.areaStride],
          t % pageSize, &v[at]);
    }
  double worst = 0;
  std::vector<double> scores(length), o(kHeadDim);
  std::vector<float> prepared(keyCodec.preparedQuerySize()), row(kHeadDim);
  for (uint32_t hq = 0; hq < kQHeads; ++hq) {
    uint32_t h = hq / (kQHeads / kKvHeads);
    keyCodec.prepareQuery(&q[hq * kHeadDim], h, prepared.data());
    double max = -INFINITY;
    for (uint32_t t = 0; t < length; ++t) {
      double s = 0;
      for (uint32_t d = 0; d < kHeadDim; ++d)
        s += double(prepared[d]) * k[(size_t(t) * kKvHeads + h) * kHeadDim + d];
      scores[t] = s * scale;
      max = std::max(max, scores[t]);
    }
    double sum = 0;
    std::fill(o.begin(), o.end(), 0.0);
    for (uint32_t t = 0; t < length; ++t) {
      double w = std::exp(scores[t] - max);
      sum += w;
      for (uint32_t d = 0; d < kHeadDim; ++d)
        o[d] += w * v[(size_t(t) * kKvHeads + h) * kHeadDim + d];
    }
    // Out of the value codec's domain (rotated back, for polar), in float.
    for (uint32_t d = 0; d < kHeadDim; ++d)
      row[d] = float(o[d] / sum);
    if (valueCodec.rotates())
      valueCodec.finishOutput(row.data(), h);
    double diff = 0, norm = 0;
    for (uint32_t d = 0; d < kHeadDim; ++d) {
      double e = row[d], g = out[hq * kHeadDim + d];
      diff += std::isfinite(g) ? (g - e) * (g - e) : INFINITY;
      norm += e * e;
    }
    worst = std::max(worst, std::sqrt(diff / norm));
  }
  return worst;
}

} // namespace

void runBench(uint32_t multiprocessors, int reps, const std::string &only,
              uint32_t basePageSize) {
  const double bandwidth = copyBandwidth();
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", bandwidth);
  DeviceBuffer flush = orDie(DeviceBuffer::allocate(kFlushBytes));
  DeviceBuffer positions =
      orDie(DeviceBuffer::allocate(uint64_t(kMaxBatch) * kMaxLength * 4));
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  std::mt19937 rng(7);
  std::vector<std::string> table;
  char line[256];
  const float scale = 1.0f / std::sqrt(float(kHeadDim));

  for (const Encoding &enc : encodings()) {
    if (!only.empty() && only != enc.name)
      continue;
    const schema::Encoding &values = enc.values ? *enc.values : enc.encoding;
    const std::vector<float> basis = values.kind() == schema::ENCODING_LOWRANK
                                         ? randomBasis(values.rank(), false)
                                         : std::vector<float>();
    const bool latentKeys = enc.encoding.kind() == schema::ENCODING_LOWRANK;
    const cpu::RopeFrequencies rope = llamaRope();
    const std::vector<float> keyBasis =
        latentKeys ? randomBasis(enc.encoding.rank(), true)
                   : std::vector<float>();
    std::unique_ptr<Codec> keyCodec =
        codecFor(enc.encoding, CacheSide::Key, keyBasis, &rope);
    std::unique_ptr<Codec> valueCodec =
        codecFor(values, CacheSide::Value, basis);
    Pool pool;
    if (!basis.empty()) {
      pool.basis = orDie(DeviceBuffer::allocate(basis.size() * 4));
      orDie(pool.basis.upload(basis.data(), basis.size() * 4));
    }
    // KIVI's pages hold whole groups of 32 tokens.
    const uint32_t pageSize = enc.encoding.kind() == schema::ENCODING_INT
                                  ? std::lcm(basePageSize, 32u)
                                  : basePageSize;
    const uint64_t maxPages = uint64_t(kMaxBatch) * kMaxLength / pageSize;
    pool.key = orDie(deviceSideLayout(enc.encoding, *keyCodec, pageSize));
    pool.value = orDie(deviceSideLayout(values, *valueCodec, pageSize));
    uint64_t operandBytes = 0;
    if (latentKeys) {
      const LatentKeyOperands operands = latentKeyOperands(
          keyBasis, kKvHeads, kHeadDim, enc.encoding.rank(), rope);
      pool.keyAxes = orDie(DeviceBuffer::allocate(operands.axes.size() * 4));
      orDie(
          pool.keyAxes.upload(operands.axes.data(), operands.axes.size() * 4));
      pool.keyFrequencies =
          orDie(DeviceBuffer::allocate(operands.frequencies.size() * 4));
      orDie(pool.keyFrequencies.upload(operands.frequencies.data(),
                                       operands.frequencies.size() * 4));
      operandBytes = (operands.axes.size() + operands.frequencies.size()) * 4;
    }
    pool.keys = orDie(
        DeviceBuffer::allocate(maxPages * kKvHeads * pool.key.areaStride));
    pool.values = orDie(
        DeviceBuffer::allocate(maxPages * kKvHeads * pool.value.areaStride));
    fillSide(pool.keys.get(), pool.key, maxPages, kKvHeads, pageSize, 11);
    fillSide(pool.values.get(), pool.value, maxPages, kKvHeads, pageSize, 12);

    for (uint32_t batch : {1u, 8u, 32u})
      for (uint32_t length : {8192u, 32768u, 131072u}) {
        const uint32_t perSequence = length / pageSize;
        BenchRows rows = benchRows(rng, positions, maxPages, pageSize, batch,
                                   length, kQHeads, kHeadDim);

        DecodeAttentionShape shape{batch,    kQHeads, kKvHeads, kHeadDim,
                                   pageSize, length,  pool.key, pool.value};
        DecodeAttentionArgs args;
        args.cache.key = pool.key;
        args.cache.value = pool.value;
        args.cache.keys = pool.keys.as<uint8_t>();
        args.cache.values = pool.values.as<uint8_t>();
        args.cache.positions = positions.as<int32_t>();
        args.cache.pageTables = rows.tablesDevice.as<int32_t>();
        args.cache.lengths = rows.lengths.as<int32_t>();
        args.cache.pageTableStride = perSequence;
        args.cache.pageSize = pageSize;
        args.cache.kvHeads = kKvHeads;
        args.cache.headDim = kHeadDim;
        args.cache.valueBasis = pool.basis.as<float>();
        args.cache.keyAxes = pool.keyAxes.as<uint32_t>();
        args.cache.keyFrequencies = pool.keyFrequencies.as<uint32_t>();
        args.q = rows.qDevice.as<float>();
        args.queryPositions = rows.queryPositions.as<int32_t>();
        args.out = rows.out.as<float>();
        args.batch = batch;
        args.qHeads = kQHeads;
        args.scale = scale;

        const double bytes =
            double(rows.tables.size()) *
                (kKvHeads * double(pool.key.headBytes + pool.value.headBytes) +
                 pageSize * 4.0 + 4.0) +
            basis.size() * 4.0 + double(operandBytes);
        const double floor = bytes / (bandwidth * 1e9);
        for (int kernel = 0; kernel < 3; ++kernel) {
          if (!splitKernelReads(kKernels[kernel], pool.key, pool.value))
            continue;
          const DecodeAttentionPlan plan = orDie(
              planDecodeAttention(shape, multiprocessors, kKernels[kernel]));
          DeviceBuffer workspace =
              orDie(DeviceBuffer::allocate(plan.workspaceBytes));
          args.workspace = workspace.get();
          CUDA_OK(cudaMemset(rows.out.get(), 0xff, rows.out.size()));
          for (int i = 0; i < 3; ++i)
            orDie(decodeAttention(args, plan, nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<float> times;
          for (int rep = 0; rep < reps; ++rep) {
            CUDA_OK(cudaMemsetAsync(flush.get(), rep & 0xff, kFlushBytes));
            CUDA_OK(cudaEventRecord(start));
            orDie(decodeAttention(args, plan, nullptr));
            CUDA_OK(cudaEventRecord(stop));
            CUDA_OK(cudaEventSynchronize(stop));
            float ms;
            CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
            times.push_back(ms);
          }
          CUDA_OK(cudaGetLastError());
          const double seconds = median(times) * 1e-3;
          std::string check;
          if (batch == 1 && length == 8192) {
            std::vector<float> got(rows.q.size());
            CUDA_OK(cudaMemcpy(got.data(), rows.out.get(), got.size() * 4,
                               cudaMemcpyDeviceToHost));
            double error =
                referenceError(pool, *keyCodec, *valueCodec, rows.tables,
                               pageSize, length, rows.q, got, scale);
            std::snprintf(line, sizeof(line), "  (vs float64: %.1e)", error);
            check = line;
          }
          std::snprintf(line, sizeof(line),
                        "%-6s %-8s %3u %6u %9.1f %9.1f %7.0f %9.1f %6.0f%%  "
                        "splits %u x %u, %u stages%s",
                        kKernelNames[kernel], enc.name, batch, length,
                        seconds * 1e6, bytes / 1e6, bytes / seconds / 1e9,
                        floor * 1e6, 100.0 * floor / seconds, plan.splits,
                        plan.splitTokens, plan.stages, check.c_str());
          std::printf("%s\n", line);
          std::fflush(stdout);
          table.push_back(line);
        }
      }
  }
  CUDA_OK(cudaEventDestroy(start));
  CUDA_OK(cudaEventDestroy(stop));
  std::printf("\nkernel encoding   B      L   time_us  bytes_MB    GB/s  "
              "floor_us  floor/time\n");
  for (const std::string &row : table)
    std::printf("%s\n", row.c_str());
  std::printf("floor = bytes / %.0f GB/s (1 GiB device-to-device copy, read "
              "+ write)\n",
              bandwidth);
}

} // namespace kvrt::cuda::test
