//===- EvictCheck.cpp - Eviction's kernels against the CPU's --------------===//
//
// Each case builds one layer's cache of five sequences (lengths 4500 to 64,
// budgets from 33 to 1100, some with no sinks, one kept whole) in pages
// shuffled across a pool with unused pages; keys and values are encoded
// by the CPU codecs into host pages, and the device pool gets those same
// bytes, everything else poisoned (pool bytes 0xa7 / 0x5b, positions
// -7777, the workspace 0xff). Then scoreEntries(), selectEntries() and
// compactEntries() run once, and:
// - scores: each entry's GPU score against evict::TriAttentionScorer over
//   the CPU codec's decodeAt() of the same bytes, with the same centres
//   and query position. Both sum n = 3 d / 2 products of the same floats
//   (d coordinates times u, d / 2 norms times m) in another order, so each
//   is within gamma_n * S of the exact sum (S = the sum of the terms'
//   magnitudes, Higham's bound), and they may differ by 2 (n + 9) 2^-24 S
//   (9 more roundings: u and the decoded coordinates may round once
//   otherwise, the norms take three on the CPU and four on the GPU, whose
//   approximate square root is within 1 ulp). S is bounded from the centres:
//   sum_f (sqrt(2) |Z_f| mean_h |E q_f| + mean_h spread_f) |k_f| / a.
//   A wrong coordinate, pair, scale or head moves a score by about S.
//   StreamingLLM's scores must be equal. Entries past a sequence's length
//   must stay poisoned.
// - selection: the GPU's combined scores against the CPU's
//   evict::standardise() and evict::combineHeads() of the GPU's own raw
//   scores (within 2^-22 of |value| + the mean |standardised head score|:
//   the moments are summed in double in another order, so a value may
//   round to a neighbouring float); then the kept indices against
//   evict::selectKept() run on the GPU's combined scores: identical, since
//   both rank by evict::rankKey(). Cases with keys drawn from 24 rows put
//   exact ties at the budget's edge (ties go to the earlier entry).
// - compaction: the whole key pool, value pool and positions against the
//   host's copies with the GPU's kept entries moved by
//   evict::compactionPlan()'s rule (kept[i] to i, each head's own list or
//   the shared one): byte for byte, headers, unused slots and pages too.
// For information, how many entries the CPU keeps otherwise when it
// selects on its own scores (rounding near ties; no failure).
//
//===----------------------------------------------------------------------===//
#include "Harness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/DeviceEviction.h"
#include "runtime/src/backends/cuda/EvictKernels.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/evict/Scores.h"
#include "runtime/src/evict/Select.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace kvrt::cuda::test {
namespace {

constexpr uint32_t kHeads = 4, kQHeads = 8, kSpare = 5;
constexpr int kShown = 5;

struct EvictCase {
  const char *name;
  schema::Encoding encoding;
  uint32_t headDim;
  bool interleaved, shared;
  EvictScoring scoring;
  /// Keys drawn from this many rows per head, the same draw for every
  /// head (exact ties); 0: all distinct.
  uint32_t distinct;
  /// Tokens a page: 16, or 96 for the kernels' division path.
  uint32_t pageSize = 16;
  /// SnapKV: the queries observed (sequence 2 has half as many) and the
  /// pooling kernel.
  uint32_t observe = 0, kernel = 1;
  /// TriAttention: the query heads standardised, then their maximum
  /// (combine=zmax).
  bool zmax = false;
};

struct SequenceCase {
  uint32_t length, budget, sinks, recent;
};
const SequenceCase kSequences[] = {{4500, 1100, 4, 64},
                                   {517, 129, 0, 64},
                                   {300, 40, 4, 20},
                                   {200, 300, 4, 64},
                                   {64, 33, 4, 16}};
constexpr uint32_t kCount = sizeof(kSequences) / sizeof(kSequences[0]);

/// One side's pool as the host holds it.
struct HostSide {
  DeviceSideLayout layout;
  std::unique_ptr<Codec> codec;
  std::vector<uint8_t> bytes;
  size_t at(uint32_t page, uint32_t head, uint32_t slot) const {
    return (size_t(page) * kHeads + head) * layout.areaStride +
           layout.codesOffset + size_t(slot) * layout.entryBytes;
  }
};

bool runEvictCase(const EvictCase &c, uint32_t seed) {
  const uint32_t pageSize = c.pageSize;
  const uint32_t d = c.headDim, half = d / 2, group = kQHeads / kHeads;
  const bool tri = c.scoring == EvictScoring::TriAttention;
  const bool snap = c.scoring == EvictScoring::SnapKv;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;

  // Codecs and layouts of both sides.
  HostSide sides[2];
  for (int s = 0; s < 2; ++s) {
    CodecContext context;
    context.kvHeads = kHeads;
    context.headDim = d;
    context.layer = 1;
    context.side = s ? CacheSide::Value : CacheSide::Key;
    if (c.encoding.kind() == schema::ENCODING_FP8 &&
        c.encoding.scale_mode() == schema::SCALE_MODE_PER_HEAD)
      context.scales = {0.011f, 0.02f, 0.005f, 0.04f};
    if (c.encoding.kind() == schema::ENCODING_NVFP4)
      context.scales = {0.0123f};
    sides[s].codec = orDie(makeCodec(c.encoding, context));
    sides[s].layout =
        orDie(deviceSideLayout(c.encoding, *sides[s].codec, pageSize));
  }

  // Pages: each sequence's in shuffled pool pages, kSpare never used.
  uint32_t pages = kSpare, maxPages = 0, maxLength = 0, maxKept = 0;
  for (const SequenceCase &s : kSequences) {
    const uint32_t n = (s.length + pageSize - 1) / pageSize;
    pages += n;
    maxPages = std::max(maxPages, n);
    maxLength = std::max(maxLength, s.length);
  }
  std::vector<int32_t> order(pages);
  for (uint32_t p = 0; p < pages; ++p)
    order[p] = int32_t(p);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<uint32_t> tableRows(kCount);
  for (uint32_t i = 0; i < kCount; ++i)
    tableRows[i] = i;
  std::shuffle(tableRows.begin(), tableRows.end(), rng);
  // Unused table entries name a spare (poisoned) page.
  std::vector<int32_t> tables(size_t(kCount) * maxPages, order[pages - 1]);
  // pageOwner[page]: (sequence, index of the page), or -1: unused.
  std::vector<std::pair<int, int>> pageOwner(pages, {-1, -1});
  std::vector<EvictSequence> sequences(kCount);
  std::vector<evict::SelectionParams> params(kCount);
  uint32_t next = 0;
  for (uint32_t i = 0; i < kCount; ++i) {
    const SequenceCase &s = kSequences[i];
    for (uint32_t p = 0; p * pageSize < s.length; ++p) {
      tables[size_t(tableRows[i]) * maxPages + p] = order[next];
      pageOwner[size_t(order[next++])] = {int(i), int(p)};
    }
    params[i].budget = s.budget;
    params[i].sinks = s.sinks;
    params[i].recent = s.recent;
    const evict::KeptLayout layout = evict::keptLayout(s.length, params[i]);
    EvictSequence &e = sequences[i];
    e.tableRow = int32_t(tableRows[i]);
    e.length = int32_t(s.length);
    e.queryPosition = int32_t(4 * s.length + 11);
    e.sinks = int32_t(layout.sinks);
    e.recentStart = int32_t(layout.recentStart);
    e.free = int32_t(layout.free);
    e.kept = int32_t(layout.kept(s.length));
    maxKept = std::max(maxKept, uint32_t(e.kept));
  }
  auto pageOf = [&](uint32_t i, uint32_t entry) {
    return uint32_t(tables[size_t(tableRows[i]) * maxPages + entry / pageSize]);
  };

  // Entries: keys with uneven channels (as real keys have), values, and
  // each head's own positions.
  sides[0].bytes.assign(size_t(pages) * kHeads * sides[0].layout.areaStride,
                        0xa7);
  sides[1].bytes.assign(size_t(pages) * kHeads * sides[1].layout.areaStride,
                        0x5b);
  std::vector<int32_t> positions(size_t(pages) * kHeads * pageSize, -7777);
  std::vector<float> row(d);
  for (uint32_t i = 0; i < kCount; ++i) {
    std::vector<float> pool(size_t(std::max(c.distinct, 1u)) * kHeads * d);
    for (size_t j = 0; j < pool.size(); ++j)
      pool[j] = normal(rng) * (j % d % 13 == 5 ? 4.0f : 0.5f + 0.5f * (j % 5));
    for (uint32_t t = 0; t < kSequences[i].length; ++t) {
      const uint32_t draw = c.distinct ? rng() % c.distinct : 0;
      const uint32_t page = pageOf(i, t), slot = t % pageSize;
      for (uint32_t h = 0; h < kHeads; ++h) {
        for (uint32_t j = 0; j < d; ++j)
          row[j] = c.distinct ? pool[(size_t(draw) * kHeads + h) * d + j]
                              : normal(rng) * (j % 13 == 5 ? 4.0f : 1.0f);
        for (int s = 0; s < 2; ++s)
          sides[s].codec->encode(row.data(), d, h, slot,
                                 &sides[s].bytes[(size_t(page) * kHeads + h) *
                                                 sides[s].layout.areaStride]);
        positions[(size_t(page) * kHeads + h) * pageSize + slot] =
            int32_t(3 * t + h + 5 * i);
      }
    }
  }

  // Centres: E q per query head and pair, E|q| beyond |E q|.
  std::vector<float> centres(2 * kQHeads * half), magnitudes(kQHeads * half);
  for (float &v : centres)
    v = normal(rng);
  for (uint32_t j = 0; j < kQHeads * half; ++j)
    magnitudes[j] = std::hypot(centres[2 * j], centres[2 * j + 1]) +
                    0.3f * std::fabs(normal(rng));
  cpu::RopeFrequencies rope;
  rope.interleaved = c.interleaved;
  rope.attentionFactor = c.interleaved ? 1.25 : 1.0;
  for (uint32_t f = 0; f < half; ++f)
    rope.inverse.push_back(std::pow(10000.0, -2.0 * f / d));
  const std::vector<double> distances = evict::geometricDistances();
  const std::vector<double> centreValues = triAttentionCentreValues(
      centres, magnitudes, rope, distances, kQHeads, half);

  // SnapKV's observed queries: sequence i's in ring row tableRows[i], the
  // last at a position that sees every entry, each earlier one 5 positions
  // before (so that the last entries are hidden from some rows and heads),
  // sequence 2 with its first half of the ring empty (-1).
  const uint32_t observe = std::max(c.observe, 1u);
  const float scale = 1.0f / std::sqrt(float(d));
  std::vector<float> observed(size_t(kCount) * observe * kQHeads * d);
  for (size_t j = 0; j < observed.size(); ++j)
    observed[j] = normal(rng) * (j % d % 11 == 3 ? 3.0f : 1.0f);
  std::vector<int32_t> observedPositions(size_t(kCount) * observe, -1);
  for (uint32_t i = 0; i < kCount; ++i) {
    const uint32_t count = i == 2 ? observe - observe / 2 : observe;
    const int32_t last =
        int32_t(3 * (kSequences[i].length - 1) + 5 * i + kHeads);
    for (uint32_t j = 0; j < count; ++j)
      observedPositions[size_t(tableRows[i]) * observe + (observe - 1 - j)] =
          last - int32_t(5 * j);
    sequences[i].observedRow = int32_t(tableRows[i]);
  }

  // The device side.
  auto upload = [](const void *data, size_t bytes) {
    DeviceBuffer b = orDie(DeviceBuffer::allocate(std::max<size_t>(bytes, 1)));
    orDie(b.upload(data, bytes));
    return b;
  };
  DeviceBuffer keyPool = upload(sides[0].bytes.data(), sides[0].bytes.size());
  DeviceBuffer valuePool = upload(sides[1].bytes.data(), sides[1].bytes.size());
  DeviceBuffer positionPool =
      upload(positions.data(), positions.size() * sizeof(int32_t));
  DeviceBuffer tableBuffer =
      upload(tables.data(), tables.size() * sizeof(int32_t));
  DeviceBuffer sequenceBuffer =
      upload(sequences.data(), sequences.size() * sizeof(EvictSequence));
  DeviceBuffer centreBuffer =
      upload(centreValues.data(), centreValues.size() * sizeof(double));
  DeviceBuffer observedBuffer =
      upload(observed.data(), observed.size() * sizeof(float));
  DeviceBuffer observedPositionBuffer = upload(
      observedPositions.data(), observedPositions.size() * sizeof(int32_t));
  EvictLaunch launch;
  launch.sequences = sequenceBuffer.as<EvictSequence>();
  launch.count = kCount;
  launch.maxLength = maxLength;
  launch.maxKept = maxKept;
  launch.cache.key = sides[0].layout;
  launch.cache.value = sides[1].layout;
  launch.cache.keys = keyPool.as<uint8_t>();
  launch.cache.values = valuePool.as<uint8_t>();
  launch.cache.pageTables = tableBuffer.as<int32_t>();
  launch.cache.pageTableStride = maxPages;
  launch.cache.pageSize = pageSize;
  launch.cache.kvHeads = kHeads;
  launch.cache.headDim = d;
  launch.positions = positionPool.as<int32_t>();
  launch.qHeads = kQHeads;
  launch.scoring = c.scoring;
  launch.centres =
      triAttentionCentresView(centreBuffer.as<double>(), kQHeads, half, rope);
  launch.shared = c.shared;
  launch.standardisedMax = c.zmax;
  if (snap) {
    launch.observed = observedBuffer.as<float>();
    launch.observedPositions = observedPositionBuffer.as<int32_t>();
    launch.observe = observe;
    launch.kernel = c.kernel;
    launch.scale = scale;
  }
  // SnapKV's cases also add H2O's mass for a prefill's rows
  // (accumulateH2o()) from the same queries, before the compaction moves
  // the entries: per sequence one run of its observed rows, repeated
  // kH2oRepeats times so that a run spans several blocks.
  constexpr uint32_t kH2oRepeats = 3;
  const size_t massFloats = size_t(pages) * kHeads * pageSize;
  DeviceBuffer massBuffer = orDie(DeviceBuffer::allocate(massFloats * 4));
  CUDA_OK(cudaMemset(massBuffer.get(), 0, massFloats * 4));
  if (snap) {
    EvictLaunch h2o = launch;
    h2o.mass = massBuffer.as<float>();
    for (uint32_t i = 0; i < kCount; ++i) {
      const uint32_t rows = kH2oRepeats * observe;
      std::vector<int32_t> ints(3 * rows);
      std::vector<float> queries(size_t(rows) * kQHeads * d);
      for (uint32_t r = 0; r < rows; ++r) {
        const size_t place = size_t(tableRows[i]) * observe + r % observe;
        ints[r] = int32_t(kSequences[i].length);
        ints[rows + r] = observedPositions[place];
        ints[2 * rows + r] = int32_t(tableRows[i]);
        std::copy_n(&observed[place * kQHeads * d], kQHeads * d,
                    &queries[size_t(r) * kQHeads * d]);
      }
      DeviceBuffer intBuffer = upload(ints.data(), ints.size() * 4);
      DeviceBuffer queryBuffer = upload(queries.data(), queries.size() * 4);
      const H2oRows run =
          h2oRun(queryBuffer.as<float>(), kQHeads * d, intBuffer.as<int32_t>(),
                 rows, kSequences[i].length);
      DeviceBuffer partials =
          orDie(DeviceBuffer::allocate(h2oPartialsBytes(h2o, run)));
      CUDA_OK(cudaMemset(partials.get(), 0xff, partials.size()));
      orDie(accumulateH2o(h2o, run, partials.as<float2>(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
    }
  }
  std::vector<float> mass(massFloats);
  CUDA_OK(cudaMemcpy(mass.data(), massBuffer.get(), massFloats * 4,
                     cudaMemcpyDeviceToHost));

  const size_t workspaceBytes = evictWorkspaceBytes(launch);
  DeviceBuffer workspace = orDie(DeviceBuffer::allocate(workspaceBytes));
  CUDA_OK(cudaMemset(workspace.get(), 0xff, workspaceBytes));
  launch.workspace = workspace.get();
  orDie(scoreEntries(launch, nullptr));
  orDie(selectEntries(launch, nullptr));
  orDie(compactEntries(launch, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  const EvictWorkspace w = evictWorkspace(launch);
  const size_t rows = size_t(kCount) * kHeads;
  std::vector<float> scores(rows * maxLength), combined(rows * maxLength);
  std::vector<int32_t> kept(rows * maxKept);
  CUDA_OK(cudaMemcpy(scores.data(), w.scores, scores.size() * 4,
                     cudaMemcpyDeviceToHost));
  // zmax: each query head's raw scores, which the KV heads' combine.
  std::vector<float> headScores(c.zmax ? size_t(kCount) * kQHeads * maxLength
                                       : 0);
  if (c.zmax)
    CUDA_OK(cudaMemcpy(headScores.data(), w.headScores, headScores.size() * 4,
                       cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(combined.data(), w.combined, combined.size() * 4,
                     cudaMemcpyDeviceToHost));
  CUDA_OK(
      cudaMemcpy(kept.data(), w.kept, kept.size() * 4, cudaMemcpyDeviceToHost));

  int failures = 0, shown = 0;
  auto report = [&](const char *kernel, const std::string &what) {
    ++failures;
    if (shown++ < kShown)
      std::printf("FAIL evict %s %s d=%u: %s\n", kernel, c.name, d,
                  what.c_str());
  };
  auto poisoned = [](const void *p) {
    uint32_t bits;
    std::memcpy(&bits, p, 4);
    return bits == 0xffffffffu;
  };
  char text[320];

  // Scores.
  std::vector<evict::QueryCentre> cpuCentres(kQHeads);
  for (uint32_t q = 0; q < kQHeads; ++q)
    for (uint32_t f = 0; f < half; ++f) {
      cpuCentres[q].re.push_back(centres[2 * (q * half + f)]);
      cpuCentres[q].im.push_back(centres[2 * (q * half + f) + 1]);
      cpuCentres[q].magnitude.push_back(magnitudes[q * half + f]);
    }
  double worstRatio = 0;
  std::vector<float> cpuScores(rows * maxLength, 0.0f);
  std::vector<float> cpuHeadScores(headScores.size(), 0.0f);
  std::vector<float> keys(size_t(maxLength) * d);
  std::vector<double> snapBounds(maxLength);
  // zmax: KV head h's scores against evict::combineHeads() of the GPU's own
  // query head scores (each standardised value may round to a neighbouring
  // float, the moments being summed in another order, and the maximum moves
  // by no more than its terms), and the CPU's own combination for the
  // selection's information.
  auto checkStandardisedMax = [&](uint32_t i, uint32_t h, uint32_t length) {
    const size_t firstRow = size_t(i) * kQHeads + h * group;
    std::vector<float> heads(size_t(group) * length), own(heads.size());
    for (uint32_t g = 0; g < group; ++g) {
      std::copy_n(&headScores[(firstRow + g) * maxLength], length,
                  &heads[size_t(g) * length]);
      std::copy_n(&cpuHeadScores[(firstRow + g) * maxLength], length,
                  &own[size_t(g) * length]);
    }
    const std::vector<float> want =
        evict::combineHeads(heads.data(), group, length, length,
                            evict::HeadAggregation::StandardisedMax);
    const std::vector<float> ownWant =
        evict::combineHeads(own.data(), group, length, length,
                            evict::HeadAggregation::StandardisedMax);
    std::copy(ownWant.begin(), ownWant.end(),
              &cpuScores[(size_t(i) * kHeads + h) * maxLength]);
    for (uint32_t g = 0; g < group; ++g)
      evict::standardise(&heads[size_t(g) * length], length);
    const float *got = &scores[(size_t(i) * kHeads + h) * maxLength];
    for (uint32_t t = 0; t < length; ++t) {
      double largest = 0;
      for (uint32_t g = 0; g < group; ++g)
        largest =
            std::max(largest, std::fabs(double(heads[size_t(g) * length + t])));
      const double bound =
          std::ldexp(std::fabs(double(want[t])) + largest, -22);
      if (got[t] != want[t] &&
          !(std::fabs(double(got[t]) - double(want[t])) <= bound)) {
        std::snprintf(text, sizeof text,
                      "standardised maximum of sequence %u head %u entry %u: "
                      "gpu %.9g, cpu from the gpu's query head scores %.9g "
                      "(bound %.3g)",
                      i, h, t, got[t], want[t], bound);
        report("zmax", text);
      }
    }
    for (uint32_t t = length; t < maxLength; ++t)
      if (!poisoned(&got[t])) {
        std::snprintf(text, sizeof text,
                      "sequence %u head %u: standardised maximum %u past its "
                      "length %u was written (%.9g)",
                      i, h, t, length, got[t]);
        report("zmax", text);
        break;
      }
  };
  for (uint32_t i = 0; i < kCount; ++i)
    for (uint32_t h = 0; h < kHeads; ++h) {
      const uint32_t length = kSequences[i].length;
      for (uint32_t t = 0; t < length; ++t) {
        const uint32_t page = pageOf(i, t), slot = t % pageSize;
        sides[0].codec->decodeAt(
            &sides[0].bytes[(size_t(page) * kHeads + h) *
                            sides[0].layout.areaStride],
            slot, h, positions[(size_t(page) * kHeads + h) * pageSize + slot],
            &keys[size_t(t) * d]);
      }
      // The rows scored: the KV head's, or (zmax) each of its query heads'.
      for (uint32_t scored = 0; scored < (c.zmax ? group : 1); ++scored) {
        const float *got =
            c.zmax ? &headScores[(size_t(i) * kQHeads + h * group + scored) *
                                 maxLength]
                   : &scores[(size_t(i) * kHeads + h) * maxLength];
        float *want =
            c.zmax ? &cpuHeadScores[(size_t(i) * kQHeads + h * group + scored) *
                                    maxLength]
                   : &cpuScores[(size_t(i) * kHeads + h) * maxLength];
        // Per pair: the bound's weight on |k_f|.
        std::vector<double> weight(half, 0.0);
        if (tri) {
          // The row's query heads: the group (their mean), or one.
          const uint32_t first = h * group + scored, heads = c.zmax ? 1 : group;
          evict::TriAttentionScorer scorer(rope, d, &cpuCentres[first], heads,
                                           sequences[i].queryPosition,
                                           distances);
          scorer.score(keys.data(), d, length, want);
          for (uint32_t f = 0; f < half; ++f) {
            const auto [zr, zi] =
                evict::distanceMean(rope.inverse[f], distances);
            double centre = 0, spread = 0;
            for (uint32_t g = 0; g < heads; ++g) {
              const evict::QueryCentre &q = cpuCentres[first + g];
              centre += std::hypot(q.re[f], q.im[f]) / heads;
              spread += (q.magnitude[f] - std::hypot(q.re[f], q.im[f])) / heads;
            }
            weight[f] = (std::sqrt(2.0) * std::hypot(zr, zi) * centre +
                         std::fabs(spread)) /
                        rope.attentionFactor;
          }
        } else if (snap) {
          // In double: each observed row's softmax over the entries it sees,
          // summed over the window per query head, max-pooled, summed.
          std::vector<double> total(length, 0.0), votes(length), logits(length);
          std::vector<double> massWant(length, 0.0); // H2O's, summed over
                                                     // the group and rows
          double worstDot = 0; // scale * sum |q_i k_i|, the largest.
          const size_t ring = size_t(tableRows[i]) * observe;
          for (uint32_t g = 0; g < group; ++g) {
            std::fill(votes.begin(), votes.end(), 0.0);
            for (uint32_t j = 0; j < observe; ++j) {
              const int32_t at = observedPositions[ring + j];
              if (at < 0)
                continue;
              const float *q =
                  &observed[((ring + j) * kQHeads + h * group + g) * d];
              double best = -INFINITY;
              for (uint32_t t = 0; t < length; ++t) {
                const uint32_t page = pageOf(i, t), slot = t % pageSize;
                logits[t] = -INFINITY;
                if (positions[(size_t(page) * kHeads + h) * pageSize + slot] >
                    at)
                  continue;
                double dot = 0, magnitude = 0;
                for (uint32_t k = 0; k < d; ++k) {
                  dot += double(q[k]) * keys[size_t(t) * d + k];
                  magnitude +=
                      std::fabs(double(q[k]) * keys[size_t(t) * d + k]);
                }
                logits[t] = scale * dot;
                worstDot = std::max(worstDot, scale * magnitude);
                best = std::max(best, logits[t]);
              }
              double sum = 0;
              for (uint32_t t = 0; t < length; ++t)
                if (logits[t] != -INFINITY)
                  sum += std::exp(logits[t] - best);
              for (uint32_t t = 0; t < length; ++t)
                if (logits[t] != -INFINITY) {
                  votes[t] += std::exp(logits[t] - best) / sum;
                  massWant[t] += kH2oRepeats * std::exp(logits[t] - best) / sum;
                }
            }
            const int64_t k = c.kernel / 2;
            for (int64_t t = 0; t < int64_t(length); ++t) {
              double pooled = 0;
              for (int64_t u = std::max<int64_t>(0, t - k);
                   u <= std::min<int64_t>(length - 1, t + k); ++u)
                pooled = std::max(pooled, votes[size_t(u)]);
              total[size_t(t)] += pooled;
            }
          }
          // A logit is within (2^-17 + (d + 2) 2^-24) of scale * sum |q k|:
          // the kernel splits each query into bf16 hi + lo (within 2^-18 of
          // it), keys are exact in bf16, products exact, and the d / 8
          // fp32 accumulations of the tensor cores and the scaling stay
          // within an fp32 dot product's bound. A weight's relative error is
          // within twice the worst logit's, plus an ulp per term of the
          // softmax's sum and a few for exp, the tiles' join and the
          // reciprocal; the window's and heads' sums add one per term, and
          // pooling moves a maximum by no more than its terms'.
          const double epsilon =
              2 * (std::ldexp(1.0, -17) + (d + 2) * std::ldexp(1.0, -24)) *
                  worstDot +
              std::ldexp(double(length + observe + 24), -24);
          for (uint32_t t = 0; t < length; ++t) {
            want[t] = float(total[t]);
            snapBounds[t] = (epsilon + std::ldexp(1.0, -23)) * total[t];
          }
          // H2O's mass: each weight within epsilon, one rounding per
          // addition of the rows' and heads' weights.
          for (uint32_t t = 0; t < length; ++t) {
            const float got =
                mass[(size_t(pageOf(i, t)) * kHeads + h) * pageSize +
                     t % pageSize];
            const double bound =
                (epsilon +
                 std::ldexp(double(kH2oRepeats * observe * group + 1), -24)) *
                massWant[t];
            const double error = std::fabs(double(got) - massWant[t]);
            if (!(error <= bound) && !(got == 0 && massWant[t] == 0)) {
              std::snprintf(text, sizeof text,
                            "sequence %u head %u entry %u (page %u slot %u): "
                            "gpu %.9g, float64 %.9g, |difference| %.3g > "
                            "bound %.3g",
                            i, h, t, pageOf(i, t), t % pageSize, got,
                            massWant[t], error, bound);
              report("h2o-rows", text);
            }
          }
        } else {
          // The layout's sinks, which the kernel reads: a sequence within its
          // budget protects every entry (evict::keptLayout).
          evict::streamingScores(length, sequences[i].sinks, want);
        }
        const double n = 1.5 * d;
        for (uint32_t t = 0; t < length; ++t) {
          double magnitude = 0;
          const float *k = &keys[size_t(t) * d];
          for (uint32_t f = 0; f < half; ++f) {
            const uint32_t a = c.interleaved ? 2 * f : f;
            const uint32_t b = c.interleaved ? a + 1 : f + half;
            magnitude += weight[f] * std::hypot(double(k[a]), double(k[b]));
          }
          // StreamingLLM's scores are exact (bound 0).
          const double bound = snap  ? snapBounds[t]
                               : tri ? 2 * (n + 9) * std::ldexp(magnitude, -24)
                                     : 0.0;
          const double error = std::fabs(double(got[t]) - double(want[t]));
          const bool equal = got[t] == want[t];
          if (!equal && !(error <= bound)) {
            std::snprintf(text, sizeof text,
                          "sequence %u head %u entry %u (page %u slot %u): gpu "
                          "%.9g, cpu %.9g, |difference| %.3g > bound %.3g",
                          i, h, t, pageOf(i, t), t % pageSize, got[t], want[t],
                          error, bound);
            report("scores", text);
          } else if (bound > 0) {
            worstRatio = std::max(worstRatio, error / bound);
          }
        }
        for (uint32_t t = length; t < maxLength; ++t)
          if (!poisoned(&got[t])) {
            std::snprintf(
                text, sizeof text,
                "sequence %u head %u row %u: entry %u past its length "
                "%u was written (%.9g)",
                i, h, scored, t, length, got[t]);
            report("scores", text);
            break;
          }
      }
      if (c.zmax)
        checkStandardisedMax(i, h, length);
    }

  // H2O's mass anywhere but the sequences' entries stays zero.
  for (uint32_t page = 0; snap && page < pages; ++page)
    for (uint32_t slot = 0; slot < kHeads * pageSize; ++slot) {
      const auto [owner, index] = pageOwner[page];
      const bool entry = owner >= 0 && index * pageSize + slot % pageSize <
                                           kSequences[owner].length;
      const float got = mass[size_t(page) * kHeads * pageSize + slot];
      if (!entry && got != 0) {
        std::snprintf(text, sizeof text,
                      "page %u head %u slot %u holds no entry but gained "
                      "mass %.9g",
                      page, slot / pageSize, slot % pageSize, got);
        report("h2o-rows", text);
        break;
      }
    }

  // Selection: the combination of the GPU's raw scores, then the kept
  // entries of the GPU's combination.
  uint64_t ownDiffer = 0, ownTotal = 0, keptTotal = 0;
  const uint32_t selectionRows = c.shared ? 1 : kHeads;
  for (uint32_t i = 0; i < kCount; ++i) {
    const uint32_t length = kSequences[i].length;
    auto combine = [&](const std::vector<float> &from) {
      std::vector<float> heads(size_t(kHeads) * length);
      for (uint32_t h = 0; h < kHeads; ++h) {
        std::copy_n(&from[(size_t(i) * kHeads + h) * maxLength], length,
                    &heads[size_t(h) * length]);
        if (tri)
          evict::standardise(&heads[size_t(h) * length], length);
      }
      return heads;
    };
    const std::vector<float> standardised = combine(scores);
    const std::vector<float> own = combine(cpuScores);
    const std::vector<float> mean =
        evict::combineHeads(standardised.data(), kHeads, length, length,
                            evict::HeadAggregation::Mean);
    const std::vector<float> ownMean = evict::combineHeads(
        own.data(), kHeads, length, length, evict::HeadAggregation::Mean);
    for (uint32_t r = 0; r < selectionRows; ++r) {
      const float *got = &combined[(size_t(i) * kHeads + r) * maxLength];
      const float *want =
          c.shared ? mean.data() : &standardised[size_t(r) * length];
      for (uint32_t t = 0; t < length; ++t) {
        double spread = 0;
        for (uint32_t h = 0; h < kHeads; ++h)
          spread += std::fabs(double(standardised[size_t(h) * length + t]));
        spread = c.shared ? spread / kHeads : std::fabs(double(want[t]));
        const double bound =
            std::ldexp(std::fabs(double(want[t])) + spread, -22);
        const bool same =
            got[t] == want[t] || (std::isnan(got[t]) && std::isnan(want[t]));
        if (!same && !(std::isfinite(want[t]) &&
                       std::fabs(double(got[t]) - double(want[t])) <= bound)) {
          std::snprintf(text, sizeof text,
                        "combined score of sequence %u row %u entry %u: gpu "
                        "%.9g, cpu from the gpu's raw scores %.9g (bound %.3g)",
                        i, r, t, got[t], want[t], bound);
          report("select", text);
        }
      }
      const std::vector<uint64_t> expected =
          evict::selectKept(got, 1, length, length, params[i])[0];
      const int32_t *gotKept = &kept[(size_t(i) * kHeads + r) * maxKept];
      keptTotal += expected.size();
      if (expected.size() != uint64_t(sequences[i].kept))
        report("select", "the kept layout disagrees with selectKept");
      for (size_t j = 0; j < expected.size(); ++j)
        if (uint64_t(gotKept[j]) != expected[j]) {
          std::snprintf(
              text, sizeof text,
              "sequence %u row %u (length %u, budget %u, sinks %u, window %u): "
              "kept[%zu] is %d on the gpu, %llu on the cpu (combined scores "
              "%.9g and %.9g)",
              i, r, length, kSequences[i].budget, kSequences[i].sinks,
              kSequences[i].recent, j, gotKept[j],
              (unsigned long long)expected[j],
              gotKept[j] >= 0 && uint32_t(gotKept[j]) < length ? got[gotKept[j]]
                                                               : NAN,
              got[expected[j]]);
          report("select", text);
          break;
        }
      for (uint32_t j = uint32_t(expected.size()); j < maxKept; ++j)
        if (!poisoned(&gotKept[j])) {
          std::snprintf(text, sizeof text,
                        "sequence %u row %u: kept[%u] past the %zu kept was "
                        "written (%d)",
                        i, r, j, expected.size(), gotKept[j]);
          report("select", text);
          break;
        }
      // For information: the CPU's selection on its own scores.
      const std::vector<uint64_t> ownKept = evict::selectKept(
          c.shared ? ownMean.data() : &own[size_t(r) * length], 1, length,
          length, params[i])[0];
      std::vector<uint64_t> only;
      std::set_difference(ownKept.begin(), ownKept.end(), expected.begin(),
                          expected.end(), std::back_inserter(only));
      ownDiffer += only.size();
      ownTotal += ownKept.size();
    }
  }

  // Compaction: the host's pools with the GPU's kept entries moved.
  std::vector<int32_t> expectedPositions = positions;
  for (uint32_t i = 0; i < kCount; ++i)
    for (uint32_t h = 0; h < kHeads; ++h) {
      const int32_t *list =
          &kept[(size_t(i) * kHeads + (c.shared ? 0 : h)) * maxKept];
      for (int32_t j = 0; j < sequences[i].kept; ++j) {
        if (list[j] == j || list[j] < 0 ||
            uint32_t(list[j]) >= kSequences[i].length)
          continue;
        const uint32_t from = uint32_t(list[j]), to = uint32_t(j);
        for (HostSide &side : sides)
          std::memmove(
              &side.bytes[side.at(pageOf(i, to), h, to % pageSize)],
              &side.bytes[side.at(pageOf(i, from), h, from % pageSize)],
              side.layout.entryBytes);
        auto slotOf = [&](uint32_t entry) {
          return (size_t(pageOf(i, entry)) * kHeads + h) * pageSize +
                 entry % pageSize;
        };
        expectedPositions[slotOf(to)] = expectedPositions[slotOf(from)];
      }
    }
  for (int s = 0; s < 2; ++s) {
    const HostSide &side = sides[s];
    std::vector<uint8_t> got(side.bytes.size());
    CUDA_OK(cudaMemcpy(got.data(), s ? valuePool.get() : keyPool.get(),
                       got.size(), cudaMemcpyDeviceToHost));
    size_t lastArea = ~size_t(0);
    for (size_t o = 0; o < got.size(); ++o) {
      if (got[o] == side.bytes[o])
        continue;
      const size_t area = o / side.layout.areaStride;
      if (area == lastArea)
        continue; // One report per head's area.
      lastArea = area;
      const uint32_t page = uint32_t(area / kHeads),
                     h = uint32_t(area % kHeads);
      const size_t within = o % side.layout.areaStride;
      const auto [owner, index] = pageOwner[page];
      std::string where = "the head's header";
      if (within >= side.layout.codesOffset) {
        const size_t slot =
            (within - side.layout.codesOffset) / side.layout.entryBytes;
        where = slot >= pageSize ? "the area's padding"
                                 : "slot " + std::to_string(slot);
        if (owner >= 0 && slot < pageSize)
          where += " (sequence " + std::to_string(owner) + " entry " +
                   std::to_string(index * pageSize + int(slot)) + ")";
      }
      std::snprintf(text, sizeof text,
                    "%s page %u%s head %u, %s: byte %zu of the entry is 0x%02x "
                    "on the gpu, 0x%02x expected",
                    s ? "values" : "keys", page, owner < 0 ? " (unused)" : "",
                    h, where.c_str(),
                    within < side.layout.codesOffset
                        ? within
                        : (within - side.layout.codesOffset) %
                              side.layout.entryBytes,
                    got[o], side.bytes[o]);
      report("compact", text);
    }
  }
  std::vector<int32_t> gotPositions(positions.size());
  CUDA_OK(cudaMemcpy(gotPositions.data(), positionPool.get(),
                     gotPositions.size() * 4, cudaMemcpyDeviceToHost));
  for (size_t o = 0; o < gotPositions.size(); ++o)
    if (gotPositions[o] != expectedPositions[o]) {
      const uint32_t page = uint32_t(o / (kHeads * pageSize));
      std::snprintf(text, sizeof text,
                    "positions page %u%s head %zu slot %zu: %d on the gpu, %d "
                    "expected",
                    page, pageOwner[page].first < 0 ? " (unused)" : "",
                    o / pageSize % kHeads, o % pageSize, gotPositions[o],
                    expectedPositions[o]);
      report("compact", text);
    }

  std::printf("%-4s evict     %-22s d=%u: scores within %.2f of their bound, "
              "%llu kept entries as selectKept keeps them, the pools as "
              "compacted on the host (%d failed); the cpu on its own scores "
              "keeps %llu of %llu otherwise\n",
              failures ? "FAIL" : "ok", c.name, d, worstRatio,
              (unsigned long long)keptTotal, failures,
              (unsigned long long)ownDiffer, (unsigned long long)ownTotal);
  return failures == 0;
}

} // namespace

int runEvictChecks() {
  using S = EvictScoring;
  const schema::Encoding bf16 = testEncoding(schema::ENCODING_BF16);
  const schema::Encoding fp8 = testEncoding(schema::ENCODING_FP8);
  const schema::Encoding fp8Head =
      testEncoding(schema::ENCODING_FP8, 0, schema::SCALE_MODE_PER_HEAD);
  const schema::Encoding nvfp4 = testEncoding(schema::ENCODING_NVFP4);
  const EvictCase cases[] = {
      {"tri-bf16-shared", bf16, 128, false, true, S::TriAttention, 0},
      {"tri-bf16-each", bf16, 128, false, false, S::TriAttention, 0},
      {"tri-bf16-each-interleaved", bf16, 64, true, false, S::TriAttention, 0},
      {"tri-bf16-shared-ties", bf16, 128, false, true, S::TriAttention, 24},
      {"tri-bf16-each-ties", bf16, 64, false, false, S::TriAttention, 24},
      {"tri-bf16-shared", bf16, 256, false, true, S::TriAttention, 0},
      {"tri-fp8-dyn-shared", fp8, 128, false, true, S::TriAttention, 0},
      {"tri-fp8-dyn-each-ties", fp8, 128, false, false, S::TriAttention, 24},
      {"tri-fp8-head-each", fp8Head, 64, false, false, S::TriAttention, 0},
      {"tri-fp8-head-shared", fp8Head, 128, true, true, S::TriAttention, 0},
      {"tri-nvfp4-shared", nvfp4, 128, false, true, S::TriAttention, 0},
      {"tri-nvfp4-each-ties", nvfp4, 64, false, false, S::TriAttention, 24},
      {"tri-bf16-shared-page96", bf16, 128, false, true, S::TriAttention, 0,
       96},
      {"tri-bf16-shared-zmax", bf16, 128, false, true, S::TriAttention, 0, 16,
       0, 1, true},
      {"tri-fp8-dyn-each-zmax-ties", fp8, 64, true, false, S::TriAttention, 24,
       16, 0, 1, true},
      {"tri-fp8-dyn-each-page96", fp8, 64, true, false, S::TriAttention, 0, 96},
      {"snapkv-bf16-shared", bf16, 128, false, true, S::SnapKv, 0, 16, 32, 7},
      {"snapkv-bf16-each-ties", bf16, 64, false, false, S::SnapKv, 24, 16, 32,
       7},
      {"snapkv-fp8-dyn-each", fp8, 64, false, false, S::SnapKv, 0, 16, 48, 5},
      {"snapkv-bf16-shared-two-tiles-a-warp", bf16, 64, false, true, S::SnapKv,
       0, 16, 72, 3},
      {"snapkv-nvfp4-shared-page96", nvfp4, 128, false, true, S::SnapKv, 0, 96,
       8, 1},
      {"streaming-bf16", bf16, 128, false, true, S::Streaming, 0},
      {"streaming-bf16-each", bf16, 64, false, false, S::Streaming, 0},
      {"streaming-fp8-dyn", fp8, 128, false, true, S::Streaming, 0},
      {"streaming-nvfp4", nvfp4, 128, false, true, S::Streaming, 0},
      {"streaming-polar4", testEncoding(schema::ENCODING_POLAR, 4), 128, false,
       true, S::Streaming, 0},
  };
  int failures = 0;
  uint32_t seed = 3000;
  for (const EvictCase &c : cases)
    failures += runEvictCase(c, seed++) ? 0 : 1;
  std::printf("evict checks: %d failed\n", failures);
  return failures;
}

} // namespace kvrt::cuda::test
