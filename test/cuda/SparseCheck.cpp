//===- SparseCheck.cpp - Sparse selection and attention against the CPU ---===//
//
// Each case builds one layer's paged cache (bf16, fp8 e4m3 with per-head
// or per-slot scales, nvfp4, or polar of 2 to 4 bits) with block summaries
// through libkvrt
// (codecs,
// PagedCache, cpu::append; the rows' pages interleaved in the pool; each
// row's newest token left in its tail, as a decode step finds it), copies
// the same bytes to the device (the newest token encoded into its page by
// the same codec, as the GPU's append stores it) and checks, into outputs
// and a workspace poisoned with 0xff bytes:
//
//   summaries  built by buildBlockSummaries() for the selectable entries
//              (as a prefill, or the previous step's attention, leaves
//              them): every block of them must equal the CPU's
//              Page::keyBounds and Page::boundExponents exactly; after
//              the attention's launch, the block of each row's newest
//              token must hold the bounds of its entries up to that token
//              (the next step's), the decoded minima and maxima stored as
//              sparse::storeBounds() stores them;
//   selection  per (row, KV head) the kept blocks and entries against
//              sparse::selectEntries and a float64 evaluation of its rule
//              (the same sums in the same order, which must agree with
//              it). A set may differ only by items whose float64 ranks are
//              within 1e-5 of the rank at the cut (relative to the larger
//              of the two, or to 1% of the heads' best score where ranks
//              are near 0, as they are for each head's own best item):
//              those are ties, counted and printed. Where level 1 differs
//              by a tie, level 2 is judged on the GPU's blocks;
//   attention  per query row against cpu::attention with
//              AttentionParams::select (or, in a group whose selection
//              differs by a tie, and for a quantized cache, whose newest
//              token the CPU reads from its bf16 tail, a float64 attention
//              over the GPU's selection and the newest token as the device
//              holds it, in the codec's domain and mapped back by
//              finishOutput()): every output finite and
//              |gpu - cpu| / |cpu| <= 1e-4 (L2 over the row), the bound of
//              AttentionCheck.cpp.
// Each case runs twice, into a workspace poisoned again: both runs must
// give the same bytes. A third run reads the layer
// offloaded (SparseDecodeArgs::resident): its pages in mapped host memory,
// about half of its KV-head pages also in device slots and their host
// copies poisoned with 0xff bytes (NaN in bf16), so that a resident page
// read from host memory, or a missing one read from a slot, shows; it must
// give the bytes of the first two.
//
// Cases with exact sinks and window (ExactTokens.h) also copy each row's
// exact tokens into a store as the CUDA pool keeps them: their rows select
// from the codes older than the window, the summaries hold those alone,
// and where the GPU's selection is the CPU's cpu::attention is the
// reference of the attention (sinks and window read exact on both).
//
//===----------------------------------------------------------------------===//
#include "SparseHarness.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/backends/cuda/DeviceBuffer.h"
#include "runtime/src/backends/cuda/ExactTokens.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/sparse/BlockSummary.h"
#include "runtime/src/sparse/TwoLevel.h"
#include "test/unit/BestByRank.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>

namespace kvrt::cuda::test {
namespace {

using kvopt::test::bestByRank;

constexpr double kBound = 1e-4, kTie = 1e-5;

enum class Entries {
  Bf16,
  Fp8PerHead,
  Fp8Dynamic,
  Polar2,
  Polar3,
  Polar4,
  Nvfp4
};

const char *entriesName(Entries e) {
  switch (e) {
  case Entries::Bf16:
    return "bf16";
  case Entries::Fp8PerHead:
    return "fp8/head";
  case Entries::Fp8Dynamic:
    return "fp8/slot";
  case Entries::Polar2:
    return "polar2";
  case Entries::Polar3:
    return "polar3";
  case Entries::Polar4:
    return "polar4";
  case Entries::Nvfp4:
    return "nvfp4";
  }
  return "?";
}

struct Case {
  /// Tokens per row, the newest included.
  std::vector<uint32_t> lengths;
  uint32_t qHeads, kvHeads, headDim, pageSize;
  sparse::SelectPolicy policy;
  int32_t slidingWindow = 0;
  Entries entries = Entries::Bf16;
  /// Tokens kept exact beside the codes (ExactTokens.h): each row's first
  /// `sinks` and its `window` most recent, the newest one's own beside.
  uint32_t sinks = 0, window = 0;
  bool keepsExact() const { return sinks || window; }
};

struct Totals {
  int blockTies = 0, entryTies = 0;
  int groups = 0, groupsDiffering = 0;
};

/// Keys with uneven channels (scales 0.5 to 2.5, a 4x outlier every 13th
/// channel) and a component that drifts along the sequence, so that blocks
/// differ as they do in real keys; plain normal values.
std::vector<float> randomRows(std::mt19937 &rng, size_t rows, uint32_t width,
                              bool keys) {
  std::normal_distribution<float> normal;
  std::vector<float> x(rows * width), drift(width, 0.0f);
  for (size_t r = 0; r < rows; ++r)
    for (uint32_t c = 0; c < width; ++c) {
      float scale = !keys ? 1.0f : c % 13 == 5 ? 4.0f : 0.5f + 0.5f * (c % 5);
      if (keys)
        drift[c] = 0.99f * drift[c] + 0.14f * normal(rng);
      x[r * width + c] = (normal(rng) + drift[c]) * scale;
    }
  return x;
}

/// max_h (x[h][i] - max_j x[h][j]) over `group` rows of n items, as
/// sparse/TwoLevel.cpp ranks; `scale` gets max_h |max_j x[h][j]|.
std::vector<double> rankAcrossHeads(const std::vector<double> &x, size_t group,
                                    size_t n, double &scale) {
  const double lowest = -std::numeric_limits<double>::infinity();
  std::vector<double> rank(n, lowest);
  scale = 0;
  for (size_t h = 0; h < group; ++h) {
    const double *row = x.data() + h * n;
    double top = lowest;
    for (size_t i = 0; i < n; ++i)
      if (row[i] > top)
        top = row[i];
    scale = std::max(scale, std::fabs(top));
    for (size_t i = 0; i < n; ++i)
      rank[i] = std::max(rank[i], row[i] - top);
  }
  return rank;
}

/// Whether `got` is `expected` but for items ranked within kTie of the cut
/// (the worst rank `expected` keeps); adds those to `ties`, or says why not.
bool sameUpToTies(const std::vector<uint64_t> &got,
                  const std::vector<uint64_t> &expected,
                  const std::vector<double> &rank, double scale, int &ties,
                  std::string &why) {
  if (got.size() != expected.size()) {
    why = "kept " + std::to_string(got.size()) + ", not " +
          std::to_string(expected.size());
    return false;
  }
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] >= rank.size() || (i && got[i] <= got[i - 1])) {
      why = "indices out of range or order";
      return false;
    }
  double cut = std::numeric_limits<double>::infinity();
  for (uint64_t i : expected)
    cut = std::min(cut, rank[i]);
  std::vector<uint64_t> differing;
  std::set_symmetric_difference(got.begin(), got.end(), expected.begin(),
                                expected.end(), std::back_inserter(differing));
  for (uint64_t i : differing) {
    const double r = rank[i];
    const double tolerance =
        kTie * std::max({std::fabs(r), std::fabs(cut), 0.01 * scale});
    if (!(std::fabs(r - cut) <= tolerance)) {
      char line[160];
      std::snprintf(line, sizeof(line),
                    "item %llu ranked %.9g, the cut %.9g: no tie",
                    static_cast<unsigned long long>(i), r, cut);
      why = line;
      return false;
    }
  }
  ties += int(differing.size());
  return true;
}

