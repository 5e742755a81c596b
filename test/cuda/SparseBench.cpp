//===- SparseBench.cpp - Sparse against dense decode attention ------------===//
//
// The Llama-3-8B attention shape (32 query heads, 8 KV heads, d = 128,
// pages of 64 tokens), bf16, fp8 e4m3 (a scale per slot), nvfp4 and 4-,
// 3- and 2-bit polar caches, for B in {1, 8} and L in {32K, 64K, 128K}:
// dense decode attention (planDecodeAttention()'s default split kernel)
// and the sparse step (SparseSelect.h: level 1, level 2, attention over
// the selection with the newest blocks' summaries, and the merge) on the same
// pool, with the policies twolevel (block 64, 128 blocks, 2048 entries) and
// quest (block 16, 128 blocks: 2048 entries, no level-2 scoring). The
// pool holds random entries (fp8: finite codes, scales in [0.002, 0.012);
// nvfp4: codes and block scales of finite fp8 bytes; polar: any codes,
// scales in [0.5, 2.5)); each row's pages are a random draw from a pool
// sized for B = 8, L = 128K, and every page's summaries are built before
// a point is timed. Each rep is timed alone with CUDA events after a 256
// MB memset that evicts the L2; medians of the reps are reported, for the
// whole step (events at its ends only) and for each part (other steps,
// events between the parts). Bytes are what each must read of the cache
// (dense: every K and V entry, positions, page tables; sparse: every
// selectable block's summary, the newest block's keys for its update, the
// kept blocks' keys when level 2 scores them, then the selected entries'
// values and positions, and their keys unless level 2 scored them (then
// their scores and where they are)), and the floor is those bytes over
// the bandwidth of a 1 GiB device-to-device copy measured in the same run.
//
//===----------------------------------------------------------------------===//
#include "SparseHarness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/backends/cuda/SparseKernels.h"
#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/sparse/BoundCodes.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace kvrt::cuda::test {
namespace {

constexpr uint32_t kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 64;
constexpr uint32_t kMaxBatch = 8, kMaxLength = 131072;
constexpr uint64_t kMaxPages = uint64_t(kMaxBatch) * kMaxLength / kPageSize;
constexpr size_t kFlushBytes = 256u << 20;

struct Policy {
  const char *name;
  SparsePolicy policy;
};
const Policy kPolicies[] = {{"twolevel", {64, 128, 2048}},
                            {"quest", {16, 128, 2048}}};

/// Part i of a sparse step runs between events i and i + 1.
constexpr int kParts = 3;
const char *const kPartNames[kParts] = {"level1", "level2", "attend"};

/// A device pool of random entries of `encoding` for kMaxPages pages.
struct BenchPool {
  const char *name;
  DeviceSideLayout key, value;
  DeviceBuffer keys, values;
};

BenchPool benchPool(const char *name, const schema::Encoding &encoding) {
  CodecContext context;
  context.kvHeads = kKvHeads;
  context.headDim = kHeadDim;
  std::unique_ptr<Codec> keyCodec = orDie(makeCodec(encoding, context));
  context.side = CacheSide::Value;
  std::unique_ptr<Codec> valueCodec = orDie(makeCodec(encoding, context));
  BenchPool pool{name, orDie(deviceSideLayout(encoding, *keyCodec, kPageSize)),
                 orDie(deviceSideLayout(encoding, *valueCodec, kPageSize))};
  for (auto [side, buffer] : {std::pair{&pool.key, &pool.keys},
                              std::pair{&pool.value, &pool.values}}) {
    *buffer =
        orDie(DeviceBuffer::allocate(kMaxPages * kKvHeads * side->areaStride));
    fillSide(buffer->get(), *side, kMaxPages, kKvHeads, kPageSize,
             side == &pool.key ? 11 : 12);
  }
  return pool;
}

} // namespace

