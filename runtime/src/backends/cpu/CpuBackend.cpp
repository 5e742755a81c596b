//===- CpuBackend.cpp - Running a plan with the CPU kernels ---------------===//
//
// Weights stored as f32 are used in place from the mapped file; f16 and
// bf16 weights are converted to f32 once, when the backend is created. That
// doubles their memory but keeps every inner loop a plain f32 multiply-add:
// the CPU backend is the exact reference for small models, where that
// memory does not matter. Weights in a ggml block format (q4_1, ...) stay
// in it, in the mapped file: the linear and embedding kernels decode them
// as they read them, so a step reads their bytes, not four per value.
//
//===----------------------------------------------------------------------===//
#include "kvrt/Sampling.h"
#include "runtime/src/artifact/Plan.h"
#include "runtime/src/backends/cpu/Eviction.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cpu/ThreadPool.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/PagedCache.h"
#include "runtime/src/engine/Backend.h"
#include "runtime/src/engine/PlanSteps.h"
#include "runtime/src/engine/SideCodec.h"
#include "runtime/src/offload/LayerOffload.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_map>

namespace kvrt {
namespace {

/// A plan step with what the CPU kernels need resolved.
struct Step : PlanStep {
  /// Weight, and bias of linear; f32.
  const float *weight = nullptr;
  /// linear, lm_head and embedding: the weight as the artifact holds it.
  cpu::WeightView matrix;
  const float *bias = nullptr;
  /// rms_norm: the normalised dimension.
  float epsilon = 0;
  cpu::RopeFrequencies rope;
  /// rope: the layer whose attention queries or appended keys it rotates,
  /// and which; -1 when it feeds neither directly.
  int64_t ropeLayer = -1;
  RopeInput ropeInput = RopeInput::Query;
  cpu::AttentionParams attention;
  cpu::LayerEviction *eviction = nullptr;
  /// prefetch: the layer's schedule.
  struct OffloadedLayer *offload = nullptr;
};

/// An offloaded layer: its schedule, what its attention selected (in
/// blocks of `block` entries).
struct OffloadedLayer {
  offload::LayerOffload schedule;
  cpu::SelectionRecord selection;
  uint32_t block = 0;
};

/// One layer's cache: its shape and the codecs that fill it.
struct LayerStorage {
  CacheLayerShape shape;
  std::vector<std::unique_ptr<Codec>> owned;
  cpu::CacheCodecs codecs;
};

class CpuBackend final : public Backend {
public:
  CpuBackend(std::shared_ptr<const Artifact> artifact,
             const EngineOptions &options, std::vector<LayerStorage> layers,
             std::vector<LayerStorage> referenceLayers);

  Status prepare();

  Status addSequence(SequenceId sequence) override;
  StatusOr<SharedPrefix> forkSequence(SequenceId from, SequenceId sequence,
                                      uint64_t tokens) override;
  uint64_t forkGranularity() const override;
  void removeSequence(SequenceId sequence) override {
    cache_.removeSequence(sequence);
    for (const std::unique_ptr<cpu::LayerEviction> &e : evictions_)
      e->removeSequence(sequence);
    if (reference_)
      reference_->removeSequence(sequence);
  }
  Status forward(const BatchView &batch, float *logits) override;
  /// Runs `layer`'s offload schedule after its attention over the batch.
  Status runOffload(OffloadedLayer &layer, const uint64_t *sequences,
                    int64_t rows);
  CacheStats cacheStats() const override {
    CacheStats stats{cache_.bytesPerToken(), cache_.bytesInUse(),
                     cache_.peakBytes(), cache_.capacityTokens()};
    for (const std::unique_ptr<cpu::LayerEviction> &e : evictions_) {
      stats.compactions += e->compactions();
      stats.evictedEntries += e->evictedEntries();
    }
    for (const std::unique_ptr<OffloadedLayer> &o : offloads_) {
      const CacheLayerShape &shape = cache_.shape(o->schedule.layer());
      offload::addCounts(o->schedule.counts(),
                         shape.keyHeadBytes + shape.valueHeadBytes,
                         stats.offload);
    }
    return stats;
  }
  StatusOr<std::vector<std::vector<int32_t>>>
  cachedPositions(SequenceId sequence, uint32_t layer) const override {
    const uint64_t length = cache_.length(layer, sequence);
    std::vector<std::vector<int32_t>> out(cache_.shape(layer).kvHeads);
    for (uint32_t h = 0; h < out.size(); ++h)
      for (uint64_t i = 0; i < length; ++i)
        out[h].push_back(cache_.position(layer, sequence, i, h));
    return out;
  }
  std::vector<LayerFidelity> fidelity() const override;
  void resetFidelity() override { probe_.layers.clear(); }

private:
  /// Whether sequences may share pages (forkSequence()).
  bool sharesPages() const;
  StatusOr<const float *> weight(uint32_t tensor);
  /// The eviction of an evict call whose queries `queries` come from the
  /// rope step `rope`, after the layer's attention `attention`.
  StatusOr<std::unique_ptr<cpu::LayerEviction>>
  makeEviction(const schema::KernelCall &call, const Step &rope,
               const cpu::AttentionParams &attention);

