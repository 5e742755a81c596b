//===- EvictBench.cpp - Eviction's kernels timed beside attention ---------===//
//
// One compaction of a bf16 cache at the Llama-3-8B attention shape (32
// query and 8 KV heads of 128, pages of 16), B = 8 sequences of 32768
// tokens kept to a quarter (4 sinks, the last 128): TriAttention's scores
// (the group's mean, and combine=zmax's query heads apart),
// SnapKV's (32 observed queries, pooling over 7), the shared selection and
// the compaction, each timed alone (median of `reps`), beside one decode
// step's attention over the same cache; what H2O adds to every decode
// step of an evicting layer (each row's attention summed into its
// entries), and to a prefill: the last 2048 rows of sequence 0's 32768,
// beside the prefill attention over the same rows. Random keys and
// centres: the time does not depend on the values.
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/DeviceEviction.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/backends/cuda/PrefillAttention.h"
#include "runtime/src/evict/Scores.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace kvrt::cuda::test {

void runEvictBench(uint32_t multiprocessors, int reps) {
  constexpr uint32_t batch = 8, length = 32768, qHeads = 32, kvHeads = 8;
  constexpr uint32_t d = 128, half = d / 2, pageSize = 16;
  constexpr uint32_t pagesPerSequence = length / pageSize;
  constexpr uint32_t pages = batch * pagesPerSequence;
  DeviceSideLayout side;
  side.kind = DeviceSideLayout::Kind::Bf16;
  side.entryBytes = 2 * d;
  side.headBytes = side.areaStride = uint64_t(pageSize) * side.entryBytes;
  const uint64_t poolBytes = uint64_t(pages) * kvHeads * side.areaStride;
  DeviceBuffer keys = orDie(DeviceBuffer::allocate(poolBytes));
  DeviceBuffer values = orDie(DeviceBuffer::allocate(poolBytes));
  fillBf16(keys.get(), poolBytes, 1);
  fillBf16(values.get(), poolBytes, 2);
  std::vector<int32_t> tables(pages), positions(uint64_t(pages) * pageSize);
  for (uint32_t p = 0; p < pages; ++p)
    tables[p] = int32_t(p);
  for (uint64_t i = 0; i < positions.size(); ++i)
    positions[i] = int32_t(i % length);
  DeviceBuffer tableBuffer = orDie(DeviceBuffer::allocate(pages * 4));
  orDie(tableBuffer.upload(tables.data(), pages * 4));
  DeviceBuffer positionBuffer =
      orDie(DeviceBuffer::allocate(positions.size() * 4));
  orDie(positionBuffer.upload(positions.data(), positions.size() * 4));
  DeviceBuffer headPositions =
      orDie(DeviceBuffer::allocate(positions.size() * 4 * kvHeads));

  // Centres and frequencies as DeviceEviction makes them.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> centres(2 * qHeads * half), magnitudes(qHeads * half);
  for (float &v : centres)
    v = normal(rng);
  for (uint32_t i = 0; i < qHeads * half; ++i)
    magnitudes[i] =
        std::hypot(centres[2 * i], centres[2 * i + 1]) + std::fabs(normal(rng));
  cpu::RopeFrequencies rope;
  for (uint32_t f = 0; f < half; ++f)
    rope.inverse.push_back(std::pow(500000.0, -2.0 * f / d));
  const std::vector<double> centreValues = triAttentionCentreValues(
      centres, magnitudes, rope, evict::geometricDistances(), qHeads, half);
  const size_t centreBytes = centreValues.size() * sizeof(double);
  DeviceBuffer centreBuffer = orDie(DeviceBuffer::allocate(centreBytes));
  orDie(centreBuffer.upload(centreValues.data(), centreBytes));

  std::vector<EvictSequence> sequences(batch);
  for (uint32_t b = 0; b < batch; ++b) {
    EvictSequence &s = sequences[b];
    s.tableRow = int32_t(b);
    s.length = int32_t(length);
    s.queryPosition = int32_t(length - 1);
    s.sinks = 4;
    s.recentStart = int32_t(length - 128);
    s.kept = int32_t(length / 4);
    s.observedRow = int32_t(b);
    s.free = s.kept - s.sinks - 128;
  }
  DeviceBuffer sequenceBuffer =
      orDie(DeviceBuffer::allocate(batch * sizeof(EvictSequence)));
  orDie(sequenceBuffer.upload(sequences.data(), batch * sizeof(EvictSequence)));

  EvictLaunch launch;
  launch.sequences = sequenceBuffer.as<EvictSequence>();
  launch.count = batch;
  launch.maxLength = length;
  launch.maxKept = length / 4;
  launch.cache.key = launch.cache.value = side;
  launch.cache.keys = keys.as<uint8_t>();
  launch.cache.values = values.as<uint8_t>();
  launch.cache.pageTables = tableBuffer.as<int32_t>();
  launch.cache.pageTableStride = pagesPerSequence;
  launch.cache.pageSize = pageSize;
  launch.cache.kvHeads = kvHeads;
  launch.cache.headDim = d;
  launch.positions = headPositions.as<int32_t>();
  launch.qHeads = qHeads;
  launch.centres =
      triAttentionCentresView(centreBuffer.as<double>(), qHeads, half, rope);
  // SnapKV's observed queries, every one seeing every entry.
  constexpr uint32_t observe = 32;
  DeviceBuffer observed =
      orDie(DeviceBuffer::allocate(size_t(batch) * observe * qHeads * d * 4));
  CUDA_OK(cudaMemset(observed.get(), 0, observed.size()));
  DeviceBuffer observedPositions =
      orDie(DeviceBuffer::allocate(size_t(batch) * observe * 4));
  CUDA_OK(cudaMemset(observedPositions.get(), 0x7f, observedPositions.size()));
  EvictLaunch snap = launch;
  snap.scoring = EvictScoring::SnapKv;
  snap.observed = observed.as<float>();
  snap.observedPositions = observedPositions.as<int32_t>();
  snap.observe = observe;
  snap.kernel = 7;
  snap.scale = 1.0f / std::sqrt(float(d));
  // TriAttention with combine=zmax: each query head scored apart.
  EvictLaunch zmax = launch;
  zmax.standardisedMax = true;
  DeviceBuffer workspace = orDie(DeviceBuffer::allocate(
      std::max({evictWorkspaceBytes(launch), evictWorkspaceBytes(snap),
                evictWorkspaceBytes(zmax)})));
  launch.workspace = snap.workspace = zmax.workspace = workspace.get();

  // One decode step's attention over the same cache.
  DecodeAttentionShape shape{batch,  qHeads, kvHeads, d, pageSize,
                             length, side,   side,    0};
  const DecodeAttentionPlan plan =
      orDie(planDecodeAttention(shape, multiprocessors));
  DeviceBuffer q = orDie(DeviceBuffer::allocate(batch * qHeads * d * 4));
  DeviceBuffer out = orDie(DeviceBuffer::allocate(batch * qHeads * d * 4));
  CUDA_OK(cudaMemset(q.get(), 0, batch * qHeads * d * 4));
  std::vector<int32_t> rowInts(3 * batch);
  for (uint32_t b = 0; b < batch; ++b) {
    rowInts[b] = int32_t(length);         // lengths
    rowInts[batch + b] = int32_t(length); // query positions
    rowInts[2 * batch + b] = int32_t(b);  // page table rows
  }
  DeviceBuffer ints = orDie(DeviceBuffer::allocate(rowInts.size() * 4));
  orDie(ints.upload(rowInts.data(), rowInts.size() * 4));
  DeviceBuffer attentionWorkspace =
      orDie(DeviceBuffer::allocate(plan.workspaceBytes));
  DecodeAttentionArgs args;
  args.cache = launch.cache;
  args.cache.positions = positionBuffer.as<int32_t>();
  args.cache.lengths = ints.as<int32_t>();
  args.q = q.as<float>();
  args.queryPositions = ints.as<int32_t>() + batch;
  args.out = out.as<float>();
  args.batch = batch;
  args.qHeads = qHeads;
  args.scale = 1.0f / std::sqrt(float(d));
  args.workspace = attentionWorkspace.get();

  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  auto time = [&](auto &&launchOnce) {
    std::vector<float> times;
    for (int r = 0; r < reps + 2; ++r) {
      CUDA_OK(cudaEventRecord(start));
      launchOnce();
      CUDA_OK(cudaEventRecord(stop));
      CUDA_OK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
      if (r >= 2)
        times.push_back(ms);
    }
    return median(times);
  };
  const float attention =
      time([&] { orDie(decodeAttention(args, plan, nullptr)); });
  const float zmaxScores = time([&] { orDie(scoreEntries(zmax, nullptr)); });
  const float scores = time([&] { orDie(scoreEntries(launch, nullptr)); });
  const float select = time([&] { orDie(selectEntries(launch, nullptr)); });
  const float compact = time([&] { orDie(compactEntries(launch, nullptr)); });
  // Last: its scores (of zero queries, all equal) replace TriAttention's in
  // the shared workspace, and would leave the compaction nothing to move.
  const float snapScores = time([&] { orDie(scoreEntries(snap, nullptr)); });
  // H2O's addition for a prefill's rows: the last `prefill` of sequence 0,
  // each seeing the entries up to its position.
  constexpr uint32_t prefill = 2048;
  EvictLaunch h2o = launch;
  h2o.scale = 1.0f / std::sqrt(float(d));
  DeviceBuffer mass = orDie(DeviceBuffer::allocate(headPositions.size()));
  CUDA_OK(cudaMemset(mass.get(), 0, mass.size()));
  h2o.mass = mass.as<float>();
  std::vector<int32_t> prefillInts(3 * prefill);
  for (uint32_t r = 0; r < prefill; ++r) {
    prefillInts[r] = int32_t(length);                         // lengths
    prefillInts[prefill + r] = int32_t(length - prefill + r); // positions
    prefillInts[2 * prefill + r] = 0;                         // table row
  }
  DeviceBuffer prefillIntBuffer =
      orDie(DeviceBuffer::allocate(prefillInts.size() * 4));
  orDie(prefillIntBuffer.upload(prefillInts.data(), prefillInts.size() * 4));
  const size_t prefillFloats = size_t(prefill) * qHeads * d;
  DeviceBuffer prefillQ = orDie(DeviceBuffer::allocate(prefillFloats * 4));
  DeviceBuffer prefillOut = orDie(DeviceBuffer::allocate(prefillFloats * 4));
  fillBf16(prefillQ.get(), prefillQ.size(), 4); // finite floats
  const H2oRows run = h2oRun(prefillQ.as<float>(), qHeads * d,
                             prefillIntBuffer.as<int32_t>(), prefill, length);
  DeviceBuffer partials =
      orDie(DeviceBuffer::allocate(h2oPartialsBytes(h2o, run)));
  const float h2oPrefill = time(
      [&] { orDie(accumulateH2o(h2o, run, partials.as<float2>(), nullptr)); });
  // The prefill attention over the same rows: the entries before them
  // from the pages, their own from a bf16 copy.
  const size_t ownValues = size_t(prefill) * kvHeads * d;
  DeviceBuffer own = orDie(DeviceBuffer::allocate(2 * ownValues * 2));
  fillBf16(own.get(), own.size(), 5);
  PrefillAttentionArgs prefillArgs;
  prefillArgs.cache = launch.cache;
  prefillArgs.pageTable = tableBuffer.as<int32_t>();
  prefillArgs.before = length - prefill;
  prefillArgs.rows = prefill;
  prefillArgs.ownKeys = own.as<uint16_t>();
  prefillArgs.ownValues = own.as<uint16_t>() + ownValues;
  prefillArgs.q = prefillQ.as<float>();
  prefillArgs.out = prefillOut.as<float>();
  prefillArgs.qHeads = qHeads;
  prefillArgs.scale = h2o.scale;
  const float prefillAttentionMs =
      time([&] { orDie(prefillAttention(prefillArgs, nullptr)); });
  // What a decode step adds: the attention leaving its weights, added up.
  DecodeAttentionShape massShape = shape;
  massShape.addsMass = true;
  const DecodeAttentionPlan massPlan =
      orDie(planDecodeAttention(massShape, multiprocessors));
  DeviceBuffer massWorkspace =
      orDie(DeviceBuffer::allocate(massPlan.workspaceBytes));
  DecodeAttentionArgs massArgs = args;
  massArgs.workspace = massWorkspace.get();
  massArgs.mass = mass.as<float>();
  const float attentionWithMass =
      time([&] { orDie(decodeAttention(massArgs, massPlan, nullptr)); });
  const double keyBytes = double(poolBytes);
  std::printf("eviction, one layer, B=%u L=%u, %u/%u heads of %u, bf16, kept "
              "25%%:\n",
              batch, length, qHeads, kvHeads, d);
  std::printf("| kernel | ms | GB/s | x one decode step's attention |\n"
              "| --- | --- | --- | --- |\n");
  std::printf("| decode attention (one step) | %.3f | %.0f | 1 |\n", attention,
              2 * keyBytes / (attention * 1e6));
  std::printf("| TriAttention scores | %.3f | %.0f | %.2f |\n", scores,
              keyBytes / (scores * 1e6), scores / attention);
  std::printf("| TriAttention scores, combine=zmax | %.3f | %.0f | %.2f |\n",
              zmaxScores, keyBytes / (zmaxScores * 1e6),
              zmaxScores / attention);
  std::printf("| SnapKV scores (32 queries) | %.3f | %.0f | %.2f |\n",
              snapScores, keyBytes / (snapScores * 1e6),
              snapScores / attention);
  std::printf("| decode attention adding H2O's mass | %.3f | %.0f | %.2f |\n",
              attentionWithMass, 2 * keyBytes / (attentionWithMass * 1e6),
              attentionWithMass / attention);
  std::printf("| prefill attention, the last %u rows of one sequence | %.3f "
              "| - | %.2f |\n",
              prefill, prefillAttentionMs, prefillAttentionMs / attention);
  std::printf("| H2O's mass for those rows (its own kernels) | %.3f | - | "
              "%.2f |\n",
              h2oPrefill, h2oPrefill / attention);
  std::printf("| selection (shared, 8 heads) | %.3f | - | %.2f |\n", select,
              select / attention);
  std::printf("| compaction (keys and values) | %.3f | %.0f | %.2f |\n",
              compact, 2 * 0.25 * 2 * keyBytes / (compact * 1e6),
              compact / attention);
  CUDA_OK(cudaEventDestroy(start));
  CUDA_OK(cudaEventDestroy(stop));
}

} // namespace kvrt::cuda::test