/// The layer's cache, and the keys, values and positions the CPU holds.
struct Layer {
  std::unique_ptr<Codec> key, value, tail;
  cpu::CacheCodecs codecs;
  std::unique_ptr<PagedCache> cache;

  /// Entry `index` of KV head `head` of `sequence`, as attention reads it.
  std::vector<float> read(bool keys, uint64_t sequence, uint32_t head,
                          uint64_t index) const {
    const CacheLayerShape &shape = cache->shape(0);
    std::vector<float> out(shape.headDim);
    const uint64_t encoded = cache->encoded(0, sequence);
    if (index >= encoded) {
      // Encoded as the device's page holds it (upload()).
      const Tail &t = cache->tail(0, sequence);
      const std::vector<float> &side = keys ? t.keys[head] : t.values[head];
      const Codec &codec = keys ? *key : *value;
      std::vector<uint8_t> area(codec.headBytes(shape.pageSize));
      codec.encode(side.data() + (index - encoded) * shape.headDim,
                   shape.headDim, head, 0, area.data());
      codec.decode(area.data(), 0, out.data());
      return out;
    }
    const Page &page =
        cache->page(0, cache->pages(0, sequence)[index / shape.pageSize]);
    const uint32_t slot = uint32_t(index % shape.pageSize);
    if (keys)
      key->decode(page.keys.get() + head * shape.keyHeadBytes, slot,
                  out.data());
    else
      value->decode(page.values.get() + head * shape.valueHeadBytes, slot,
                    out.data());
    return out;
  }
};

/// The pool's pages, positions, page tables and lengths on the device.
struct DeviceLayer {
  DeviceBuffer keys, values, positions, tables, lengths;
  PagedKvView view;
  uint32_t pageCount = 0;
};

DeviceBuffer uploaded(const void *data, size_t bytes) {
  DeviceBuffer buffer =
      orDie(DeviceBuffer::allocate(std::max<size_t>(bytes, 4)));
  orDie(buffer.upload(data, bytes));
  return buffer;
}

/// Copies the layer as the CUDA pool holds it: the newest token of each
/// sequence (in its tail on the CPU, rounded to bf16) encoded in its page
/// slot.
DeviceLayer upload(const Layer &layer, const std::vector<uint64_t> &sequences,
                   const DeviceSideLayout &keyLayout,
                   const DeviceSideLayout &valueLayout) {
  const PagedCache &cache = *layer.cache;
  const CacheLayerShape &shape = cache.shape(0);
  const uint32_t d = shape.headDim, pageSize = shape.pageSize;
  DeviceLayer device;
  uint32_t stride = 1;
  for (uint64_t sequence : sequences) {
    const std::vector<uint32_t> &pages = cache.pages(0, sequence);
    for (uint32_t page : pages)
      device.pageCount = std::max(device.pageCount, page + 1);
    stride = std::max(stride, uint32_t(pages.size()));
  }
  const uint64_t keyPage = keyLayout.areaStride * shape.kvHeads;
  const uint64_t valuePage = valueLayout.areaStride * shape.kvHeads;
  std::vector<uint8_t> keys(device.pageCount * keyPage),
      values(device.pageCount * valuePage);
  std::vector<int32_t> positions(size_t(device.pageCount) * pageSize, -1);
  std::vector<int32_t> tables(sequences.size() * stride, 0), lengths;
  for (size_t b = 0; b < sequences.size(); ++b) {
    const std::vector<uint32_t> &pages = cache.pages(0, sequences[b]);
    const uint64_t length = cache.length(0, sequences[b]);
    lengths.push_back(int32_t(length));
    for (size_t i = 0; i < pages.size(); ++i) {
      const uint32_t index = pages[i];
      const Page &page = cache.page(0, index);
      tables[b * stride + i] = int32_t(index);
      for (uint32_t h = 0; h < shape.kvHeads; ++h) {
        std::memcpy(&keys[index * keyPage + h * keyLayout.areaStride],
                    page.keys.get() + h * shape.keyHeadBytes,
                    keyLayout.headBytes);
        std::memcpy(&values[index * valuePage + h * valueLayout.areaStride],
                    page.values.get() + h * shape.valueHeadBytes,
                    valueLayout.headBytes);
      }
      const uint64_t stored =
          std::min<uint64_t>(pageSize, length - i * pageSize);
      std::memcpy(&positions[size_t(index) * pageSize], page.positions.get(),
                  stored * sizeof(int32_t));
    }
    for (uint64_t t = cache.encoded(0, sequences[b]); t < length; ++t) {
      const uint32_t index = pages[t / pageSize];
      const uint32_t slot = uint32_t(t % pageSize);
      const Tail &tail = cache.tail(0, sequences[b]);
      const uint64_t inTail = t - cache.encoded(0, sequences[b]);
      for (uint32_t h = 0; h < shape.kvHeads; ++h)
        for (bool isKey : {true, false}) {
          const std::vector<float> &x = isKey ? tail.keys[h] : tail.values[h];
          const DeviceSideLayout &side = isKey ? keyLayout : valueLayout;
          uint8_t *area = (isKey ? keys.data() + index * keyPage
                                 : values.data() + index * valuePage) +
                          h * side.areaStride;
          (isKey ? *layer.key : *layer.value)
              .encode(x.data() + inTail * d, d, h, slot, area);
        }
    }
  }
  device.keys = uploaded(keys.data(), keys.size());
  device.values = uploaded(values.data(), values.size());
  device.positions = uploaded(positions.data(), positions.size() * 4);
  device.tables = uploaded(tables.data(), tables.size() * 4);
  device.lengths = uploaded(lengths.data(), lengths.size() * 4);
  PagedKvView &view = device.view;
  view.key = keyLayout;
  view.value = valueLayout;
  view.keys = device.keys.as<uint8_t>();
  view.values = device.values.as<uint8_t>();
  view.positions = device.positions.as<int32_t>();
  view.pageTables = device.tables.as<int32_t>();
  view.lengths = device.lengths.as<int32_t>();
  view.pageTableStride = stride;
  view.pageSize = pageSize;
  view.kvHeads = shape.kvHeads;
  view.headDim = d;
  return device;
}

