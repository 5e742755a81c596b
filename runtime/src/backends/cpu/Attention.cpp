//===- Attention.cpp - Appending to and attending over the paged cache ----===//
//
// Keys and values reach the cache through its tail and are encoded by the
// layer's codecs when they may leave it (see PagedCache.h). Attention scores
// a query against encoded entries through the key codec, in the codec's
// domain (a rotated one for polar: the query is rotated once, no entry is
// rotated back), and against tail entries as plain floats; values are
// accumulated likewise, the codec's part mapped out of its domain once.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Runtime.h"
#include "runtime/src/backends/cpu/Exp.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/sparse/BlockSummary.h"
#include "runtime/src/sparse/TwoLevel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace kvrt::cpu {
namespace {

/// What `codec` encodes for KV head `head` from one tail side at `offset`:
/// its groupTokens() tokens, `stride` floats apart.
struct CodecInput {
  const float *data;
  int64_t stride;
};

/// The head's vectors or, for a codec whose latent spans a group of heads,
/// each token's vectors of the group's heads one after another (copied to
/// `buffer`).
CodecInput codecInput(const Codec &codec,
                      const std::vector<std::vector<float>> &side,
                      uint32_t head, size_t offset,
                      std::vector<float> &buffer) {
  const uint32_t group = codec.groupHeads(), d = codec.headDim();
  if (group == 1)
    return {side[head].data() + offset, d};
  const size_t size = size_t(group) * d;
  buffer.resize(codec.groupTokens() * size);
  for (uint32_t t = 0; t < codec.groupTokens(); ++t)
    for (uint32_t j = 0; j < group; ++j)
      std::copy_n(side[head - head % group + j].data() + offset + t * d, d,
                  buffer.data() + t * size + j * d);
  return {buffer.data(), int64_t(size)};
}

/// Encodes flush group `group` of `tail` (whose first token is sequence
/// token `first`) for KV head `head`: each side encodes its own groups of
/// tokens (KIVI keys several at once, other codecs one by one).
void encodeGroup(PagedCache &cache, uint32_t layer, const CacheCodecs &codecs,
                 const std::vector<uint32_t> &pages, uint64_t first,
                 const Tail &tail, uint64_t group, uint32_t head) {
  const CacheLayerShape &shape = cache.shape(layer);
  thread_local std::vector<float> buffer;
  for (uint32_t t = 0; t < shape.flushGroup; ++t) {
    uint64_t tailIndex = group * shape.flushGroup + t;
    uint64_t index = first + tailIndex;
    Page &page = cache.page(layer, pages[index / shape.pageSize]);
    uint32_t slot = uint32_t(index % shape.pageSize);
    size_t offset = size_t(tailIndex) * shape.headDim;
    const Codec &keys = *codecs.key, &values = *codecs.value;
    if (t % keys.groupTokens() == 0) {
      CodecInput in = codecInput(keys, tail.keys, head, offset, buffer);
      keys.encodeAt(in.data, in.stride, head, slot,
                    page.positions.get() + shape.positionOffset(head) + slot,
                    keys.areaOf(page.keys.get(), head, shape.keyHeadBytes));
    }
    if (t % values.groupTokens() == 0) {
      CodecInput in = codecInput(values, tail.values, head, offset, buffer);
      values.encode(
          in.data, in.stride, head, slot,
          values.areaOf(page.values.get(), head, shape.valueHeadBytes));
    }
  }
}

/// A tail side as the f32 codec's page area.
const uint8_t *tailArea(const std::vector<float> &head) {
  return reinterpret_cast<const uint8_t *>(head.data());
}

/// Buffers one thread needs for attendGroup().
struct Scratch {
  /// One weight per query head of the group and visible entry.
  float *weights;
  /// The group's queries in the key codec's domain.
  float *prepared;
  /// Codec scratch.
  float *decoded;
  /// The group's output in the value codec's domain.
  float *accumulated;
  /// One softmax normaliser per query head of the group.
  float *inverse;