void runSparseBench(uint32_t multiprocessors, int reps,
                    const SparseBenchOnly &only) {
  auto chosen = [](const std::vector<std::string> &list,
                   const std::string &item) {
    return list.empty() ||
           std::find(list.begin(), list.end(), item) != list.end();
  };
  const double bandwidth = copyBandwidth();
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", bandwidth);
  DeviceBuffer positions =
      orDie(DeviceBuffer::allocate(kMaxPages * kPageSize * 4));
  // Summaries for the smallest block serve every policy's layout.
  uint32_t smallest = kPageSize;
  for (const Policy &policy : kPolicies)
    smallest = std::min(smallest, policy.policy.block);
  const uint64_t summaryBlocks = kMaxPages * kKvHeads * (kPageSize / smallest);
  DeviceBuffer summaryCodes =
      orDie(DeviceBuffer::allocate(summaryBlocks * 2 * kHeadDim));
  DeviceBuffer summaryExponents = orDie(DeviceBuffer::allocate(summaryBlocks));
  const BlockSummaries summaries{summaryCodes.as<uint8_t>(),
                                 summaryExponents.as<int8_t>()};
  DeviceBuffer flush = orDie(DeviceBuffer::allocate(kFlushBytes));
  cudaEvent_t events[kParts + 1];
  for (cudaEvent_t &event : events)
    CUDA_OK(cudaEventCreate(&event));
  std::mt19937 rng(7);
  const float scale = 1.0f / std::sqrt(float(kHeadDim));
  std::vector<std::string> table;
  char line[512];

  schema::Encoding bf16, fp8, nvfp4, polar4, polar3, polar2;
  bf16.set_kind(schema::ENCODING_BF16);
  fp8.set_kind(schema::ENCODING_FP8);
  fp8.set_fp8_format(schema::FP8_FORMAT_E4M3);
  fp8.set_scale_mode(schema::SCALE_MODE_DYNAMIC);
  nvfp4.set_kind(schema::ENCODING_NVFP4);
  for (auto [encoding, bits] :
       {std::pair{&polar4, 4}, {&polar3, 3}, {&polar2, 2}}) {
    encoding->set_kind(schema::ENCODING_POLAR);
    encoding->set_bits(bits);
  }
  // Every encoding the sparse kernels read.
  for (auto [name, encoding, entries] :
       {std::tuple{"bf16", &bf16, SparseEntries::Bf16},
        {"fp8", &fp8, SparseEntries::Fp8E4M3},
        {"nvfp4", &nvfp4, SparseEntries::Nvfp4},
        {"polar4", &polar4, SparseEntries::Polar4},
        {"polar3", &polar3, SparseEntries::Polar3},
        {"polar2", &polar2, SparseEntries::Polar2}}) {
    if (!chosen(only.caches, name))
      continue;
    // The plans fill one wave of these.
    const uint32_t group = kQHeads / kKvHeads;
    std::printf("%s: an SM holds %u level-1 blocks, %u level-2 blocks and %u "
                "splits\n",
                name, boundBlocksPerMultiprocessor(kHeadDim, group),
                scoreBlocksPerMultiprocessor(entries, kHeadDim, group),
                sparseSplitBlocksPerMultiprocessor(entries, kHeadDim, group));
    // One pool at a time: the bf16 one takes 4.3 GB.
    const BenchPool pool = benchPool(name, *encoding);
    const DeviceSideLayout &keyLayout = pool.key, &valueLayout = pool.value;
    for (uint32_t batch : {1u, 8u})
      for (uint32_t length : {32768u, 65536u, 131072u}) {
        if (!chosen(only.points,
                    std::to_string(batch) + "x" + std::to_string(length)))
          continue;
        const uint32_t perSequence = length / kPageSize;
        BenchRows rows = benchRows(rng, positions, kMaxPages, kPageSize, batch,
                                   length, kQHeads, kHeadDim);
        std::vector<int32_t> full(rows.tables.size(), int32_t(kPageSize));
        DeviceBuffer slots = orDie(DeviceBuffer::allocate(full.size() * 4));
        orDie(slots.upload(full.data(), full.size() * 4));

        PagedKvView view;
        view.key = keyLayout;
        view.value = valueLayout;
        view.keys = pool.keys.as<uint8_t>();
        view.values = pool.values.as<uint8_t>();
        view.positions = positions.as<int32_t>();
        view.pageTables = rows.tablesDevice.as<int32_t>();
        view.lengths = rows.lengths.as<int32_t>();
        view.pageTableStride = perSequence;
        view.pageSize = kPageSize;
        view.kvHeads = kKvHeads;
        view.headDim = kHeadDim;

        // Dense.
        const DecodeAttentionShape denseShape{batch,     kQHeads,    kKvHeads,
                                              kHeadDim,  kPageSize,  length,
                                              keyLayout, valueLayout};
        const DecodeAttentionPlan densePlan =
            orDie(planDecodeAttention(denseShape, multiprocessors));
        DeviceBuffer denseWorkspace =
            orDie(DeviceBuffer::allocate(densePlan.workspaceBytes));
        DecodeAttentionArgs dense;
        dense.cache = view;
        dense.q = rows.qDevice.as<float>();
        dense.queryPositions = rows.queryPositions.as<int32_t>();
        dense.out = rows.out.as<float>();
        dense.batch = batch;
        dense.qHeads = kQHeads;
        dense.scale = scale;
        dense.workspace = denseWorkspace.get();
        for (int i = 0; i < 3; ++i)
          orDie(decodeAttention(dense, densePlan, nullptr));
        std::vector<float> denseTimes;
        for (int rep = 0; rep < reps; ++rep) {
          CUDA_OK(cudaMemsetAsync(flush.get(), rep & 0xff, kFlushBytes));
          CUDA_OK(cudaEventRecord(events[0]));
          orDie(decodeAttention(dense, densePlan, nullptr));
          CUDA_OK(cudaEventRecord(events[1]));
          CUDA_OK(cudaEventSynchronize(events[1]));
          float ms;
          CUDA_OK(cudaEventElapsedTime(&ms, events[0], events[1]));
          denseTimes.push_back(ms);
        }
        CUDA_OK(cudaGetLastError());
        const double denseSeconds = median(denseTimes) * 1e-3;
        const double denseBytes =
            double(rows.tables.size()) *
            (kKvHeads * double(keyLayout.headBytes + valueLayout.headBytes) +
             kPageSize * 4.0 + 4.0);

        for (const Policy &policy : kPolicies) {
          const SparsePolicy &sp = policy.policy;
          orDie(buildBlockSummaries(
              view, summaries, sp.block, rows.tablesDevice.as<int32_t>(),
              slots.as<int32_t>(), uint32_t(rows.tables.size()), nullptr));
          const SparseDecodeShape shape{batch,     kQHeads,     kKvHeads,
                                        kHeadDim,  kPageSize,   length,
                                        keyLayout, valueLayout, sp};
          const SparseDecodePlan plan =
              orDie(planSparseDecode(shape, multiprocessors));
          DeviceBuffer workspace =
              orDie(DeviceBuffer::allocate(plan.workspaceBytes));
          SparseDecodeArgs args;
          args.cache = view;
          args.summaries = summaries;
          args.q = rows.qDevice.as<float>();
          args.queryPositions = rows.queryPositions.as<int32_t>();
          args.out = rows.out.as<float>();
          args.batch = batch;
          args.qHeads = kQHeads;
          args.scale = scale;
          args.workspace = workspace.get();
          // Marks between the parts keep a part's kernels from starting
          // before the previous part drains (DependentLaunch.cuh): the
          // total is timed in steps of its own, with marks at the ends.
          enum class Marks { None, Ends, Parts };
          auto step = [&](Marks marks) {
            auto mark = [&](int i) {
              if (marks == Marks::Parts ||
                  (marks == Marks::Ends && (i == 0 || i == kParts)))
                CUDA_OK(cudaEventRecord(events[i]));
            };
            mark(0);
            orDie(selectSparseBlocks(args, plan, nullptr));
            mark(1);
            orDie(selectSparseTokens(args, plan, nullptr));
            mark(2);
            orDie(sparseAttention(args, plan, nullptr));
            mark(3);
          };
          CUDA_OK(cudaMemset(rows.out.get(), 0xff, rows.out.size()));
          for (int i = 0; i < 3; ++i)
            step(Marks::None);
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<float> got(rows.q.size());
          CUDA_OK(cudaMemcpy(got.data(), rows.out.get(), got.size() * 4,
                             cudaMemcpyDeviceToHost));
          const bool finite = std::all_of(
              got.begin(), got.end(), [](float x) { return std::isfinite(x); });
          std::vector<float> totals, parts[kParts];
          for (int rep = 0; rep < reps; ++rep) {
            CUDA_OK(cudaMemsetAsync(flush.get(), rep & 0xff, kFlushBytes));
            step(Marks::Ends);
            CUDA_OK(cudaEventSynchronize(events[kParts]));
            float ms;
            CUDA_OK(cudaEventElapsedTime(&ms, events[0], events[kParts]));
            totals.push_back(ms);
            CUDA_OK(cudaMemsetAsync(flush.get(), rep & 0xff, kFlushBytes));
            step(Marks::Parts);
            CUDA_OK(cudaEventSynchronize(events[kParts]));
            for (int i = 0; i < kParts; ++i) {
              CUDA_OK(cudaEventElapsedTime(&ms, events[i], events[i + 1]));
              parts[i].push_back(ms);
            }
          }
          CUDA_OK(cudaGetLastError());
          const double seconds = median(totals) * 1e-3;

          const double rows = double(batch) * kKvHeads;
          const double selectable = length - 1;
          const double blocks = std::ceil(selectable / sp.block);
          const double candidates =
              std::min(selectable, double(sp.topBlocks) * sp.block);
          // A block's summary: 2D codes and an exponent, whatever the
          // entries.
          const double summaryBytes =
              double(sparse::summaryBytesPerPage(1, kHeadDim, 1, 1));
          const double entryBytes = keyLayout.entryBytes;
          const double listed = std::min(selectable, double(sp.topTokens));
          const bool scored = candidates > sp.topTokens;
          // The attention reads the listed entries' values and positions,
          // and their keys, or (scored) the newest token's key and the
          // others' scores and candidate indices.
          const double group = kQHeads / kKvHeads;
          const double attended =
              (listed + 1) * (entryBytes + 4) +
              (scored ? entryBytes + listed * (4 * group + 4)
                      : (listed + 1) * entryBytes);
          double bytes =
              rows * (blocks * summaryBytes + sp.block * entryBytes + attended);
          if (scored)
            bytes += rows * candidates * entryBytes;
          std::string split;
          for (int i = 0; i < kParts; ++i) {
            char one[32];
            std::snprintf(one, sizeof(one), " %7.1f", median(parts[i]) * 1e3);
            split += one;
          }
          std::snprintf(
              line, sizeof(line),
              "%-8s %-6s %2u %6u %9.1f %9.1f %7.1fx %s %9.1f %8.1f %8.1f %8.1f "
              "%6.0f%%  chunks %u/%u, splits %u x %u%s%s",
              policy.name, pool.name, batch, length, denseSeconds * 1e6,
              seconds * 1e6, denseSeconds / seconds, split.c_str(),
              denseBytes / 1e6, bytes / 1e6,
              denseBytes / (bandwidth * 1e9) * 1e6,
              bytes / (bandwidth * 1e9) * 1e6,
              100.0 * bytes / (bandwidth * 1e9) / seconds, plan.boundChunks,
              plan.scoreChunks, plan.splits, plan.splitEntries,
              plan.mergesInCluster ? " merged in clusters" : "",
              finite ? "" : "  NON-FINITE OUTPUT");
          std::printf("%s\n", line);
          std::fflush(stdout);
          table.push_back(line);
        }
      }
  }
  for (cudaEvent_t event : events)
    CUDA_OK(cudaEventDestroy(event));
  std::printf("\npolicy   cache   B      L  dense_us sparse_us speedup  ");
  for (const char *part : kPartNames)
    std::printf(" %7s", part);
  std::printf("  dense_MB sparse_MB dense_fl sparse_fl fl/time\n");
  for (const std::string &row : table)
    std::printf("%s\n", row.c_str());
  std::printf("times in us (medians of %d reps, L2 evicted before each); "
              "parts: level 1, level 2, attention (with the newest blocks' "
              "summaries) + merge; "
              "floors (fl) = bytes / %.0f GB/s (1 GiB device-to-device copy, "
              "read + write)\n",
              reps, bandwidth);
}

} // namespace kvrt::cuda::test