/// The rows' exact tokens as the CUDA pool keeps them (ExactTokens.h),
/// each row a decode step's: sequence slot b, its newest token stored by
/// this call (in the call's own bf16 rows), the sinks and the window's
/// ring below it in the store; the CPU's tails and sinks, whose values
/// are bf16 already, give the bits.
struct ExactStore {
  DeviceBuffer keys, values, calls, ownKeys, ownValues;
  ExactTokensView view;
};

ExactStore exactStore(const Layer &layer,
                      const std::vector<uint64_t> &sequences, uint32_t sinks,
                      uint32_t window) {
  const PagedCache &cache = *layer.cache;
  const CacheLayerShape &shape = cache.shape(0);
  const uint32_t d = shape.headDim, heads = shape.kvHeads;
  const uint32_t entries = sinks + window, rows = uint32_t(sequences.size());
  std::vector<uint16_t> keys(size_t(rows) * heads * entries * d),
      values(keys.size()), ownKeys(size_t(rows) * heads * d),
      ownValues(ownKeys.size());
  std::vector<int32_t> calls;
  for (uint32_t b = 0; b < rows; ++b) {
    const uint64_t sequence = sequences[b];
    const uint64_t length = cache.length(0, sequence),
                   encoded = cache.encoded(0, sequence);
    calls.insert(calls.end(),
                 {int32_t(b), int32_t(length) - 1, int32_t(length)});
    // Token i's exact values in head h: among the CPU's sinks where it
    // is encoded, else in its tail.
    auto exact = [&](bool isKey, uint32_t h, uint64_t i) {
      const Tail &from =
          i < encoded ? cache.sinks(0, sequence) : cache.tail(0, sequence);
      const std::vector<float> &side = isKey ? from.keys[h] : from.values[h];
      return side.data() + (i < encoded ? i : i - encoded) * d;
    };
    const uint64_t before = length - 1;
    for (uint32_t h = 0; h < heads; ++h)
      for (bool isKey : {true, false}) {
        uint16_t *store = (isKey ? keys : values).data() +
                          (size_t(b) * heads + h) * entries * d;
        for (uint64_t i = 0; i < before; ++i) {
          const bool sink = i < sinks;
          if (!sink && (i < encoded || before - i > window))
            continue;
          const uint64_t entry = sink ? i : sinks + i % window;
          const float *x = exact(isKey, h, i);
          for (uint32_t j = 0; j < d; ++j)
            store[entry * d + j] = cpu::floatToBf16(x[j]);
        }
        uint16_t *own =
            (isKey ? ownKeys : ownValues).data() + (size_t(b) * heads + h) * d;
        const float *x = exact(isKey, h, before);
        for (uint32_t j = 0; j < d; ++j)
          own[j] = cpu::floatToBf16(x[j]);
      }
  }
  ExactStore s;
  s.keys = uploaded(keys.data(), keys.size() * 2);
  s.values = uploaded(values.data(), values.size() * 2);
  s.calls = uploaded(calls.data(), calls.size() * 4);
  s.ownKeys = uploaded(ownKeys.data(), ownKeys.size() * 2);
  s.ownValues = uploaded(ownValues.data(), ownValues.size() * 2);
  s.view.sinks = sinks;
  s.view.window = window;
  s.view.recent = window;
  s.view.keys = s.keys.as<uint16_t>();
  s.view.values = s.values.as<uint16_t>();
  s.view.calls = s.calls.as<int32_t>();
  s.view.ownKeys = s.ownKeys.as<uint16_t>();
  s.view.ownValues = s.ownValues.as<uint16_t>();
  return s;
}

template <typename T>
std::vector<T> download(const void *device, size_t count) {
  std::vector<T> host(count);
  CUDA_OK(cudaMemcpy(host.data(), device, count * sizeof(T),
                     cudaMemcpyDeviceToHost));
  return host;
}

/// The plan of `shape` on this device or, with `inClusters`, the plan of a
/// device with fewer SMs whose rows merge their splits in clusters, the
/// most splits a row of those (SparseDecodePlan::mergesInCluster: this
/// device's plan for fewer rows). Empty where no such plan differs from
/// this device's.
std::optional<SparseDecodePlan> planFor(const SparseDecodeShape &shape,
                                        uint32_t multiprocessors,
                                        bool inClusters) {
  const SparseDecodePlan own = orDie(planSparseDecode(shape, multiprocessors));
  if (!inClusters)
    return own;
  if (own.mergesInCluster)
    return std::nullopt;
  std::optional<SparseDecodePlan> merging;
  for (uint32_t sms = 1; sms < multiprocessors; ++sms) {
    SparseDecodePlan plan = orDie(planSparseDecode(shape, sms));
    if (plan.mergesInCluster && (!merging || plan.splits > merging->splits))
      merging = plan;
  }
  return merging;
}