  /// `domain`: floats of codec scratch and of each accumulated row
  /// (domainSize()).
  static int64_t floats(int64_t group, int64_t stride, int64_t prepared,
                        int64_t domain) {
    return group * stride + group * prepared + domain + group * domain + group;
  }
  static Scratch carve(float *base, int64_t group, int64_t stride,
                       int64_t prepared, int64_t domain) {
    Scratch s;
    s.weights = base;
    s.prepared = s.weights + group * stride;
    s.decoded = s.prepared + group * prepared;
    s.accumulated = s.decoded + domain;
    s.inverse = s.accumulated + group * domain;
    return s;
  }
  /// The domain of a layer's codecs.
  static int64_t domain(const CacheCodecs &codecs) {
    return std::max(codecs.key->domainSize(), codecs.value->domainSize());
  }
};

/// Pages ahead of the one being read whose area of the head is asked for
/// ahead of use: a sequence's pages are separate allocations of a few KB,
/// too short for the hardware's prefetcher to follow (two cores,
/// 2026-12-05, `kvopt bench` of the default model at 3000 tokens: a decode
/// step 19.0-19.7 ms against 23.1-24.0 without; the bf16 decoder had been
/// a quarter of an evaluation's time, nearly all of it waiting on memory).
constexpr uint64_t kPagesAhead = 2;

/// Asks for `bytes` from `at` on ahead of use.
void prefetchBytes(const uint8_t *at, uint64_t bytes) {
  for (uint64_t line = 0; line < bytes; line += 64)
    __builtin_prefetch(at + line);
}

/// Asks for KV head `head`'s area (its group's, for a codec of groups) of
/// one side of a page whose areas start at `areas`, `stride` bytes apart.
void prefetchArea(const Codec &codec, const uint8_t *areas, uint32_t head,
                  uint64_t stride) {
  prefetchBytes(codec.areaOf(areas, head, stride), stride * codec.groupHeads());
}

/// Gathers the indices it is given, in increasing order, into runs of
/// consecutive ones: run(first, count) for each, the last when it goes out
/// of scope.
template <typename Run> class Runs {
public:
  explicit Runs(const Run &run) : run_(run) {}
  ~Runs() { flush(); }
  void add(uint64_t index) {
    if (count_ && first_ + count_ == index) {
      ++count_;
      return;
    }
    flush();
    first_ = index;
    count_ = 1;
  }
  void flush() {
    if (count_)
      run_(first_, count_);
    count_ = 0;
  }

private:
  const Run &run_;
  uint64_t first_ = 0, count_ = 0;
};

/// Visits the entries of `sequence` in `layer` that a query at `position`
/// sees in KV head `head`, in order, a run of consecutive ones at a time:
/// encoded entries by pageRun(page, slot, count, index), exact ones by
/// exactRun(store, slot, count, index), `store` the sinks (an encoded
/// entry below the layer's sinkTokens is kept exact there, at its index) or
/// the tail (at its index less the encoded count), which go on across
/// pages; `index` is the run's first entry's. With `selected`, only those
/// encoded entries (in index order; a selected block is a run) and the
/// tail. Reading every encoded entry, it calls prefetch(page) kPagesAhead
/// pages ahead.
template <typename PageRun, typename ExactRun, typename Prefetch>
void forVisible(const PagedCache &cache, const AttentionParams &params,
                uint64_t sequence, uint32_t head, int64_t position,
                const std::vector<uint64_t> *selected, const PageRun &pageRun,
                const ExactRun &exactRun, const Prefetch &prefetch) {
  uint32_t layer = params.layer;
  const CacheLayerShape &shape = cache.shape(layer);
  const uint64_t positions = shape.positionOffset(head);
  auto visible = [&](int32_t stored) {
    return stored <= position &&
           (!params.slidingWindow || position - stored < params.slidingWindow);
  };
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
  uint64_t encoded = cache.encoded(layer, sequence);
  const uint64_t sinks = std::min<uint64_t>(shape.sinkTokens, encoded);
  // Sinks come first in index order: their run ends before any page's.
  const Tail &sinkStore = cache.sinks(layer, sequence);
  auto inSinks = [&](uint64_t first, uint64_t count) {
    exactRun(sinkStore, first, count, first);
  };
  Runs<decltype(inSinks)> sinkRuns(inSinks);
  if (selected) {
    const Page *runPage = nullptr;
    uint64_t runPageStart = 0;
    auto inPage = [&](uint64_t first, uint64_t count) {
      pageRun(*runPage, uint32_t(first - runPageStart), uint32_t(count), first);
    };
    Runs<decltype(inPage)> runs(inPage);
    for (uint64_t index : *selected) {
      const Page &page = cache.page(layer, pages[index / shape.pageSize]);
      uint32_t slot = uint32_t(index % shape.pageSize);
      if (!visible(page.positions[positions + slot]))
        continue;
      if (index < sinks) {
        sinkRuns.add(index);
        continue;
      }
      sinkRuns.flush();
      if (&page != runPage)
        runs.flush();
      runPage = &page;
      runPageStart = index - slot;
      runs.add(index);
    }
  }
  const uint64_t encodedPages = (encoded + shape.pageSize - 1) / shape.pageSize;
  uint64_t prefetched = 0; // pages asked for: [0, prefetched)
  for (uint64_t index = 0; !selected && index < encoded;) {
    const uint64_t pageIndex = index / shape.pageSize;
    for (prefetched = std::max(prefetched, pageIndex + 1);
         prefetched <= pageIndex + kPagesAhead && prefetched < encodedPages;
         ++prefetched)
      prefetch(cache.page(layer, pages[prefetched]));
    const Page &page = cache.page(layer, pages[pageIndex]);
    const int32_t *stored = page.positions.get() + positions;
    const uint64_t pageStart = pageIndex * shape.pageSize;
    auto inPage = [&](uint64_t first, uint64_t count) {
      pageRun(page, uint32_t(first - pageStart), uint32_t(count), first);
    };
    Runs<decltype(inPage)> runs(inPage);
    for (uint32_t slot = uint32_t(index - pageStart);
         slot < shape.pageSize && index < encoded; ++slot, ++index) {
      if (!visible(stored[slot]))
        continue;
      if (index < sinks) {
        sinkRuns.add(index);
        continue;
      }
      sinkRuns.flush();
      runs.add(index);
    }
  }
  sinkRuns.flush();
  // Tail tokens have their positions in the pages too; read them through
  // `pages`, not the cache's sequence lookup: a prefill visits its whole
  // tail once per row.
  const Tail &tail = cache.tail(layer, sequence);
  const uint64_t end = encoded + tail.tokens();
  auto inTail = [&](uint64_t first, uint64_t count) {
    exactRun(tail, first - encoded, count, first);
  };
  Runs<decltype(inTail)> runs(inTail);
  for (uint64_t index = encoded; index < end;) {
    const Page &page = cache.page(layer, pages[index / shape.pageSize]);
    const int32_t *stored = page.positions.get() + positions;
    for (uint32_t slot = uint32_t(index % shape.pageSize);
         slot < shape.pageSize && index < end; ++slot, ++index)
      if (visible(stored[slot]))
        runs.add(index);
  }
}

/// The largest of n scores (-inf for none), in four running maxima: the
/// same value as one, since a maximum does not depend on the order.
float largest(const float *scores, int64_t n) {
  float best[4];
  std::fill_n(best, 4, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j)
      best[j] = std::max(best[j], scores[i + j]);
  for (; i < n; ++i)
    best[0] = std::max(best[0], scores[i]);
  return std::max(std::max(best[0], best[1]), std::max(best[2], best[3]));
}

/// Query heads whose softmax sums run side by side: independent chains of
/// additions.
constexpr int64_t kSummedTogether = 4;

/// The softmax of `heads` rows of n scores `stride` floats apart, in
/// place: exp(score - the row's maximum), and inverse[h] = 1 / the sum of
/// row h's (in double, in entry order).
void softmaxRows(float *weights, int64_t stride, int64_t heads, int64_t n,
                 float *inverse) {
  for (int64_t h = 0; h < heads; ++h) {
    float *w = weights + h * stride;
    expShifted(w, n, largest(w, n), w);
  }
  // Each head's sum in entry order, in a loop apart from the exponentials:
  // a sum kept across their calls waits on the stack.
  for (int64_t first = 0; first < heads; first += kSummedTogether) {
    const int64_t together = std::min(kSummedTogether, heads - first);
    double sums[kSummedTogether] = {};
    const float *w = weights + first * stride;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < together; ++h)
        sums[h] += w[h * stride + i];
    for (int64_t h = 0; h < together; ++h)
      inverse[first + h] = float(1.0 / sums[h]);
  }
}