  std::shared_ptr<const Artifact> artifact_;
  AppendObserver *observer_;
  cpu::ThreadPool pool_;
  std::vector<LayerStorage> layers_;
  PagedCache cache_;
  /// The bf16 copy of the cache that measureFidelity compares with.
  std::vector<LayerStorage> referenceLayers_;
  std::unique_ptr<PagedCache> reference_;
  cpu::FidelityProbe probe_;
  /// f32 copies of f16 and bf16 weights, by tensor index.
  std::unordered_map<uint32_t, std::vector<float>> converted_;
  std::vector<Step> steps_;
  std::vector<std::unique_ptr<cpu::LayerEviction>> evictions_;
  /// By layer.
  std::vector<std::unique_ptr<OffloadedLayer>> offloads_;
  std::vector<std::vector<float>> buffers_;
  std::vector<int64_t> bufferWidth_;
  std::vector<float> logitInputs_;
  std::vector<std::vector<float>> scratch_;
};

std::vector<CacheLayerShape> shapesOf(const std::vector<LayerStorage> &layers) {
  std::vector<CacheLayerShape> shapes;
  for (const LayerStorage &l : layers)
    shapes.push_back(l.shape);
  return shapes;
}

CpuBackend::CpuBackend(std::shared_ptr<const Artifact> artifact,
                       const EngineOptions &options,
                       std::vector<LayerStorage> layers,
                       std::vector<LayerStorage> referenceLayers)
    : artifact_(std::move(artifact)), observer_(options.observer),
      pool_(options.threads), layers_(std::move(layers)),
      cache_(shapesOf(layers_)), referenceLayers_(std::move(referenceLayers)) {
  if (referenceLayers_.empty())
    return;
  reference_ = std::make_unique<PagedCache>(shapesOf(referenceLayers_));
  probe_.cache = reference_.get();
  probe_.topK = options.fidelityTopK;
  for (const LayerStorage &l : referenceLayers_)
    probe_.layerCodecs.push_back(l.codecs);
}

Status CpuBackend::addSequence(SequenceId sequence) {
  KVRT_RETURN_IF_ERROR(cache_.addSequence(sequence));
  if (reference_)
    return reference_->addSequence(sequence);
  return Status::ok();
}

bool CpuBackend::sharesPages() const {
  // Eviction moves kept entries within a sequence's pages and offload
  // tracks each sequence's pages apart, so neither shares; nor does the
  // bf16 copy that measures fidelity, which would have to share alike.
  return evictions_.empty() && offloads_.empty() && !reference_;
}

uint64_t CpuBackend::forkGranularity() const {
  if (!sharesPages())
    return 0;
  // Pages hold at most 65536 tokens, so the product stays below 2^48;
  // past 2^32 tokens no prefix fills a common multiple anyway.
  uint64_t granularity = 1;
  for (const LayerStorage &l : layers_) {
    granularity = std::lcm(granularity, uint64_t(l.shape.pageSize));
    if (granularity > (uint64_t(1) << 32))
      return 0;
  }
  return granularity;
}

StatusOr<SharedPrefix> CpuBackend::forkSequence(SequenceId from,
                                                SequenceId sequence,
                                                uint64_t tokens) {
  if (!sharesPages()) {
    KVRT_RETURN_IF_ERROR(addSequence(sequence));
    return SharedPrefix{};
  }
  // The source's last tokens wait in its tail until its next call encodes
  // them before anything reads them; encoding them now changes nothing it
  // reads and lets the fork share them.
  for (uint32_t l = 0; l < layers_.size(); ++l)
    cpu::encodeTail(pool_, cache_, l, layers_[l].codecs, from,
                    cache_.flushable(l, from));
  const uint64_t shared = cache_.shareableTokens(from, tokens);
  if (shared == 0) {
    KVRT_RETURN_IF_ERROR(addSequence(sequence));
    return SharedPrefix{};
  }
  KVRT_RETURN_IF_ERROR(cache_.share(from, sequence, shared));
  return SharedPrefix{shared,
                      int64_t(cache_.position(0, from, shared - 1)) + 1};
}

std::vector<LayerFidelity> CpuBackend::fidelity() const {
  std::vector<LayerFidelity> result;
  if (!reference_)
    return result;
  for (uint32_t l = 0; l < layers_.size(); ++l) {
    LayerFidelity f;
    f.layer = l;
    if (l < probe_.layers.size() && probe_.layers[l].queries) {
      const cpu::FidelityProbe::Totals &t = probe_.layers[l];
      f.queries = t.queries;
      f.outputRelativeError = t.relativeError / double(t.queries);
      f.topKOverlap = t.overlapQueries
                          ? t.overlap / double(t.overlapQueries)
                          : std::numeric_limits<double>::quiet_NaN();
    }
    result.push_back(f);
  }
  return result;
}

StatusOr<const float *> CpuBackend::weight(uint32_t tensor) {
  const schema::Tensor &t = artifact_->manifest().tensors(int(tensor));
  StatusOr<ByteView> bytes = artifact_->tensorData(tensor);
  if (!bytes)
    return bytes.status();
  if (t.dtype() == schema::DTYPE_F32)
    return reinterpret_cast<const float *>(bytes->data);
  auto found = converted_.find(tensor);
  if (found != converted_.end())
    return found->second.data();
  std::vector<float> &out = converted_[tensor];
  uint64_t count = 1;
  for (int64_t d : t.shape())
    count *= uint64_t(d);
  out.resize(count);
  decodeValues(t.dtype(), bytes->data, count, out.data());
  return out.data();
}

Status CpuBackend::prepare() {
  PlanSteps plan = planSteps(artifact_->manifest().plan());
  bufferWidth_ = plan.bufferWidths;
  buffers_.resize(bufferWidth_.size());
  // Layer -> its attention step, which an evict call follows.
  std::unordered_map<uint32_t, size_t> attentionOf;
  // The RoPE calls of each layer's queries and keys.
  auto tagRope = [&](int64_t producer, uint32_t layer, RopeInput input) {
    if (producer == kNoStep)
      return;
    Step &rope = steps_[size_t(producer)];
    if (rope.kernel == Kernel::Rope && rope.ropeLayer < 0) {
      rope.ropeLayer = layer;
      rope.ropeInput = input;
    }
  };
  for (const PlanStep &planned : plan.steps) {
    Step step;
    static_cast<PlanStep &>(step) = planned;
    const schema::KernelCall &call = *planned.call;
    // The validator allows block formats only for these kernels' weights.
    const schema::DType dtype =
        call.tensors().empty()
            ? schema::DTYPE_F32
            : artifact_->manifest().tensors(int(call.tensors(0))).dtype();
    if (dtypeBlockElements(dtype) > 1) {
      StatusOr<ByteView> bytes = artifact_->tensorData(call.tensors(0));
      if (!bytes)
        return bytes.status();
      step.matrix = {bytes->data, dtype};
    } else if (!call.tensors().empty()) {
      StatusOr<const float *> w = weight(call.tensors(0));
      if (!w)
        return w.status();
      step.weight = *w;
      step.matrix = {*w, schema::DTYPE_F32};
    }
    if (call.tensors_size() > 1) {
      StatusOr<const float *> b = weight(call.tensors(1));
      if (!b)
        return b.status();
      step.bias = *b;
    }
    switch (step.kernel) {
    case Kernel::RmsNorm:
      step.epsilon = float(call.rms_norm().epsilon());
      step.dim = artifact_->manifest().tensors(int(call.tensors(0))).shape(0);
      break;
    case Kernel::Rope:
      step.rope = cpu::ropeFrequencies(call.rope().rope(), step.dim);
      break;
    case Kernel::Append:
      step.attention.layer = call.append().layer();
      step.attention.codecs = layers_[call.append().layer()].codecs;
      tagRope(step.producers[0], call.append().layer(), RopeInput::Key);
      break;
    case Kernel::Attention: {
      const schema::AttentionParams &a = call.attention();
      step.attention.cache = &cache_;
      step.attention.layer = a.layer();
      step.attention.codecs = layers_[a.layer()].codecs;
      step.attention.scale = float(a.scale());
      step.attention.slidingWindow =
          a.has_sliding_window() ? a.sliding_window() : 0;
      if (a.has_select())
        step.attention.select = {a.select().block(), a.select().top_blocks(),
                                 a.select().top_tokens()};
      tagRope(step.producers[0], a.layer(), RopeInput::Query);
      attentionOf[a.layer()] = steps_.size();
      break;
    }
    case Kernel::Evict: {
      uint32_t layer = call.evict().layer();
      auto attention = attentionOf.find(layer);
      int64_t queries = step.producers[0];
      std::string where = artifact_->name() + ": the evict call of layer " +
                          std::to_string(layer);
      if (attention == attentionOf.end())
        return Status::error(where + " comes before the layer's attention");
      if (queries == kNoStep || steps_[size_t(queries)].kernel != Kernel::Rope)
        return Status::error(where +
                             " reads queries that no rope call produced");
      const cpu::AttentionParams &params = steps_[attention->second].attention;
      if (params.codecs.key->groupTokens() > 1)
        return Status::error(
            where + " evicts from a cache whose keys are encoded " +
            std::to_string(params.codecs.key->groupTokens()) +
            " tokens at a time (KIVI int), so one token cannot leave its "
            "group; evict with keys in bf16, fp8, nvfp4 or polar");
      if (params.slidingWindow)
        return Status::error(where + " evicts from a sliding-window layer, "
                                     "which this runtime does not support");
      if (call.evict().heads() == schema::EVICT_HEADS_EACH &&
          std::max(params.codecs.key->groupHeads(),
                   params.codecs.value->groupHeads()) > 1)
        return Status::error(
            where + " evicts per KV head from a cache whose low-rank latent "
                    "is shared by a group of KV heads, which must keep the "
                    "same entries; evict with heads shared");
      StatusOr<std::unique_ptr<cpu::LayerEviction>> eviction =
          makeEviction(call, steps_[size_t(queries)], params);
      if (!eviction)
        return eviction.status();
      step.eviction = eviction->get();
      evictions_.push_back(std::move(*eviction));
      break;
    }
    case Kernel::Prefetch: {
      const schema::PrefetchParams &p = call.prefetch();
      auto attention = attentionOf.find(p.layer());
      // The artifact's validation guarantees a selecting attention before.
      cpu::AttentionParams &params = steps_[attention->second].attention;
      const CacheLayerShape &shape = cache_.shape(p.layer());
      uint64_t devicePages =
          p.has_device_pages()
              ? p.device_pages()
              : uint64_t(
                    std::ceil(p.device_ratio() * double(shape.capacityPages) *
                              shape.kvHeads));
      auto offloaded = std::make_unique<OffloadedLayer>(OffloadedLayer{
          offload::LayerOffload(p.layer(), shape.kvHeads,
                                std::max<uint64_t>(devicePages, 1),
                                params.select.topBlocks),
          {},
          params.select.block});
      offloaded->selection.runnersUp = p.runners_up();
      params.record = &offloaded->selection;
      step.offload = offloaded.get();
      offloads_.push_back(std::move(offloaded));
      break;
    }
    default:
      break;
    }
    steps_.push_back(std::move(step));
  }
  return Status::ok();
}

StatusOr<std::unique_ptr<cpu::LayerEviction>>
CpuBackend::makeEviction(const schema::KernelCall &call, const Step &rope,
                         const cpu::AttentionParams &attention) {
  cpu::EvictionParams params;
  params.plan = call.evict();
  params.rope = rope.rope;
  if (params.plan.method() == schema::EVICT_METHOD_TRIATTENTION) {
    // Validated: f32 [H, d/2, 2] and [H, d/2].
    const schema::Tensor &centre =
        artifact_->manifest().tensors(int(call.tensors(0)));
    int64_t heads = centre.shape(0), half = centre.shape(1);
    StatusOr<const float *> c = weight(call.tensors(0));
    if (!c)
      return c.status();
    StatusOr<const float *> m = weight(call.tensors(1));
    if (!m)
      return m.status();
    for (int64_t h = 0; h < heads; ++h) {
      evict::QueryCentre q;
      for (int64_t f = 0; f < half; ++f) {
        q.re.push_back((*c)[(h * half + f) * 2]);
        q.im.push_back((*c)[(h * half + f) * 2 + 1]);
        q.magnitude.push_back((*m)[h * half + f]);
      }
      params.centres.push_back(std::move(q));
    }
  }
  return std::make_unique<cpu::LayerEviction>(std::move(params), attention);
}

Status CpuBackend::runOffload(OffloadedLayer &layer, const uint64_t *sequences,
                              int64_t rows) {
  const uint32_t index = layer.schedule.layer();
  const CacheLayerShape &shape = cache_.shape(index);
  offload::LayerCall call;
  call.pageSize = shape.pageSize;
  // Sequences in order of first appearance, with the first of their rows.
  std::vector<uint64_t> ids, firstRows;
  std::unordered_map<uint64_t, size_t> seen;
  for (int64_t r = 0; r < rows; ++r) {
    auto [it, inserted] = seen.emplace(sequences[r], ids.size());
    if (inserted) {
      ids.push_back(sequences[r]);
      firstRows.push_back(uint64_t(r));
      call.sequences.push_back({cache_.length(index, sequences[r]), 0, false});
    }
    ++call.sequences[it->second].rows;
  }
  const std::vector<cpu::SelectionRecord::Row> &selected = layer.selection.rows;
  for (size_t s = 0; s < ids.size(); ++s)
    call.sequences[s].selected =
        selected[size_t(firstRows[s]) * shape.kvHeads].selected;
  call.pageKey = [&](size_t s, uint64_t p, uint32_t h) {
    const uint32_t page = cache_.pages(index, ids[s])[p];
    return offload::pageKey(page, h, cache_.page(index, page).generation);
  };
  call.pagesOf = [&](size_t s, uint32_t h, std::vector<uint64_t> &read,
                     std::vector<uint64_t> &predicted) {
    const cpu::SelectionRecord::Row &row =
        selected[size_t(firstRows[s]) * shape.kvHeads + h];
    for (uint64_t entry : row.entries)
      read.push_back(entry / shape.pageSize);
    for (uint64_t b : row.runnerUpBlocks)
      predicted.push_back(b * layer.block / shape.pageSize);
  };
  return layer.schedule.run(call);
}

Status CpuBackend::forward(const BatchView &batch, float *logits) {
  std::vector<std::pair<uint64_t, uint64_t>> counts;
  std::unordered_map<SequenceId, size_t> index;
  for (size_t r = 0; r < batch.rows; ++r) {
    auto [it, inserted] = index.emplace(batch.sequences[r], counts.size());
    if (inserted)
      counts.push_back({batch.sequences[r], 0});
    ++counts[it->second].second;
  }
  // Before anything is stored: the batch must fit the offload budgets.
  uint64_t decodeRows =
      uint64_t(std::count_if(counts.begin(), counts.end(),
                             [](const auto &c) { return c.second == 1; }));
  for (const std::unique_ptr<OffloadedLayer> &o : offloads_)
    KVRT_RETURN_IF_ERROR(o->schedule.admit(decodeRows));
  KVRT_RETURN_IF_ERROR(cache_.reserve(counts));
  if (reference_) {
    Status reserved = reference_->reserve(counts);
    if (!reserved)
      return Status::cacheFull("the bf16 copy kept to measure fidelity: " +
                               reserved.message());
  }
  int64_t rows = int64_t(batch.rows);
  for (size_t b = 0; b < buffers_.size(); ++b)
    buffers_[b].resize(size_t(rows * bufferWidth_[b]));

  for (const Step &s : steps_) {
    auto in = [&](int i) { return buffers_[s.inputs[i]].data(); };
    float *out = s.output == kNoBuffer ? nullptr : buffers_[s.output].data();
    switch (s.kernel) {
    case Kernel::Embedding:
      cpu::embedding(pool_, s.matrix, s.outputWidth, batch.tokens, rows, out);
      break;
    case Kernel::RmsNorm:
      cpu::rmsNorm(pool_, in(0), rows * s.inputWidth / s.dim, s.dim, s.weight,
                   s.epsilon, out);
      break;
    case Kernel::Linear:
      cpu::linear(pool_, in(0), rows, s.inputWidth, s.matrix, s.outputWidth,
                  s.bias, out);
      break;
    case Kernel::Reshape:
      break;
    case Kernel::Rope:
      if (observer_ && s.ropeLayer >= 0)
        observer_->onPreRope(
            uint32_t(s.ropeLayer), s.ropeInput, in(0), rows, s.heads, s.dim,
            s.rope.interleaved ? RopePairing::Interleaved : RopePairing::Half);
      cpu::rope(pool_, s.rope, in(0), rows, s.heads, s.dim, batch.positions,
                out);
      break;
    case Kernel::Append:
      if (observer_)
        observer_->onAppend(s.attention.layer, in(0), in(1), rows, s.heads,
                            s.dim);
      cpu::append(pool_, cache_, s.attention.layer, s.attention.codecs, in(0),
                  in(1), rows, batch.sequences, batch.positions);
      if (reference_)
        cpu::append(pool_, *reference_, s.attention.layer,
                    probe_.layerCodecs[s.attention.layer], in(0), in(1), rows,
                    batch.sequences, batch.positions);
      break;
    case Kernel::Attention:
      cpu::attention(pool_, s.attention, in(0), rows, s.heads, batch.sequences,
                     batch.positions, out, scratch_,
                     reference_ ? &probe_ : nullptr);
      if (observer_ && observer_->wantsAttention())
        cpu::reportAttention(pool_, s.attention, in(0), rows, s.heads,
                             batch.sequences, batch.positions, *observer_);
      break;
    case Kernel::Evict:
      KVRT_RETURN_IF_ERROR(s.eviction->run(pool_, cache_, in(0), rows, s.heads,
                                           batch.sequences, batch.positions));
      break;
    case Kernel::Prefetch:
      KVRT_RETURN_IF_ERROR(runOffload(*s.offload, batch.sequences, rows));
      break;
    case Kernel::SwiGLU:
      cpu::swiglu(pool_, in(0), in(1), rows * s.inputWidth, out);
      break;
    case Kernel::Add:
      cpu::add(pool_, in(0), in(1), rows * s.inputWidth, out);
      break;
    case Kernel::LMHead: {
      // Only the rows whose logits are wanted: in decode, all of them; in
      // prefill, usually one per sequence.
      const std::vector<uint32_t> &wanted = *batch.logitRows;
      logitInputs_.resize(wanted.size() * size_t(s.inputWidth));
      for (size_t i = 0; i < wanted.size(); ++i)
        std::copy_n(in(0) + wanted[i] * s.inputWidth, s.inputWidth,
                    logitInputs_.data() + i * s.inputWidth);
      cpu::linear(pool_, logitInputs_.data(), int64_t(wanted.size()),
                  s.inputWidth, s.matrix, s.outputWidth, nullptr, logits);
      if (batch.greedy)
        for (size_t i = 0; i < wanted.size(); ++i)
          batch.greedy[i] =
              greedyToken(logits + i * s.outputWidth, size_t(s.outputWidth));
      break;
    }
    }
  }
  return Status::ok();
}

/// The codecs and page shape of one layout with keys and values stored as
/// `key` and `value`.
StatusOr<LayerStorage>
layerStorage(const Artifact &artifact, const schema::CacheLayout &c,
             const schema::Encoding &key, const schema::Encoding &value,
             const EngineOptions &options, uint64_t tokens) {
  LayerStorage layer;
  const Codec *made[2];
  const schema::Encoding *encodings[2] = {&key, &value};
  for (int i = 0; i < 2; ++i) {
    StatusOr<SideCodec> side = makeSideCodec(
        artifact, c, *encodings[i], i ? CacheSide::Value : CacheSide::Key);
    if (!side)
      return side.status();
    made[i] = side->codec.get();
    layer.owned.push_back(std::move(side->codec));
  }
  CodecContext context;
  context.layer = c.layer();
  context.kvHeads = c.kv_heads();
  context.headDim = c.head_dim();
  schema::Encoding f32;
  f32.set_kind(schema::ENCODING_F32);
  StatusOr<std::unique_ptr<Codec>> tail = makeCodec(f32, context);
  if (!tail)
    return tail.status();
  layer.codecs = {made[0], made[1], tail->get(),
                  key.kind() != schema::ENCODING_F32,
                  value.kind() != schema::ENCODING_F32};
  layer.owned.push_back(std::move(*tail));

  CacheLayerShape &s = layer.shape;
  s.kvHeads = c.kv_heads();
  s.headDim = c.head_dim();
  s.flushGroup = std::lcm(made[0]->groupTokens(), made[1]->groupTokens());
  s.pageSize = pageSizeFor(*made[0], *made[1],
                           options.pageSize ? options.pageSize : c.page_size());
  s.keyHeadBytes = made[0]->headBytes(s.pageSize);
  s.valueHeadBytes = made[1]->headBytes(s.pageSize);
  // A group's latent is spread over the areas of its heads.
  layer.owned[0]->setAreaStride(s.keyHeadBytes);
  layer.owned[1]->setAreaStride(s.valueHeadBytes);
  for (const schema::Encoding *e : encodings)
    if (e->kind() == schema::ENCODING_INT ||
        e->kind() == schema::ENCODING_LOWRANK ||
        e->kind() == schema::ENCODING_POLAR ||
        e->kind() == schema::ENCODING_FP8 ||
        e->kind() == schema::ENCODING_NVFP4) {
      s.tailWindow = std::max(s.tailWindow, e->residual());
      s.sinkTokens = std::max(s.sinkTokens, e->sinks());
    }
  s.capacityPages = (tokens + s.pageSize - 1) / s.pageSize;
  return layer;
}

} // namespace

StatusOr<std::unique_ptr<Backend>>
createCpuBackend(std::shared_ptr<const Artifact> artifact,
                 const EngineOptions &options) {
  const schema::Manifest &m = artifact->manifest();
  const std::string &name = artifact->name();
  const std::string &target = m.target().name();
  // The CPU backend is the oracle of the GPU backends, so it runs their
  // artifacts too.
  if (target != "cpu" && target != "h100" && target != "h200")
    return Status::error(name + ": target \"" + target +
                         "\" cannot run on the cpu backend, which runs cpu, "
                         "h100 and h200 artifacts");
  if (options.pageSize > (1u << 16))
    return Status::error("EngineOptions::pageSize is " +
                         std::to_string(options.pageSize) +
                         "; it must be at most 65536");
  uint64_t tokens = options.cacheTokens
                        ? options.cacheTokens
                        : 4 * uint64_t(m.model().max_positions());
  // Layers whose attention selects keep block summaries.
  std::unordered_map<uint32_t, uint32_t> summaryBlock;
  // Layers whose eviction selects per KV head keep positions per head.
  std::unordered_set<uint32_t> headPositions;
  for (const schema::KernelCall &call : m.plan().calls()) {
    if (call.has_attention() && call.attention().has_select())
      summaryBlock[call.attention().layer()] =
          call.attention().select().block();
    if (call.has_evict() && call.evict().heads() == schema::EVICT_HEADS_EACH)
      headPositions.insert(call.evict().layer());
  }
  std::vector<LayerStorage> layers, referenceLayers;
  for (const schema::CacheLayout &c : m.cache()) {
    StatusOr<LayerStorage> layer =
        layerStorage(*artifact, c, c.key(), c.value(), options, tokens);
    if (!layer)
      return layer.status();
    if (auto block = summaryBlock.find(c.layer());
        block != summaryBlock.end()) {
      if (layer->shape.pageSize % block->second != 0)
        return Status::error(
            name + ": layer " + std::to_string(c.layer()) +
            " selects blocks of " + std::to_string(block->second) +
            " entries but its pages hold " +
            std::to_string(layer->shape.pageSize) +
            "; choose a page size (EngineOptions::pageSize) that is a "
            "multiple of the block");
      layer->shape.summaryBlock = block->second;
    }
    layer->shape.headPositions = headPositions.count(c.layer()) != 0;
    layers.push_back(std::move(*layer));
    if (options.measureFidelity) {
      schema::Encoding bf16;
      bf16.set_kind(schema::ENCODING_BF16);
      StatusOr<LayerStorage> reference =
          layerStorage(*artifact, c, bf16, bf16, options, tokens);
      if (!reference)
        return reference.status();
      referenceLayers.push_back(std::move(*reference));
    }
  }
  auto backend = std::make_unique<CpuBackend>(
      artifact, options, std::move(layers), std::move(referenceLayers));
  KVRT_RETURN_IF_ERROR(backend->prepare());
  return std::unique_ptr<Backend>(std::move(backend));
}

} // namespace kvrt