/// Runs one case; returns whether it passed, or nothing where `inClusters`
/// and planFor() has no plan.
std::optional<bool> runCase(const Case &c, uint32_t multiprocessors,
                            bool inClusters, uint32_t seed, Totals &totals) {
  std::mt19937 rng(seed);
  const uint32_t batch = uint32_t(c.lengths.size());
  const uint32_t d = c.headDim, width = c.kvHeads * d;
  const uint32_t group = c.qHeads / c.kvHeads, block = c.policy.block;
  const float scale = 1.0f / std::sqrt(float(d));

  std::vector<std::vector<float>> keys, values;
  for (uint32_t b = 0; b < batch; ++b) {
    keys.push_back(randomRows(rng, c.lengths[b], width, true));
    values.push_back(randomRows(rng, c.lengths[b], width, false));
  }

  schema::Encoding encoding, f32;
  f32.set_kind(schema::ENCODING_F32);
  const int polarBits = c.entries == Entries::Polar2   ? 2
                        : c.entries == Entries::Polar3 ? 3
                        : c.entries == Entries::Polar4 ? 4
                                                       : 0;
  encoding.set_kind(c.entries == Entries::Bf16    ? schema::ENCODING_BF16
                    : polarBits                   ? schema::ENCODING_POLAR
                    : c.entries == Entries::Nvfp4 ? schema::ENCODING_NVFP4
                                                  : schema::ENCODING_FP8);
  encoding.set_bits(polarBits ? polarBits : 4);
  if (c.entries == Entries::Fp8PerHead || c.entries == Entries::Fp8Dynamic) {
    encoding.set_fp8_format(schema::FP8_FORMAT_E4M3);
    encoding.set_scale_mode(c.entries == Entries::Fp8PerHead
                                ? schema::SCALE_MODE_PER_HEAD
                                : schema::SCALE_MODE_DYNAMIC);
  }
  // Per-head scales as calibration makes them: each head's largest
  // magnitude over 448.
  auto headScales = [&](const std::vector<std::vector<float>> &rows) {
    std::vector<float> scales(c.kvHeads, 0.0f);
    for (const std::vector<float> &x : rows)
      for (size_t i = 0; i < x.size(); ++i)
        scales[i % width / d] =
            std::max(scales[i % width / d], std::fabs(x[i]) / 448.0f);
    return scales;
  };
  Layer layer;
  CodecContext context;
  context.kvHeads = c.kvHeads;
  context.headDim = d;
  if (c.entries == Entries::Fp8PerHead)
    context.scales = headScales(keys);
  // nvfp4: a tensor scale that is no power of two, block scales within
  // E4M3's range for these rows (as AttentionCheck.cpp).
  if (c.entries == Entries::Nvfp4)
    context.scales = {0.0123f};
  layer.key = orDie(makeCodec(encoding, context));
  context.side = CacheSide::Value;
  if (c.entries == Entries::Fp8PerHead)
    context.scales = headScales(values);
  layer.value = orDie(makeCodec(encoding, context));
  context.scales.clear();
  layer.tail = orDie(makeCodec(f32, context));
  layer.codecs = {layer.key.get(), layer.value.get(), layer.tail.get(), true,
                  true};
  CacheLayerShape shape;
  shape.kvHeads = c.kvHeads;
  shape.headDim = d;
  shape.pageSize = c.pageSize;
  shape.keyHeadBytes = layer.key->headBytes(c.pageSize);
  shape.valueHeadBytes = layer.value->headBytes(c.pageSize);
  shape.summaryBlock = block;
  shape.sinkTokens = c.sinks;
  shape.tailWindow = c.window;
  shape.capacityPages = batch;
  for (uint32_t length : c.lengths)
    shape.capacityPages += (length + c.pageSize - 1) / c.pageSize;
  layer.cache =
      std::make_unique<PagedCache>(std::vector<CacheLayerShape>{shape});
  PagedCache &cache = *layer.cache;
  std::vector<uint64_t> sequences;
  for (uint32_t b = 0; b < batch; ++b) {
    sequences.push_back(100 + 7 * b);
    orDie(cache.addSequence(sequences.back()));
  }

  // All but the newest token in chunks of 1 to 97, the rows taking turns
  // (so their pages interleave), then encoded; then each row's newest
  // token, which stays in its tail.
  cpu::ThreadPool pool(2);
  std::uniform_int_distribution<uint32_t> chunk(1, 97);
  std::vector<uint32_t> done(batch, 0);
  auto appendRows = [&](uint32_t b, uint32_t first, uint32_t count) {
    orDie(cache.reserve({{sequences[b], count}}));
    std::vector<uint64_t> rows(count, sequences[b]);
    std::vector<int32_t> positions(count);
    std::iota(positions.begin(), positions.end(), int32_t(first));
    cpu::append(pool, cache, 0, layer.codecs, &keys[b][size_t(first) * width],
                &values[b][size_t(first) * width], count, rows.data(),
                positions.data());
  };
  for (bool more = true; more;) {
    more = false;
    for (uint32_t b = 0; b < batch; ++b) {
      const uint32_t target = c.lengths[b] ? c.lengths[b] - 1 : 0;
      if (done[b] >= target)
        continue;
      const uint32_t count = std::min(chunk(rng), target - done[b]);
      appendRows(b, done[b], count);
      done[b] += count;
      more |= done[b] < target;
    }
  }
  cpu::encodeTails(pool, cache, 0, layer.codecs, sequences.data(), batch);
  for (uint32_t b = 0; b < batch; ++b)
    if (c.lengths[b])
      appendRows(b, c.lengths[b] - 1, 1);

  std::vector<float> q = randomRows(rng, batch, c.qHeads * d, false);
  std::vector<int32_t> queryPositions;
  for (uint32_t length : c.lengths)
    queryPositions.push_back(int32_t(length ? length - 1 : 0));
  cpu::AttentionParams params;
  params.cache = &cache;
  params.codecs = layer.codecs;
  params.scale = scale;
  params.slidingWindow = c.slidingWindow;
  params.select = c.policy;
  std::vector<float> expected(q.size());
  std::vector<std::vector<float>> scratch;
  cpu::attention(pool, params, q.data(), batch, c.qHeads, sequences.data(),
                 queryPositions.data(), expected.data(), scratch, nullptr);

  // The device's copy and its summaries.
  const DeviceSideLayout keyLayout =
      orDie(deviceSideLayout(encoding, *layer.key, c.pageSize));
  const DeviceSideLayout valueLayout =
      orDie(deviceSideLayout(encoding, *layer.value, c.pageSize));
  DeviceLayer device = upload(layer, sequences, keyLayout, valueLayout);
  const ExactStore exact = c.keepsExact()
                               ? exactStore(layer, sequences, c.sinks, c.window)
                               : ExactStore();
  if (c.keepsExact())
    device.view.exact = exact.view;
  const uint32_t blocksPerPage = c.pageSize / block;
  const size_t summaryBlocks =
      size_t(device.pageCount) * c.kvHeads * blocksPerPage;
  DeviceBuffer summaryCodes =
      orDie(DeviceBuffer::allocate(summaryBlocks * 2 * d));
  DeviceBuffer summaryExponents = orDie(DeviceBuffer::allocate(summaryBlocks));
  const BlockSummaries summaries{summaryCodes.as<uint8_t>(),
                                 summaryExponents.as<int8_t>()};
  CUDA_OK(cudaMemset(summaryCodes.get(), 0xff, summaryCodes.size()));
  CUDA_OK(cudaMemset(summaryExponents.get(), 0xff, summaryExponents.size()));
  // The device's summaries as the host reads them.
  struct Summaries {
    std::vector<uint8_t> codes;
    std::vector<int8_t> exponents;
    bool operator==(const Summaries &o) const {
      return codes == o.codes && exponents == o.exponents;
    }
  };
  auto downloadSummaries = [&] {
    return Summaries{
        download<uint8_t>(summaryCodes.get(), summaryBlocks * 2 * d),
        download<int8_t>(summaryExponents.get(), summaryBlocks)};
  };
  // Whether `got` holds `codes` (2d) and `exponent` for block `inPage` of
  // page `index`'s KV head h.
  auto holds = [&](const Summaries &got, uint32_t index, uint32_t h,
                   uint32_t inPage, const uint8_t *codes, int exponent) {
    const size_t n = (size_t(index) * c.kvHeads + h) * blocksPerPage + inPage;
    return got.exponents[n] == exponent &&
           std::memcmp(&got.codes[n * 2 * d], codes, 2 * d) == 0;
  };
  std::vector<int32_t> buildPages, buildSlots;
  for (uint32_t b = 0; b < batch; ++b) {
    const int64_t selectable = int64_t(cache.encoded(0, sequences[b]));
    const std::vector<uint32_t> &pages = cache.pages(0, sequences[b]);
    for (size_t i = 0; i < pages.size(); ++i) {
      buildPages.push_back(int32_t(pages[i]));
      buildSlots.push_back(int32_t(std::clamp<int64_t>(
          selectable - int64_t(i) * c.pageSize, 0, c.pageSize)));
    }
  }
  DeviceBuffer pagesDevice = uploaded(buildPages.data(), buildPages.size() * 4);
  DeviceBuffer slotsDevice = uploaded(buildSlots.data(), buildSlots.size() * 4);
  orDie(buildBlockSummaries(
      device.view, summaries, block, pagesDevice.as<int32_t>(),
      slotsDevice.as<int32_t>(), uint32_t(buildPages.size()), nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  const Summaries gpuSummaries = downloadSummaries();
  int summaryMismatches = 0;
  for (uint32_t b = 0; b < batch; ++b) {
    const uint64_t selectable = cache.encoded(0, sequences[b]);
    const std::vector<uint32_t> &pages = cache.pages(0, sequences[b]);
    for (uint64_t first = 0; first < selectable; first += block) {
      const uint32_t index = pages[first / c.pageSize];
      const uint32_t inPage = uint32_t(first % c.pageSize / block);
      for (uint32_t h = 0; h < c.kvHeads; ++h) {
        const sparse::BlockBounds want =
            sparse::blockBounds(cache, 0, cache.page(0, index), h, inPage);
        summaryMismatches +=
            !holds(gpuSummaries, index, h, inPage, want.codes, want.exponent);
      }
    }
  }

  // Selection and attention, twice.
  const uint32_t maxLength =
      *std::max_element(c.lengths.begin(), c.lengths.end());
  const SparseDecodeShape sparseShape{
      batch,
      c.qHeads,
      c.kvHeads,
      d,
      c.pageSize,
      maxLength,
      keyLayout,
      valueLayout,
      {block, c.policy.topBlocks, c.policy.topTokens},
      c.sinks + c.window};
  const std::optional<SparseDecodePlan> chosen =
      planFor(sparseShape, multiprocessors, inClusters);
  if (!chosen)
    return std::nullopt;
  const SparseDecodePlan &plan = *chosen;
  DeviceBuffer workspace = orDie(DeviceBuffer::allocate(plan.workspaceBytes));
  DeviceBuffer qDevice = uploaded(q.data(), q.size() * 4);
  DeviceBuffer positionsDevice =
      uploaded(queryPositions.data(), queryPositions.size() * 4);
  DeviceBuffer out = orDie(DeviceBuffer::allocate(q.size() * 4));
  SparseDecodeArgs args;
  args.cache = device.view;
  args.summaries = summaries;
  args.q = qDevice.as<float>();
  args.queryPositions = positionsDevice.as<int32_t>();
  args.out = out.as<float>();
  args.batch = batch;
  args.qHeads = c.qHeads;
  args.scale = scale;
  args.slidingWindow = c.slidingWindow;
  args.workspace = workspace.get();
  // Beside a window of exact tokens the selection reads the coded ones.
  DeviceBuffer codedDevice;
  if (c.window) {
    std::vector<int32_t> coded;
    for (uint32_t length : c.lengths)
      coded.push_back(codedTokens(int(length), int(c.window), 1));
    codedDevice = uploaded(coded.data(), coded.size() * 4);
    args.codedLengths = codedDevice.as<int32_t>();
  }
  const uint32_t rows = batch * c.kvHeads;
  const SparseSelection selection = sparseSelection(workspace.get(), plan);
  // One selection and attention into a poisoned workspace and output, and
  // what they leave.
  struct Run {
    std::vector<uint32_t> blockCounts, entryCounts;
    std::vector<int32_t> blocks, entries;
    std::vector<float> out;
    Summaries summaries;
    bool operator==(const Run &o) const {
      return blockCounts == o.blockCounts && entryCounts == o.entryCounts &&
             blocks == o.blocks && entries == o.entries &&
             std::memcmp(out.data(), o.out.data(), out.size() * 4) == 0 &&
             summaries == o.summaries;
    }
  };
  // Each run from the summaries as built: its attention adds the newest
  // tokens to them.
  auto run = [&](const SparseDecodeArgs &a) {
    orDie(summaryCodes.upload(gpuSummaries.codes.data(),
                              gpuSummaries.codes.size()));
    orDie(summaryExponents.upload(gpuSummaries.exponents.data(),
                                  gpuSummaries.exponents.size()));
    CUDA_OK(cudaMemset(workspace.get(), 0xff, workspace.size()));
    CUDA_OK(cudaMemset(out.get(), 0xff, out.size()));
    orDie(selectSparseEntries(a, plan, nullptr));
    orDie(sparseAttention(a, plan, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    return Run{
        download<uint32_t>(selection.blockCounts, rows),
        download<uint32_t>(selection.entryCounts, rows),
        download<int32_t>(selection.blocks, size_t(rows) * c.policy.topBlocks),
        download<int32_t>(selection.entries, size_t(rows) * c.policy.topTokens),
        download<float>(out.get(), q.size()),
        downloadSummaries()};
  };
  const Run first = run(args);
  const bool repeatable = run(args) == first;
  const std::vector<uint32_t> &blockCounts = first.blockCounts,
                              &entryCounts = first.entryCounts;
  const std::vector<int32_t> &blocks = first.blocks, &entries = first.entries;
  const std::vector<float> &got = first.out;

  // The newest tokens' blocks, for the next step: the bounds of the
  // entries as the device holds them (the newest encoded).
  int newestMismatches = 0;
  for (uint32_t b = 0; b < batch; ++b) {
    // The next step reads the codes of all but the newest `window`.
    if (c.lengths[b] <= c.window)
      continue;
    const uint64_t newest = c.lengths[b] - c.window - 1,
                   start = newest / block * block;
    const uint32_t index = cache.pages(0, sequences[b])[start / c.pageSize];
    const uint32_t inPage = uint32_t(start % c.pageSize / block);
    for (uint32_t h = 0; h < c.kvHeads; ++h) {
      std::vector<float> lo(d, INFINITY), hi(d, -INFINITY);
      for (uint64_t e = start; e <= newest; ++e) {
        const std::vector<float> k = layer.read(true, sequences[b], h, e);
        for (uint32_t x = 0; x < d; ++x) {
          lo[x] = std::min(lo[x], k[x]);
          hi[x] = std::max(hi[x], k[x]);
        }
      }
      std::vector<uint8_t> codes(2 * d);
      int8_t exponent;
      sparse::storeBounds(lo.data(), hi.data(), d, codes.data(), &exponent);
      newestMismatches +=
          !holds(first.summaries, index, h, inPage, codes.data(), exponent);
    }
  }

  // Offloaded: the same pages from host memory, half of them resident.
  bool offloadSame = true;
  {
    const uint64_t keyArea = keyLayout.areaStride,
                   valueArea = valueLayout.areaStride;
    const size_t keyBytes = size_t(device.pageCount) * c.kvHeads * keyArea;
    const size_t valueBytes = size_t(device.pageCount) * c.kvHeads * valueArea;
    HostBuffer hostKeys = orDie(HostBuffer::allocate(keyBytes));
    HostBuffer hostValues = orDie(HostBuffer::allocate(valueBytes));
    CUDA_OK(cudaMemcpy(hostKeys.get(), device.keys.get(), keyBytes,
                       cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(hostValues.get(), device.values.get(), valueBytes,
                       cudaMemcpyDeviceToHost));
    std::vector<int32_t> slotOf(size_t(device.pageCount) * c.kvHeads, -1);
    std::vector<uint8_t> slotKeys, slotValues;
    for (size_t area = 0; area < slotOf.size(); ++area) {
      if (rng() % 2)
        continue;
      slotOf[area] = int32_t(slotKeys.size() / keyArea);
      uint8_t *k = hostKeys.as<uint8_t>() + area * keyArea;
      uint8_t *v = hostValues.as<uint8_t>() + area * valueArea;
      slotKeys.insert(slotKeys.end(), k, k + keyArea);
      slotValues.insert(slotValues.end(), v, v + valueArea);
      std::memset(k, 0xff, keyArea);
      std::memset(v, 0xff, valueArea);
    }
    DeviceBuffer slotOfDevice = uploaded(slotOf.data(), slotOf.size() * 4);
    DeviceBuffer slotKeysDevice = uploaded(slotKeys.data(), slotKeys.size());
    DeviceBuffer slotValuesDevice =
        uploaded(slotValues.data(), slotValues.size());
    SparseDecodeArgs offloaded = args;
    offloaded.cache.keys = hostKeys.as<uint8_t>();
    offloaded.cache.values = hostValues.as<uint8_t>();
    offloaded.resident = {slotOfDevice.as<int32_t>(),
                          slotKeysDevice.as<uint8_t>(),
                          slotValuesDevice.as<uint8_t>()};
    // Level 1 also leaves its blocks in mapped host memory, for the
    // schedule.
    HostBuffer hostCounts = orDie(HostBuffer::allocate(rows * 4));
    HostBuffer hostBlocks =
        orDie(HostBuffer::allocate(size_t(rows) * c.policy.topBlocks * 4));
    std::memset(hostCounts.get(), 0xff, hostCounts.size());
    std::memset(hostBlocks.get(), 0xff, hostBlocks.size());
    offloaded.hostBlockCounts = hostCounts.as<uint32_t>();
    offloaded.hostBlocks = hostBlocks.as<int32_t>();
    // The newest blocks' summaries come from the resident slots where
    // their pages have one (the host copies of those are poisoned).
    const Run offloadedRun = run(offloaded);
    bool mirrored = true;
    for (uint32_t r = 0; r < rows; ++r) {
      const uint32_t count = hostCounts.as<uint32_t>()[r];
      mirrored = mirrored && count == offloadedRun.blockCounts[r];
      for (uint32_t i = 0; mirrored && i < count && i < c.policy.topBlocks; ++i)
        mirrored =
            hostBlocks.as<int32_t>()[size_t(r) * c.policy.topBlocks + i] ==
            offloadedRun.blocks[size_t(r) * c.policy.topBlocks + i];
    }
    offloadSame = mirrored && offloadedRun == first;
  }

  bool ok = summaryMismatches == 0 && newestMismatches == 0 && repeatable &&
            offloadSame;
  std::string why;
  int blockTies = 0, entryTies = 0, differing = 0;
  double worst = 0;
  std::vector<float> prepared(size_t(group) * d);
  sparse::SelectScratch selectScratch;
  for (uint32_t b = 0; b < batch; ++b)
    for (uint32_t g = 0; g < c.kvHeads; ++g) {
      const uint32_t row = b * c.kvHeads + g;
      const uint64_t selectable = cache.encoded(0, sequences[b]);
      const float *groupQ = &q[(size_t(b) * c.qHeads + g * group) * d];
      for (uint32_t h = 0; h < group; ++h)
        layer.key->prepareQuery(groupQ + h * d, g, &prepared[h * d]);
      std::vector<uint64_t> cpuSet;
      const bool active = sparse::selectEntries(
          cache, 0, sequences[b], *layer.key, g, prepared.data(), d, group,
          c.policy, selectScratch, cpuSet);
      std::vector<uint64_t> gpuEntries;
      if (entryCounts[row] <= c.policy.topTokens)
        for (uint32_t i = 0; i < entryCounts[row]; ++i)
          gpuEntries.push_back(uint64_t(
              uint32_t(entries[size_t(row) * c.policy.topTokens + i])));
      std::string fault;
      bool same = true;
      if (!active) {
        // Dense: every selectable entry, in order.
        std::vector<uint64_t> all(selectable);
        std::iota(all.begin(), all.end(), uint64_t(0));
        if (blockCounts[row] != 0 || gpuEntries != all)
          fault = "a short row must list every entry";
      } else {
        // Level 1 in float64, then level 2 on its blocks.
        const uint64_t nb = (selectable + block - 1) / block;
        const std::vector<uint32_t> &pages = cache.pages(0, sequences[b]);
        std::vector<double> perHead(group * nb);
        for (uint64_t j = 0; j < nb; ++j) {
          const uint64_t first = j * block;
          const sparse::BlockBounds bounds = sparse::blockBounds(
              cache, 0, cache.page(0, pages[first / c.pageSize]), g,
              uint32_t(first % c.pageSize / block));
          for (uint32_t h = 0; h < group; ++h) {
            double bound = 0;
            for (uint32_t x = 0; x < d; ++x) {
              const double lo = double(prepared[h * d + x]) * bounds.lower(x);
              const double hi = double(prepared[h * d + x]) * bounds.upper(x);
              bound += std::max(lo, hi);
            }
            perHead[h * nb + j] = bound;
          }
        }
        double blockScale;
        std::vector<double> blockRank =
            rankAcrossHeads(perHead, group, nb, blockScale);
        blockRank[0] = blockRank[nb - 1] =
            std::numeric_limits<double>::infinity();
        const std::vector<uint64_t> refBlocks =
            bestByRank(blockRank, c.policy.topBlocks);
        // Level 2 on `kept` blocks: the candidates and the kept entries.
        auto level2 = [&](const std::vector<uint64_t> &kept,
                          std::vector<uint64_t> &candidates,
                          std::vector<double> &rank, double &rankScale) {
          candidates.clear();
          for (uint64_t j : kept)
            for (uint64_t i = j * block;
                 i < std::min<uint64_t>(selectable, (j + 1) * block); ++i)
              candidates.push_back(i);
          if (candidates.size() <= c.policy.topTokens)
            return candidates;
          std::vector<double> scores(group * candidates.size());
          for (size_t i = 0; i < candidates.size(); ++i) {
            const std::vector<float> k =
                layer.read(true, sequences[b], g, candidates[i]);
            for (uint32_t h = 0; h < group; ++h) {
              double dot = 0;
              for (uint32_t x = 0; x < d; ++x)
                dot += double(prepared[h * d + x]) * k[x];
              scores[h * candidates.size() + i] = dot;
            }
          }
          rank = rankAcrossHeads(scores, group, candidates.size(), rankScale);
          std::vector<uint64_t> keptEntries;
          for (uint64_t i : bestByRank(rank, c.policy.topTokens))
            keptEntries.push_back(candidates[i]);
          return keptEntries;
        };
        std::vector<uint64_t> candidates;
        std::vector<double> entryRank;
        double entryScale = 0;
        const std::vector<uint64_t> refEntries =
            level2(refBlocks, candidates, entryRank, entryScale);
        std::vector<uint64_t> gpuBlocks;
        for (uint32_t i = 0; i < std::min(blockCounts[row], c.policy.topBlocks);
             ++i)
          gpuBlocks.push_back(
              uint64_t(uint32_t(blocks[size_t(row) * c.policy.topBlocks + i])));
        if (refEntries != cpuSet) {
          fault = "the float64 reference disagrees with selectEntries";
        } else if (blockCounts[row] > c.policy.topBlocks ||
                   !sameUpToTies(gpuBlocks, refBlocks, blockRank, blockScale,
                                 blockTies, why)) {
          fault = "blocks: " + why;
        } else {
          // Where level 1 kept other blocks (ties), judge level 2 on them.
          std::vector<uint64_t> expectedEntries = refEntries;
          if (gpuBlocks != refBlocks)
            expectedEntries =
                level2(gpuBlocks, candidates, entryRank, entryScale);
          if (candidates.size() <= c.policy.topTokens) {
            if (gpuEntries != expectedEntries)
              fault = "entries: not every candidate of the kept blocks";
          } else {
            // As positions among the candidates, where the ranks are.
            auto positionsOf = [&](const std::vector<uint64_t> &list) {
              std::vector<uint64_t> at;
              for (uint64_t e : list) {
                auto it =
                    std::lower_bound(candidates.begin(), candidates.end(), e);
                at.push_back(it != candidates.end() && *it == e
                                 ? uint64_t(it - candidates.begin())
                                 : std::numeric_limits<uint64_t>::max());
              }
              return at;
            };
            if (!sameUpToTies(positionsOf(gpuEntries),
                              positionsOf(expectedEntries), entryRank,
                              entryScale, entryTies, why))
              fault = "entries: " + why;
          }
        }
        same = gpuEntries == cpuSet;
      }
      if (!fault.empty()) {
        ok = false;
        std::printf("  row %u KV head %u: %s\n", b, g, fault.c_str());
        continue;
      }
      differing += !same;

      // Attention of the group's query rows.
      for (uint32_t h = 0; h < group; ++h) {
        const size_t at = (size_t(b) * c.qHeads + g * group + h) * d;
        std::vector<double> reference(expected.begin() + at,
                                      expected.begin() + at + d);
        // Beside exact tokens the device reads the newest token exact, as
        // the CPU does: cpu::attention is the reference where the
        // selections agree, and there is none where they differ by ties.
        if (c.keepsExact() && !same)
          continue;
        // (An empty row's reference is zeros.)
        if (c.lengths[b] > 0 && !c.keepsExact() &&
            (!same || c.entries != Entries::Bf16)) {
          std::vector<uint64_t> attended = gpuEntries;
          attended.push_back(c.lengths[b] - 1);
          std::vector<double> logits;
          std::vector<uint64_t> visible;
          for (uint64_t e : attended) {
            const int32_t position = cache.position(0, sequences[b], e);
            if (position > queryPositions[b] ||
                (c.slidingWindow &&
                 queryPositions[b] - position >= c.slidingWindow))
              continue;
            const std::vector<float> k = layer.read(true, sequences[b], g, e);
            double dot = 0;
            for (uint32_t x = 0; x < d; ++x)
              dot += double(prepared[h * d + x]) * k[x];
            logits.push_back(dot * scale);
            visible.push_back(e);
          }
          const double top = *std::max_element(logits.begin(), logits.end());
          double sum = 0;
          for (double &l : logits)
            sum += (l = std::exp(l - top));
          std::fill(reference.begin(), reference.end(), 0.0);
          for (size_t i = 0; i < visible.size(); ++i) {
            const std::vector<float> v =
                layer.read(false, sequences[b], g, visible[i]);
            for (uint32_t x = 0; x < d; ++x)
              reference[x] += logits[i] / sum * v[x];
          }
          std::vector<float> row(reference.begin(), reference.end());
          layer.value->finishOutput(row.data(), g);
          std::copy(row.begin(), row.end(), reference.begin());
        }
        double diff = 0, norm = 0;
        bool finite = true;
        for (uint32_t x = 0; x < d; ++x) {
          const double o = got[at + x], e = reference[x];
          finite &= std::isfinite(o);
          diff += (o - e) * (o - e);
          norm += e * e;
        }
        double error = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
        if (!finite)
          error = INFINITY;
        worst = std::max(worst, error);
        ok &= norm > 0 ? error <= kBound : diff == 0;
      }
    }
  totals.blockTies += blockTies;
  totals.entryTies += entryTies;
  totals.groups += int(rows);
  totals.groupsDiffering += differing;

  std::string lengths;
  for (uint32_t length : c.lengths)
    lengths += (lengths.empty() ? "" : ",") + std::to_string(length);
  std::printf(
      "%-4s %s B=%u len=[%s] Hq=%u Hkv=%u d=%u P=%u block=%u top=%u/%u%s%s "
      "| summaries %s | ties %d blocks %d entries, %d of %u sets "
      "differ | max rel err %.2e%s%s | chunks %u/%u, splits %u x %u%s\n",
      ok ? "ok" : "FAIL", entriesName(c.entries), batch, lengths.c_str(),
      c.qHeads, c.kvHeads, d, c.pageSize, block, c.policy.topBlocks,
      c.policy.topTokens, c.slidingWindow ? " window" : "",
      c.keepsExact() ? (" exact " + std::to_string(c.sinks) + "+" +
                        std::to_string(c.window))
                           .c_str()
                     : "",
      summaryMismatches || newestMismatches ? "DIFFER" : "equal", blockTies,
      entryTies, differing, rows, worst, repeatable ? "" : " | NOT REPEATABLE",
      offloadSame ? "" : " | OFFLOADED DIFFERS", plan.boundChunks,
      plan.scoreChunks, plan.splits, plan.splitEntries,
      plan.mergesInCluster ? " merged in clusters" : "");
  std::fflush(stdout);
  return ok;
}

} // namespace

int runSparseChecks(uint32_t multiprocessors) {
  const std::vector<Case> cases = {
      // Short rows (none, only the newest token, dense), group 4, d = 64.
      {{0, 1, 2, 5, 37, 300, 1000}, 8, 2, 64, 16, {16, 6, 96}},
      // Two levels, lengths not multiples of the block, d = 128.
      {{2000, 1501, 64}, 8, 2, 128, 64, {64, 5, 200}},
      // Quest: the kept blocks' entries are all attended.
      {{3000, 777}, 8, 2, 128, 64, {16, 8, 128}},
      // Group 3, a window that hides old entries.
      {{400, 129}, 6, 2, 64, 16, {8, 12, 50}, 150},
      // Group 8; group 1 with one block (the forced pair ties).
      {{900}, 8, 1, 128, 16, {16, 4, 40}},
      {{100, 333}, 4, 4, 64, 16, {16, 1, 10}},
      // Group 2, pages of 32.
      {{5000, 3000, 4100}, 4, 2, 128, 32, {32, 20, 300}},
      // The Llama-3-8B shape with the benchmark's policies.
      {{20000, 9000}, 32, 8, 128, 64, {64, 128, 2048}},
      {{12000, 5000}, 32, 8, 128, 64, {16, 128, 2048}},
      // Many blocks, 256 kept, 4096 entries.
      {{70000}, 8, 2, 128, 64, {32, 256, 4096}},
      // 186 x 64 candidates: the ranking's 46.5 KB of dynamic shared
      // memory passes 48 KB only with its static arrays (1.7 KB).
      {{13000}, 8, 2, 128, 64, {64, 186, 4096}},
      // fp8 e4m3: short rows and a window with the head's scale; the
      // Llama-3-8B shape with each slot's, both policies; pages of 32.
      {{0, 1, 2, 5, 37, 300, 1000},
       8,
       2,
       64,
       16,
       {16, 6, 96},
       0,
       Entries::Fp8PerHead},
      {{400, 129}, 6, 2, 64, 16, {8, 12, 50}, 150, Entries::Fp8PerHead},
      {{20000, 9000}, 32, 8, 128, 64, {64, 128, 2048}, 0, Entries::Fp8Dynamic},
      {{12000, 5000}, 32, 8, 128, 64, {16, 128, 2048}, 0, Entries::Fp8Dynamic},
      {{5000, 3000, 4100},
       4,
       2,
       128,
       32,
       {32, 20, 300},
       0,
       Entries::Fp8PerHead},
      // 4-bit polar: short rows, a window, the Llama-3-8B shape with both
      // policies.
      {{0, 1, 2, 5, 37, 300, 1000},
       8,
       2,
       64,
       16,
       {16, 6, 96},
       0,
       Entries::Polar4},
      {{400, 129}, 6, 2, 64, 16, {8, 12, 50}, 150, Entries::Polar4},
      {{20000, 9000}, 32, 8, 128, 64, {64, 128, 2048}, 0, Entries::Polar4},
      {{12000, 5000}, 32, 8, 128, 64, {16, 128, 2048}, 0, Entries::Polar4},
      // 3- and 2-bit polar: d = 64 (3 bits: a lane's 24 bits read byte by
      // byte) with a window, and the Llama-3-8B shape.
      {{400, 129}, 6, 2, 64, 16, {8, 12, 50}, 150, Entries::Polar3},
      {{20000, 9000}, 32, 8, 128, 64, {64, 128, 2048}, 0, Entries::Polar3},
      {{400, 129}, 6, 2, 64, 16, {8, 12, 50}, 150, Entries::Polar2},
      {{20000, 9000}, 32, 8, 128, 64, {64, 128, 2048}, 0, Entries::Polar2},
      // nvfp4: d = 64 (a lane's 8 coordinates half of a scale block) with a
      // window, and the Llama-3-8B shape with both policies.
      {{400, 129}, 6, 2, 64, 16, {8, 12, 50}, 150, Entries::Nvfp4},
      {{20000, 9000}, 32, 8, 128, 64, {64, 128, 2048}, 0, Entries::Nvfp4},
      {{12000, 5000}, 32, 8, 128, 64, {16, 128, 2048}, 0, Entries::Nvfp4},
      // Exact sinks and window beside the codes: rows that select, that
      // list every coded entry (70 tokens: 5 coded, 4 of them sinks) and
      // that code none (40, 5); a sliding window that hides the sinks;
      // sinks alone, a window alone; the Llama-3-8B shape with the
      // README's window of 128.
      {{3000, 1500, 70, 40, 5},
       8,
       2,
       128,
       16,
       {16, 8, 64},
       0,
       Entries::Polar4,
       4,
       64},
      {{2000, 300}, 8, 2, 64, 16, {16, 6, 96}, 150, Entries::Fp8Dynamic, 4, 32},
      {{1000, 129}, 6, 2, 64, 16, {8, 12, 50}, 0, Entries::Polar3, 4, 0},
      {{20000, 9000},
       32,
       8,
       128,
       64,
       {64, 128, 2048},
       0,
       Entries::Nvfp4,
       0,
       128},
      {{20000, 9000},
       32,
       8,
       128,
       64,
       {64, 128, 2048},
       0,
       Entries::Polar4,
       4,
       128},
  };
  int failures = 0;
  uint32_t seed = 1;
  Totals totals;
  // Each case with this device's plan, then (where that plan merges its
  // splits by a launch) with one that merges them in clusters.
  int runs = 0;
  for (bool inClusters : {false, true})
    for (const Case &c : cases)
      if (const std::optional<bool> passed =
              runCase(c, multiprocessors, inClusters, seed++, totals)) {
        ++runs;
        failures += *passed ? 0 : 1;
      }
  std::printf("sparse checks: %d of %d failed; ties at the cut (float64 "
              "ranks within %.0e): %d blocks, %d entries; %d of %d selections "
              "differ from the CPU's; attention bound %.0e relative per query "
              "row\n",
              failures, runs, kTie, totals.blockTies, totals.entryTies,
              totals.groupsDiffering, totals.groups, kBound);
  return failures;
}

} // namespace kvrt::cuda::test