/// Where a decode row's sparse selection goes: `entries` is filled, and
/// read, when the layer selects and the sequence is long enough.
struct RowSelection {
  sparse::SelectScratch scratch;
  std::vector<uint64_t> entries;
  bool active = false;
  /// Filled when params.record asks for runners-up.
  std::vector<uint64_t> runnerUpBlocks;
};

/// The softmax of the `group` query heads at `q` (one row, at `position`)
/// that share KV head `g` over the visible entries of `sequence` (those
/// params.select picks when `selection` is given), each entry read once for
/// the whole group; scores are kept in sequence order whatever the page
/// size, and the softmax subtracts their maximum. Leaves exp(score - max)
/// in scratch.weights[h * stride + i] for the i-th visible entry and 1 /
/// their sum in scratch.inverse[h].
VisibleEntries softmaxVisible(const PagedCache &cache,
                              const CacheCodecs &codecs,
                              const AttentionParams &params, uint64_t sequence,
                              uint32_t g, int64_t position, const float *q,
                              int64_t group, int64_t stride, Scratch scratch,
                              RowSelection *selection = nullptr) {
  const CacheLayerShape &shape = cache.shape(params.layer);
  int64_t headDim = shape.headDim;
  const Codec &keys = *codecs.key;
  int64_t preparedSize = keys.preparedQuerySize();
  for (int64_t h = 0; h < group; ++h)
    keys.prepareQuery(q + h * headDim, g, scratch.prepared + h * preparedSize);
  if (selection) {
    uint32_t runnersUp = params.record ? params.record->runnersUp : 0;
    selection->active = sparse::selectEntries(
        cache, params.layer, sequence, keys, g, scratch.prepared, preparedSize,
        group, params.select, selection->scratch, selection->entries, runnersUp,
        runnersUp ? &selection->runnerUpBlocks : nullptr);
  }
  const std::vector<uint64_t> *selected =
      selection && selection->active ? &selection->entries : nullptr;

  VisibleEntries entries;
  const uint64_t positions = shape.positionOffset(g);
  forVisible(
      cache, params, sequence, g, position, selected,
      [&](const Page &page, uint32_t slot, uint32_t count, uint64_t index) {
        if (!entries.count)
          entries.first = index;
        keys.scoreRun(scratch.prepared, group,
                      keys.areaOf(page.keys.get(), g, shape.keyHeadBytes), slot,
                      count, page.positions.get() + positions + slot,
                      params.scale, scratch.weights + entries.count, stride,
                      scratch.decoded);
        entries.count += count;
      },
      [&](const Tail &store, uint64_t slot, uint64_t count, uint64_t index) {
        if (!entries.count)
          entries.first = index;
        codecs.tail->scoreRun(q, group, tailArea(store.keys[g]), uint32_t(slot),
                              uint32_t(count), nullptr, params.scale,
                              scratch.weights + entries.count, stride,
                              scratch.decoded);
        entries.count += int64_t(count);
      },
      [&](const Page &page) {
        prefetchArea(keys, page.keys.get(), g, shape.keyHeadBytes);
      });
  softmaxRows(scratch.weights, stride, group, entries.count, scratch.inverse);
  return entries;
}

/// Attention of the `group` query heads at `q` (one row, at `position`)
/// that share KV head `g` over the visible entries of `sequence`. Leaves
/// the normalised weights in scratch.weights[h * stride + i] and returns
/// how many entries were visible.
int64_t attendGroup(const PagedCache &cache, const CacheCodecs &codecs,
                    const AttentionParams &params, uint64_t sequence,
                    uint32_t g, int64_t position, const float *q, int64_t group,
                    int64_t stride, Scratch scratch, float *out,
                    RowSelection *selection = nullptr) {
  const CacheLayerShape &shape = cache.shape(params.layer);
  int64_t headDim = shape.headDim;
  const Codec &values = *codecs.value;
  int64_t n = softmaxVisible(cache, codecs, params, sequence, g, position, q,
                             group, stride, scratch, selection)
                  .count;
  const std::vector<uint64_t> *selected =
      selection && selection->active ? &selection->entries : nullptr;

  // Rows of the value domain: headDim unless a group's latent is larger.
  const int64_t domain = values.domainSize();
  std::fill(out, out + group * headDim, 0.0f);
  std::fill(scratch.accumulated, scratch.accumulated + group * domain, 0.0f);
  // Exact entries go into the codec's sum when its domain is the plain one,
  // so the order of additions does not depend on what was still in the
  // tail.
  float *exactSums = values.rotates() ? out : scratch.accumulated;
  int64_t i = 0;
  forVisible(
      cache, params, sequence, g, position, selected,
      [&](const Page &page, uint32_t slot, uint32_t count, uint64_t) {
        values.accumulateRun(
            scratch.weights + i, stride, group,
            values.areaOf(page.values.get(), g, shape.valueHeadBytes), slot,
            count, scratch.accumulated, scratch.decoded);
        i += count;
      },
      [&](const Tail &store, uint64_t slot, uint64_t count, uint64_t) {
        codecs.tail->accumulateRun(scratch.weights + i, stride, group,
                                   tailArea(store.values[g]), uint32_t(slot),
                                   uint32_t(count), exactSums, scratch.decoded);
        i += int64_t(count);
      },
      [&](const Page &page) {
        prefetchArea(values, page.values.get(), g, shape.valueHeadBytes);
      });
  for (int64_t h = 0; n && h < group; ++h) {
    float *acc = scratch.accumulated + h * domain;
    if (values.rotates())
      values.finishOutput(acc, g);
    float *oh = out + h * headDim;
    for (int64_t d = 0; d < headDim; ++d)
      oh[d] = (oh[d] + acc[d]) * scratch.inverse[h];
    float *w = scratch.weights + h * stride;
    for (int64_t j = 0; j < n; ++j)
      w[j] *= scratch.inverse[h];
  }
  return n;
}

/// |top-k(a) & top-k(b)| over n weights; `order` holds 2n indices.
int64_t topKOverlap(const float *a, const float *b, int64_t n, int64_t k,
                    std::vector<int64_t> &order) {
  order.resize(size_t(2 * n));
  int64_t *ia = order.data(), *ib = ia + n;
  std::iota(ia, ia + n, 0);
  std::iota(ib, ib + n, 0);
  // Ties broken by index, so equal weights give the same sets.
  auto byWeight = [](const float *w) {
    return [w](int64_t x, int64_t y) {
      return w[x] > w[y] || (w[x] == w[y] && x < y);
    };
  };
  std::partial_sort(ia, ia + k, ia + n, byWeight(a));
  std::partial_sort(ib, ib + k, ib + n, byWeight(b));
  std::sort(ia, ia + k);
  std::sort(ib, ib + k);
  int64_t common = 0;
  for (int64_t x = 0, y = 0; x < k && y < k;) {
    if (ia[x] == ib[y]) {
      ++common, ++x, ++y;
    } else if (ia[x] < ib[y]) {
      ++x;
    } else {
      ++y;
    }
  }
  return common;
}

} // namespace

void summariseEntries(ThreadPool &pool, PagedCache &cache, uint32_t layer,
                      const Codec &keys, uint64_t sequence, uint64_t first,
                      uint64_t count) {
  const CacheLayerShape &shape = cache.shape(layer);
  pool.parallelFor(shape.kvHeads, 1, [&](int64_t begin, int64_t end, unsigned) {
    std::vector<float> scratch(3 * shape.headDim);
    for (int64_t head = begin; head < end; ++head)
      sparse::summarise(cache, layer, sequence, keys, uint32_t(head), first,
                        count, scratch.data());
  });
}

// One (flush group, head) per task.
void encodeTail(ThreadPool &pool, PagedCache &cache, uint32_t layer,
                const CacheCodecs &codecs, uint64_t sequence, uint64_t tokens) {
  const CacheLayerShape &shape = cache.shape(layer);
  const std::vector<uint32_t> &pages = cache.pages(layer, sequence);
  cache.flush(layer, sequence, tokens,
              [&](uint64_t first, uint64_t count, const Tail &tail) {
                int64_t groups = int64_t(count / shape.flushGroup);
                int64_t grain = std::max<int64_t>(
                    1, 4096 / (int64_t(shape.flushGroup) * shape.headDim));
                pool.parallelFor(
                    groups * shape.kvHeads, grain,
                    [&](int64_t begin, int64_t end, unsigned) {
                      for (int64_t task = begin; task < end; ++task) {
                        encodeGroup(cache, layer, codecs, pages, first, tail,
                                    uint64_t(task / shape.kvHeads),
                                    uint32_t(task % shape.kvHeads));
                      }
                    });
                if (shape.summaryBlock)
                  summariseEntries(pool, cache, layer, *codecs.key, sequence,
                                   first, count);
              });
}

void encodeTails(ThreadPool &pool, PagedCache &cache, uint32_t layer,
                 const CacheCodecs &codecs, const uint64_t *sequences,
                 int64_t count) {
  std::unordered_set<uint64_t> done;
  for (int64_t i = 0; i < count; ++i)
    if (done.insert(sequences[i]).second)
      encodeTail(pool, cache, layer, codecs, sequences[i],
                 cache.flushable(layer, sequences[i]));
}

void append(ThreadPool &pool, PagedCache &cache, uint32_t layer,
            const CacheCodecs &codecs, const float *keys, const float *values,
            int64_t rows, const uint64_t *sequences, const int32_t *positions) {
  const CacheLayerShape &shape = cache.shape(layer);
  encodeTails(pool, cache, layer, codecs, sequences, rows);

  int64_t width = int64_t(shape.kvHeads) * shape.headDim;
  std::vector<float> rounded(size_t(2 * width));
  auto maybeRound = [&](bool round, const float *row, float *buffer) {
    if (!round)
      return row;
    for (int64_t i = 0; i < width; ++i)
      buffer[i] = bf16ToFloat(floatToBf16(row[i]));
    return static_cast<const float *>(buffer);
  };
  for (int64_t r = 0; r < rows; ++r)
    cache.append(layer, sequences[r], positions[r],
                 maybeRound(codecs.roundKeys, keys + r * width, rounded.data()),
                 maybeRound(codecs.roundValues, values + r * width,
                            rounded.data() + width));
}

namespace {

/// A run of consecutive visible entries of one (row, KV head) group, where
/// attention reads them: `at` is the first one's index among the group's
/// weights.
struct EntryRun {
  const Codec *keys;
  const ColumnSums *values;
  const uint8_t *keyArea, *valueArea;
  /// Null for exact entries (sinks, tail).
  const int32_t *positions;
  uint32_t slot, count;
  int64_t at;
};

/// One (row, KV head) group of a spread attention and its buffers.
struct SpreadGroup {
  int64_t row = 0;
  uint32_t head = 0;
  int64_t entries = 0;
  std::vector<EntryRun> runs;
  std::vector<float> prepared, weights, sums;
  std::vector<float> inverse;
  /// Floats from one query head's weights to the next.
  int64_t stride() const { return std::max<int64_t>(entries, 1); }
};

/// Whether a call is spread (attentionSpread()): fewer groups than two per
/// thread, values summed by columns where they lie, no selection, probe or
/// record reading a group's results.
bool spreads(const AttentionParams &params, int64_t groups, unsigned threads,
             bool probe) {
  return threads > 1 && groups < 2 * int64_t(threads) &&
         !params.select.enabled() && !params.record && !probe &&
         params.codecs.value->columnSums() && params.codecs.tail->columnSums();
}

/// cpu::attention for calls of few groups (a decode step of one sequence
/// has as many as KV heads; two cores took three, one waiting a third of
/// the attention): each group's scores are split over tasks by runs of
/// entries, its softmax a task per query head, its value sums a task per
/// range of columns. Every score, weight and sum is computed as
/// attendGroup() computes it, in the same order: the same bits.
void attentionSpread(ThreadPool &pool, const AttentionParams &params,
                     const float *q, int64_t rows, int64_t qHeads,
                     const uint64_t *sequences, const int32_t *positions,
                     float *out) {
  const PagedCache &cache = *params.cache;
  const CacheLayerShape &shape = cache.shape(params.layer);
  const Codec &keys = *params.codecs.key;
  const int64_t kvHeads = shape.kvHeads, group = qHeads / kvHeads;
  const int64_t headDim = shape.headDim;
  const int64_t preparedSize = keys.preparedQuerySize();
  // Bound by reference: the pool's threads use the caller's buffers.
  static thread_local std::vector<SpreadGroup> callerGroups;
  static thread_local std::vector<std::vector<float>> callerDecoded;
  std::vector<SpreadGroup> &groups = callerGroups;
  std::vector<std::vector<float>> &decoded = callerDecoded;
  groups.resize(size_t(rows * kvHeads));
  for (int64_t u = 0; u < rows * kvHeads; ++u) {
    SpreadGroup &unit = groups[size_t(u)];
    unit.row = u / kvHeads;
    unit.head = uint32_t(u % kvHeads);
    unit.runs.clear();
    const float *qg = q + (unit.row * qHeads + unit.head * group) * headDim;
    unit.prepared.resize(size_t(group * preparedSize));
    for (int64_t h = 0; h < group; ++h)
      keys.prepareQuery(qg + h * headDim, unit.head,
                        unit.prepared.data() + h * preparedSize);
    const uint64_t positionsAt = shape.positionOffset(unit.head);
    int64_t at = 0;
    forVisible(
        cache, params, sequences[unit.row], unit.head, positions[unit.row],
        nullptr,
        [&](const Page &page, uint32_t slot, uint32_t count, uint64_t) {
          unit.runs.push_back(
              {&keys, params.codecs.value->columnSums(),
               keys.areaOf(page.keys.get(), unit.head, shape.keyHeadBytes),
               params.codecs.value->areaOf(page.values.get(), unit.head,
                                           shape.valueHeadBytes),
               page.positions.get() + positionsAt + slot, slot, count, at});
          at += count;
        },
        [&](const Tail &store, uint64_t slot, uint64_t count, uint64_t) {
          unit.runs.push_back({params.codecs.tail,
                               params.codecs.tail->columnSums(),
                               tailArea(store.keys[unit.head]),
                               tailArea(store.values[unit.head]), nullptr,
                               uint32_t(slot), uint32_t(count), at});
          at += int64_t(count);
        },
        [](const Page &) {});
    unit.entries = at;
    unit.weights.resize(size_t(group * unit.stride()));
    unit.sums.assign(size_t(group * headDim), 0.0f);
    unit.inverse.resize(size_t(group));
  }
  const int64_t units = rows * kvHeads;
  const int64_t threads = pool.size();
  decoded.resize(size_t(threads));
  for (std::vector<float> &d : decoded)
    d.resize(
        size_t(std::max(keys.domainSize(), params.codecs.value->domainSize())));

  // Scores: each group's runs in `parts` tasks of about equal entries.
  const int64_t parts = (2 * threads + units - 1) / units;
  pool.run(size_t(units * parts), [&](size_t task, unsigned thread) {
    SpreadGroup &unit = groups[task / size_t(parts)];
    const int64_t part = int64_t(task % size_t(parts));
    const int64_t from = unit.entries * part / parts,
                  to = unit.entries * (part + 1) / parts;
    const float *qg = q + (unit.row * qHeads + unit.head * group) * headDim;
    for (size_t i = 0; i < unit.runs.size(); ++i) {
      const EntryRun &run = unit.runs[i];
      if (run.at < from || run.at >= to)
        continue;
      if (i + kPagesAhead < unit.runs.size())
        prefetchBytes(unit.runs[i + kPagesAhead].keyArea, shape.keyHeadBytes);
      // Exact entries are scored from the query as it is (softmaxVisible).
      run.keys->scoreRun(run.positions ? unit.prepared.data() : qg, group,
                         run.keyArea, run.slot, run.count, run.positions,
                         params.scale, unit.weights.data() + run.at,
                         unit.stride(), decoded[thread].data());
    }
  });
  // The softmax, a task per query head of each group.
  pool.run(size_t(units * group), [&](size_t task, unsigned) {
    SpreadGroup &unit = groups[task / size_t(group)];
    const int64_t h = int64_t(task % size_t(group));
    softmaxRows(unit.weights.data() + h * unit.stride(), unit.stride(), 1,
                unit.entries, unit.inverse.data() + h);
  });
  // The value sums, each group's columns in runs of sixteen.
  const int64_t columns = (headDim + 15) / 16;
  pool.run(size_t(units * columns), [&](size_t task, unsigned) {
    SpreadGroup &unit = groups[task / size_t(columns)];
    const uint32_t begin = uint32_t(task % size_t(columns)) * 16;
    const uint32_t end = std::min<uint32_t>(begin + 16, uint32_t(headDim));
    for (size_t i = 0; i < unit.runs.size(); ++i) {
      const EntryRun &run = unit.runs[i];
      if (i + kPagesAhead < unit.runs.size())
        prefetchBytes(unit.runs[i + kPagesAhead].valueArea,
                      shape.valueHeadBytes);
      run.values->accumulateRunColumns(
          unit.weights.data() + run.at, unit.stride(), group, run.valueArea,
          run.slot, run.count, begin, end, unit.sums.data());
    }
    // attendGroup()'s (out + sums) * inverse with out zeroed: 0 + a sum
    // turns a -0 into +0 as it does.
    float *og = out + (unit.row * qHeads + unit.head * group) * headDim;
    for (int64_t h = 0; h < group; ++h)
      for (uint32_t d = begin; d < end; ++d)
        og[h * headDim + d] =
            unit.entries
                ? (0.0f + unit.sums[h * headDim + d]) * unit.inverse[size_t(h)]
                : 0.0f;
  });
}

} // namespace

void attention(ThreadPool &pool, const AttentionParams &params, const float *q,
               int64_t rows, int64_t qHeads, const uint64_t *sequences,
               const int32_t *positions, float *out,
               std::vector<std::vector<float>> &scratch, FidelityProbe *probe) {
  const PagedCache &cache = *params.cache;
  const CacheLayerShape &shape = cache.shape(params.layer);
  int64_t kvHeads = shape.kvHeads, group = qHeads / kvHeads;
  int64_t headDim = shape.headDim;
  if (spreads(params, rows * kvHeads, pool.size(), probe))
    return attentionSpread(pool, params, q, rows, qHeads, sequences, positions,
                           out);
  uint64_t longest = 0;
  for (int64_t r = 0; r < rows; ++r) {
    longest = std::max(longest, cache.length(params.layer, sequences[r]));
    // The bf16 copy is not evicted from, so it may be longer.
    if (probe)
      longest =
          std::max(longest, probe->cache->length(params.layer, sequences[r]));
  }
  int64_t stride = int64_t(longest);
  int64_t prepared = params.codecs.key->preparedQuerySize();
  int64_t perCache =
      Scratch::floats(group, stride, prepared, Scratch::domain(params.codecs));
  // With a probe, a second set of buffers for the reference cache (bf16
  // codecs: prepared queries of headDim floats) and its output.
  int64_t perThread =
      probe ? perCache + Scratch::floats(group, stride, headDim, headDim) +
                  group * headDim
            : perCache;
  scratch.resize(pool.size());
  for (std::vector<float> &s : scratch)
    s.resize(size_t(perThread));
  // Decode rows are those whose sequence has no other row in the batch;
  // only they select sparsely and are compared by the probe. A prefill's
  // rows attend densely to their own tail, which the codecs have not
  // touched yet.
  const bool selects = params.select.enabled();
  if (params.record)
    params.record->rows.assign(size_t(rows * kvHeads), {});
  std::vector<bool> decodeRow;
  if (probe)
    probe->beginCall(pool.size(), rows * kvHeads);
  if (probe || selects) {
    std::unordered_map<uint64_t, int64_t> rowsOf;
    for (int64_t r = 0; r < rows; ++r)
      ++rowsOf[sequences[r]];
    for (int64_t r = 0; r < rows; ++r)
      decodeRow.push_back(rowsOf[sequences[r]] == 1);
  }
  int64_t work = group * stride * headDim;
  int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, work));

  // A prefill's later rows see more entries: the chunks are handed out
  // from the last rows back, so that the cheapest come last and even out
  // the threads' ends.
  const int64_t tasks = rows * kvHeads;
  pool.parallelFor(
      tasks, grain, [&](int64_t first, int64_t last, unsigned thread) {
        float *base = scratch[thread].data();
        Scratch buffers = Scratch::carve(base, group, stride, prepared,
                                         Scratch::domain(params.codecs));
        for (int64_t task = tasks - last; task < tasks - first; ++task) {
          int64_t r = task / kvHeads, g = task % kvHeads;
          int64_t offset = (r * qHeads + g * group) * headDim;
          // Reused by this pool thread from call to call.
          static thread_local RowSelection selection;
          bool sparse = selects && decodeRow[size_t(r)];
          int64_t n =
              attendGroup(cache, params.codecs, params, sequences[r],
                          uint32_t(g), positions[r], q + offset, group, stride,
                          buffers, out + offset, sparse ? &selection : nullptr);
          if (params.record && sparse && selection.active) {
            SelectionRecord::Row &row = params.record->rows[size_t(task)];
            row.selected = true;
            row.entries = selection.entries;
            row.runnerUpBlocks = selection.runnerUpBlocks;
          }
          if (!probe || !decodeRow[size_t(r)])
            continue;
          Scratch reference =
              Scratch::carve(base + perCache, group, stride, headDim, headDim);
          float *referenceOut =
              base + perCache +
              Scratch::floats(group, stride, headDim, headDim);
          int64_t referenceN =
              attendGroup(*probe->cache, probe->layerCodecs[params.layer],
                          params, sequences[r], uint32_t(g), positions[r],
                          q + offset, group, stride, reference, referenceOut);
          probe->record(thread, task, group, headDim, n, referenceN, stride,
                        out + offset, referenceOut, buffers.weights,
                        reference.weights);
        }
      });
  if (probe)
    probe->endCall(params.layer);
}

int64_t attentionWeightsScratch(const AttentionParams &params, int64_t group,
                                int64_t stride) {
  return Scratch::floats(group, stride, params.codecs.key->preparedQuerySize(),
                         Scratch::domain(params.codecs));
}

VisibleEntries attentionWeights(const AttentionParams &params,
                                uint64_t sequence, uint32_t kvHead,
                                int32_t position, const float *q, int64_t group,
                                int64_t stride, float *scratch) {
  Scratch s = Scratch::carve(scratch, group, stride,
                             params.codecs.key->preparedQuerySize(),
                             Scratch::domain(params.codecs));
  VisibleEntries entries =
      softmaxVisible(*params.cache, params.codecs, params, sequence, kvHead,
                     position, q, group, stride, s);
  for (int64_t h = 0; h < group; ++h)
    for (int64_t i = 0; i < entries.count; ++i)
      s.weights[h * stride + i] *= s.inverse[h];
  return entries;
}

void reportAttention(ThreadPool &pool, const AttentionParams &params,
                     const float *q, int64_t rows, int64_t qHeads,
                     const uint64_t *sequences, const int32_t *positions,
                     AppendObserver &observer) {
  const PagedCache &cache = *params.cache;
  const CacheLayerShape &shape = cache.shape(params.layer);
  const int64_t kvHeads = shape.kvHeads, group = qHeads / kvHeads;
  uint64_t longest = 0;
  for (int64_t r = 0; r < rows; ++r)
    longest = std::max(longest, cache.length(params.layer, sequences[r]));
  const int64_t stride = int64_t(longest);
  const int64_t perTask = attentionWeightsScratch(params, group, stride);
  // A chunk's weights are held at once: about 16 MB of them at most.
  const int64_t chunk = std::max<int64_t>(
      1, (int64_t(1) << 22) / std::max<int64_t>(1, kvHeads * perTask));
  std::vector<float> scratch;
  std::vector<VisibleEntries> visible;
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t tasks = std::min(chunk, rows - begin) * kvHeads;
    scratch.resize(size_t(tasks * perTask));
    visible.resize(size_t(tasks));
    pool.parallelFor(tasks, 1, [&](int64_t first, int64_t last, unsigned) {
      for (int64_t task = first; task < last; ++task) {
        int64_t r = begin + task / kvHeads, g = task % kvHeads;
        visible[size_t(task)] =
            attentionWeights(params, sequences[r], uint32_t(g), positions[r],
                             q + (r * qHeads + g * group) * shape.headDim,
                             group, stride, scratch.data() + task * perTask);
      }
    });
    std::vector<float> weights;
    for (int64_t task = 0; task < tasks; ++task) {
      int64_t r = begin + task / kvHeads, g = task % kvHeads;
      const VisibleEntries &v = visible[size_t(task)];
      // attentionWeights() leaves head h's weights at h * stride.
      weights.resize(size_t(group * v.count));
      for (int64_t h = 0; h < group; ++h)
        std::copy_n(scratch.data() + task * perTask + h * stride, v.count,
                    weights.data() + h * v.count);
      observer.onAttention(params.layer, sequences[r], positions[r],
                           uint32_t(g), weights.data(), group, v.first,
                           v.count);
    }
  }
}

void FidelityProbe::beginCall(unsigned threads, int64_t tasks) {
  perTask_.assign(size_t(tasks), {});
  order_.resize(threads);
}

void FidelityProbe::record(unsigned thread, int64_t task, int64_t group,
                           int64_t headDim, int64_t visible,
                           int64_t referenceVisible, int64_t stride,
                           const float *out, const float *reference,
                           const float *weights,
                           const float *referenceWeights) {
  Totals &t = perTask_[size_t(task)];
  int64_t k = std::min<int64_t>(topK, visible);
  for (int64_t h = 0; h < group; ++h) {
    double error = 0, norm = 0;
    for (int64_t d = 0; d < headDim; ++d) {
      double o = out[h * headDim + d], ref = reference[h * headDim + d];
      error += (o - ref) * (o - ref);
      norm += ref * ref;
    }
    t.queries += 1;
    t.relativeError += norm > 0 ? std::sqrt(error / norm) : 0.0;
    if (visible != referenceVisible)
      continue;
    t.overlapQueries += 1;
    t.overlap += k ? double(topKOverlap(weights + h * stride,
                                        referenceWeights + h * stride, visible,
                                        k, order_[thread])) /
                         double(k)
                   : 1.0;
  }
}

void FidelityProbe::endCall(uint32_t layer) {
  if (layers.size() <= layer)
    layers.resize(layer + 1);
  for (const Totals &t : perTask_) {
    layers[layer].queries += t.queries;
    layers[layer].relativeError += t.relativeError;
    layers[layer].overlap += t.overlap;
    layers[layer].overlapQueries += t.overlapQueries;
  }
}

} // namespace kvrt::cpu
