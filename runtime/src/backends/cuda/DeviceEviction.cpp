//===- DeviceEviction.cpp - The plan's evict calls on the GPU -------------===//
#include "runtime/src/backends/cuda/DeviceEviction.h"
#include "kvrt/Artifact.h"
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/DeviceKvPool.h"
#include "runtime/src/backends/cuda/PageLedger.h"
#include "runtime/src/evict/Schedule.h"
#include "runtime/src/evict/Scores.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>

namespace kvrt::cuda {
namespace {

const char *methodName(schema::EvictMethod method) {
  switch (method) {
  case schema::EVICT_METHOD_TRIATTENTION:
    return "TriAttention";
  case schema::EVICT_METHOD_SNAPKV:
    return "SnapKV";
  case schema::EVICT_METHOD_H2O:
    return "H2O";
  default:
    return "StreamingLLM";
  }
}

/// The f32 values of tensor `index`.
StatusOr<std::vector<float>> floats(const Artifact &artifact, uint32_t index) {
  StatusOr<ByteView> bytes = artifact.tensorData(index);
  if (!bytes)
    return bytes.status();
  if (artifact.manifest().tensors(int(index)).dtype() != schema::DTYPE_F32)
    return Status::error(artifact.name() + ": TriAttention's centres must be "
                                           "f32");
  std::vector<float> values(bytes->size / 4);
  std::memcpy(values.data(), bytes->data, values.size() * 4);
  return values;
}

/// Makes `buffer` hold at least `bytes`, reallocated (its contents lost)
/// when it is smaller; `what` names it in the error. Returns whether it
/// moved.
StatusOr<bool> reserve(DeviceBuffer &buffer, size_t bytes, const char *what) {
  if (buffer.size() >= bytes)
    return false;
  buffer = DeviceBuffer();
  StatusOr<DeviceBuffer> made = DeviceBuffer::allocate(bytes);
  if (!made)
    return Status::error(std::string(what) + ": " + made.status().message());
  buffer = std::move(*made);
  return true;
}

EvictScoring scoring(schema::EvictMethod method) {
  switch (method) {
  case schema::EVICT_METHOD_TRIATTENTION:
    return EvictScoring::TriAttention;
  case schema::EVICT_METHOD_SNAPKV:
    return EvictScoring::SnapKv;
  case schema::EVICT_METHOD_H2O:
    return EvictScoring::H2o;
  default:
    return EvictScoring::Streaming;
  }
}

} // namespace

Status checkUniformEviction(const std::vector<EvictCall> &calls,
                            const std::vector<uint32_t> &cacheLayers) {
  std::vector<uint32_t> evicting;
  for (const EvictCall &c : calls)
    evicting.push_back(c.plan.layer());
  std::sort(evicting.begin(), evicting.end());
  std::vector<uint32_t> all = cacheLayers;
  std::sort(all.begin(), all.end());
  const char *why = "the cuda backend keeps one page list and length per "
                    "sequence for all layers, so every cache layer must "
                    "evict by the same method, budget, window, sinks, "
                    "interval and heads; ";
  if (evicting != all)
    return Status::error(std::string(why) + "this artifact evicts from " +
                         std::to_string(evicting.size()) + " of its " +
                         std::to_string(all.size()) + " cache layers");
  for (const EvictCall &c : calls) {
    schema::EvictParams a = c.plan, b = calls.front().plan;
    a.set_layer(0);
    b.set_layer(0);
    if (a.SerializeAsString() != b.SerializeAsString())
      return Status::error(std::string(why) + "layers " +
                           std::to_string(calls.front().plan.layer()) +
                           " and " + std::to_string(c.plan.layer()) +
                           " evict differently");
  }
  return Status::ok();
}

std::vector<EvictSequence>
dueCompactions(const schema::EvictParams &plan,
               const std::vector<EvictCallSequence> &call,
               std::unordered_map<uint64_t, uint64_t> &seen) {
  std::vector<EvictSequence> due;
  for (const EvictCallSequence &s : call) {
    uint64_t &tokens = seen[s.sequence];
    tokens += s.appended;
    if (!evict::compactionDue(plan, s.length, tokens, s.appended))
      continue;
    // Every entry is in the pages (no tail): the window is the selection's.
    const evict::KeptLayout layout =
        evict::keptLayout(s.length, evict::selectionFor(plan, tokens));
    EvictSequence e;
    e.tableRow = s.tableRow;
    e.length = int32_t(s.length);
    e.queryPosition = s.lastPosition;
    e.sinks = int32_t(layout.sinks);
    e.recentStart = int32_t(layout.recentStart);
    e.free = int32_t(layout.free);
    e.kept = int32_t(layout.kept(s.length));
    due.push_back(e);
  }
  return due;
}

std::vector<int32_t>
observedRowMarks(const uint64_t *rowSequences, uint32_t rows, uint32_t observe,
                 const std::function<uint32_t(uint64_t)> &slotOf) {
  // A sequence's rows come in the order of their positions.
  std::unordered_map<uint64_t, uint32_t> remaining;
  for (uint32_t r = 0; r < rows; ++r)
    ++remaining[rowSequences[r]];
  std::vector<int32_t> marks(rows, -1);
  for (uint32_t r = 0; r < rows; ++r)
    if (remaining[rowSequences[r]]-- <= observe)
      marks[r] = int32_t(slotOf(rowSequences[r]));
  return marks;
}

std::vector<double> triAttentionCentreValues(
    const std::vector<float> &centres, const std::vector<float> &magnitudes,
    const cpu::RopeFrequencies &rope, const std::vector<double> &distances,
    size_t heads, size_t half) {
  std::vector<double> values(3 * heads * half + 3 * half);
  double *re = values.data(), *im = re + heads * half;
  double *spread = im + heads * half, *frequency = spread + heads * half;
  double *meanRe = frequency + half, *meanIm = meanRe + half;
  for (size_t i = 0; i < heads * half; ++i) {
    re[i] = centres[2 * i];
    im[i] = centres[2 * i + 1];
    spread[i] = double(magnitudes[i]) - std::hypot(re[i], im[i]);
  }
  for (size_t f = 0; f < half; ++f) {
    frequency[f] = rope.inverse[f];
    std::tie(meanRe[f], meanIm[f]) =
        evict::distanceMean(frequency[f], distances);
  }
  return values;
}

TriAttentionCentres triAttentionCentresView(const double *base, size_t heads,
                                            size_t half,
                                            const cpu::RopeFrequencies &rope) {
  return {base,
          base + heads * half,
          base + 2 * heads * half,
          base + 3 * heads * half,
          base + 3 * heads * half + half,
          base + 3 * heads * half + 2 * half,
          rope.attentionFactor,
          rope.interleaved};
}

StatusOr<std::unique_ptr<DeviceEviction>>
DeviceEviction::create(const Artifact &artifact, std::vector<EvictCall> calls,
                       const std::vector<DeviceLayerSpec> &layers,
                       const std::vector<uint32_t> &cacheLayers) {
  const std::string &name = artifact.name();
  KVRT_RETURN_IF_ERROR(checkUniformEviction(calls, cacheLayers));
  std::unique_ptr<DeviceEviction> eviction(new DeviceEviction());
  std::sort(calls.begin(), calls.end(),
            [](const EvictCall &a, const EvictCall &b) {
              return a.plan.layer() < b.plan.layer();
            });
  for (EvictCall &call : calls) {
    const uint32_t l = call.plan.layer();
    const std::string where =
        name + ": the evict call of layer " + std::to_string(l);
    const schema::EvictMethod method = call.plan.method();
    if (l >= layers.size())
      return Status::error(where + " names no cache layer");
    const DeviceLayerSpec &spec = layers[l];
    if (call.slidingWindow)
      return Status::error(where + " evicts from a sliding-window layer, "
                                   "which this runtime does not support");
    if (spec.keepsExact())
      return Status::error(
          where + " evicts from a cache that keeps tokens exact beside "
                  "their codes (sinks, window or KIVI's residual), which "
                  "the cuda backend does not compact yet; run it on the cpu "
                  "backend, or quantize without sinks and window for the GPU");
    if (spec.offloaded || spec.summaryBlock)
      return Status::error(where + " evicts from a layer that " +
                           (spec.offloaded ? "is offloaded"
                                           : "selects "
                                             "sparsely") +
                           ", which the cuda backend does not combine with "
                           "eviction yet; run it on the cpu backend");
    for (const DeviceSideLayout *side : {&spec.key, &spec.value})
      if (!evictCompacts(*side))
        return Status::error(where + " evicts from a cache whose " +
                             (side == &spec.key ? "keys" : "values") +
                             " are not one fixed-size entry per token "
                             "(KIVI), which cannot be compacted per token");
    if (method != schema::EVICT_METHOD_STREAMING &&
        !evictScoresRead(spec.key.kind))
      return Status::error(
          where + " scores " +
          (spec.key.kind == DeviceSideLayout::Kind::LatentKey
               ? "low-rank keys by " + std::string(methodName(method)) +
                     ", which needs them rebuilt and rotated to their "
                     "positions"
               : "polar-encoded keys by " + std::string(methodName(method)) +
                     ", which needs them rotated back to the model's "
                     "basis") +
          " and is not written for the GPU; run it on the cpu backend, or "
          "store keys in bf16, fp8 or nvfp4 for the GPU");
    if (method == schema::EVICT_METHOD_SNAPKV) {
      const uint32_t group = uint32_t(call.qHeads) / spec.kvHeads;
      if (Status fits = snapKvFits(group, call.plan.observe(), spec.headDim);
          !fits.isOk())
        return Status::error(where + ": " + fits.message());
      eviction->observe_ = call.plan.observe();
      eviction->queryWidth_ =
          std::max(eviction->queryWidth_, uint32_t(call.qHeads) * spec.headDim);
    }
    if (method == schema::EVICT_METHOD_H2O) {
      const uint32_t group = uint32_t(call.qHeads) / spec.kvHeads;
      if (Status fits = h2oFits(group, spec.headDim); !fits.isOk())
        return Status::error(where + ": " + fits.message());
      eviction->accumulates_ = true;
    }
    if (eviction->kvHeads_ && eviction->kvHeads_ != spec.kvHeads)
      return Status::error(where + ": the cuda backend evicts from layers "
                                   "of one KV head count");
    eviction->kvHeads_ = spec.kvHeads;
    eviction->headDim_ = std::max(eviction->headDim_, spec.headDim);
    Layer layer;
    if (method == schema::EVICT_METHOD_TRIATTENTION) {
      StatusOr<std::vector<float>> c = floats(artifact, call.centres);
      if (!c)
        return c.status();
      StatusOr<std::vector<float>> m = floats(artifact, call.magnitudes);
      if (!m)
        return m.status();
      const size_t half = spec.headDim / 2, heads = size_t(call.qHeads);
      if (c->size() != heads * half * 2 || m->size() != heads * half ||
          call.rope.inverse.size() != half)
        return Status::error(where + ": its centres are not [" +
                             std::to_string(heads) + ", " +
                             std::to_string(half) + ", 2]");
      const std::vector<double> values = triAttentionCentreValues(
          *c, *m, call.rope, evict::futureDistances(call.plan), heads, half);
      StatusOr<DeviceBuffer> buffer =
          DeviceBuffer::allocate(values.size() * sizeof(double));
      if (!buffer)
        return buffer.status();
      KVRT_RETURN_IF_ERROR(
          buffer->upload(values.data(), values.size() * sizeof(double)));
      layer.centres = std::move(*buffer);
      layer.view = triAttentionCentresView(layer.centres.as<double>(), heads,
                                           half, call.rope);
    }
    layer.headDim = spec.headDim;
    layer.call = std::move(call);
    eviction->layers_.push_back(std::move(layer));
  }
  return eviction;
}

uint64_t DeviceEviction::pageBytes() const {
  // Positions, and H2O's mass beside them.
  return uint64_t(layers_.size()) * kvHeads_ *
         (sizeof(int32_t) + (accumulates_ ? sizeof(float) : 0));
}

Status DeviceEviction::allocate(uint32_t capacityPages, uint32_t pageSize) {
  pageSize_ = pageSize;
  layerStride_ = uint64_t(capacityPages) * kvHeads_ * pageSize;
  const uint64_t entries = std::max<uint64_t>(1, layers_.size() * layerStride_);
  StatusOr<DeviceBuffer> made = DeviceBuffer::allocate(entries * 4);
  if (!made)
    return Status::error("the evicting layers' positions: " +
                         made.status().message());
  positions_ = std::move(*made);
  if (accumulates_) {
    // Every slot's mass is zeroed as a token is stored there.
    StatusOr<DeviceBuffer> mass = DeviceBuffer::allocate(entries * 4);
    if (!mass)
      return Status::error("H2O's accumulated attention: " +
                           mass.status().message());
    mass_ = std::move(*mass);
  }
  return Status::ok();
}

Status DeviceEviction::storePositions(const int32_t *slots,
                                      const int32_t *positions, uint32_t rows,
                                      cudaStream_t stream) {
  return storeHeadPositions(positions_.as<int32_t>(),
                            accumulates_ ? mass_.as<float>() : nullptr,
                            layerStride_, uint32_t(layers_.size()), kvHeads_,
                            pageSize_, slots, positions, rows, stream);
}

size_t DeviceEviction::layerIndex(uint32_t layer) const {
  size_t l = 0;
  while (l < layers_.size() && layers_[l].call.plan.layer() != layer)
    ++l;
  return l;
}

EvictLaunch DeviceEviction::layerLaunch(size_t l, const DeviceKvPool &pool,
                                        const int32_t *pageTables,
                                        uint32_t pageTableStride) const {
  const Layer &layer = layers_[l];
  const DeviceKvPool::Layer &pages = pool.layer(layer.call.plan.layer());
  EvictLaunch launch;
  launch.cache.key = pages.spec.key;
  launch.cache.value = pages.spec.value;
  launch.cache.keys = pages.keys();
  launch.cache.values = pages.values();
  launch.cache.pageTables = pageTables;
  launch.cache.pageTableStride = pageTableStride;
  launch.cache.pageSize = pool.pageSize();
  launch.cache.kvHeads = pages.spec.kvHeads;
  launch.cache.headDim = pages.spec.headDim;
  launch.positions = positions_.as<int32_t>() + l * layerStride_;
  if (accumulates_)
    launch.mass = mass_.as<float>() + l * layerStride_;
  launch.qHeads = uint32_t(layer.call.qHeads);
  launch.scale = layer.call.scale;
  return launch;
}

StatusOr<std::vector<std::pair<uint64_t, uint64_t>>>
DeviceEviction::afterCall(const std::vector<EvictCallSequence> &call,
                          DeviceKvPool &pool, const int32_t *pageTables,
                          uint32_t pageTableStride, cudaStream_t stream) {
  const schema::EvictParams &plan = layers_.front().call.plan;
  std::vector<EvictSequence> due = dueCompactions(plan, call, seen_);
  std::vector<std::pair<uint64_t, uint64_t>> compacted;
  if (due.empty())
    return compacted;
  uint32_t maxLength = 0, maxKept = 0;
  for (EvictSequence &s : due) {
    maxLength = std::max(maxLength, uint32_t(s.length));
    maxKept = std::max(maxKept, uint32_t(s.kept));
    for (const EvictCallSequence &c : call)
      if (c.tableRow == s.tableRow) {
        compacted.push_back({c.sequence, uint64_t(s.kept)});
        if (observes())
          s.observedRow = int32_t(observing_.at(c.sequence));
      }
  }
  const size_t sequenceBytes = due.size() * sizeof(EvictSequence);
  if (sequences_.size() < sequenceBytes) {
    StatusOr<DeviceBuffer> made = DeviceBuffer::allocate(sequenceBytes);
    if (!made)
      return made.status();
    sequences_ = std::move(*made);
  }
  EvictLaunch shape;
  shape.count = uint32_t(due.size());
  shape.maxLength = maxLength;
  shape.maxKept = maxKept;
  shape.cache.kvHeads = kvHeads_;
  shape.cache.headDim = headDim_;
  shape.scoring = scoring(plan.method());
  shape.standardisedMax = plan.combine() == schema::EVICT_COMBINE_ZMAX;
  shape.observe = observe_;
  for (const Layer &layer : layers_)
    shape.qHeads = std::max(shape.qHeads, uint32_t(layer.call.qHeads));
  if (StatusOr<bool> moved = reserve(workspace_, evictWorkspaceBytes(shape),
                                     "the eviction's workspace");
      !moved)
    return moved.status();
  // Pageable memory: the copy is done when the call returns.
  if (cudaError_t e =
          cudaMemcpyAsync(sequences_.get(), due.data(), sequenceBytes,
                          cudaMemcpyHostToDevice, stream))
    return cudaFailed("copying the compactions to the device", e);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer &layer = layers_[l];
    EvictLaunch launch = layerLaunch(l, pool, pageTables, pageTableStride);
    launch.sequences = sequences_.as<EvictSequence>();
    launch.count = uint32_t(due.size());
    launch.maxLength = maxLength;
    launch.maxKept = maxKept;
    launch.scoring = shape.scoring;
    launch.standardisedMax = shape.standardisedMax;
    launch.centres = layer.view;
    if (observes()) {
      const size_t places = size_t(l) * ringRows_ * observe_;
      launch.observed = ring_.as<float>() + places * queryWidth_;
      launch.observedPositions = ringPositions_.as<int32_t>() + places;
      launch.observe = observe_;
      launch.kernel = plan.kernel();
    }
    launch.shared = plan.heads() != schema::EVICT_HEADS_EACH;
    launch.workspace = workspace_.get();
    KVRT_RETURN_IF_ERROR(scoreEntries(launch, stream));
    KVRT_RETURN_IF_ERROR(selectEntries(launch, stream));
    KVRT_RETURN_IF_ERROR(compactEntries(launch, stream));
  }
  for (const EvictSequence &s : due) {
    compactions_ += layers_.size();
    evicted_ += layers_.size() * uint64_t(s.length - s.kept);
  }
  return compacted;
}

Status DeviceEviction::beforeCall(const PageLedger &ledger,
                                  const uint64_t *rowSequences, uint32_t rows,
                                  uint32_t maxLength, cudaStream_t stream) {
  if (accumulates_) {
    // The partials of the widest layer, sized outside any graph capture.
    size_t bytes = 0;
    for (const Layer &layer : layers_) {
      EvictLaunch shape;
      shape.cache.kvHeads = kvHeads_;
      shape.cache.headDim = layer.headDim;
      shape.qHeads = uint32_t(layer.call.qHeads);
      H2oRows calls;
      calls.rows = rows;
      calls.maxLength = maxLength;
      bytes = std::max(bytes, h2oPartialsBytes(shape, calls));
    }
    StatusOr<bool> moved =
        reserve(h2oPartials_, bytes, "H2O's softmax partials");
    if (!moved)
      return moved.status();
    moves_ += *moved;
  }
  if (!observes())
    return Status::ok();
  const uint64_t layers = layers_.size();
  if (ledger.slots() > ringRows_) {
    // Twice the rows, the old ones copied per layer, the new ones' places
    // empty (-1).
    const uint32_t grown = std::max(ledger.slots(), 2 * ringRows_);
    const uint64_t places = layers * grown * observe_;
    StatusOr<DeviceBuffer> ring =
        DeviceBuffer::allocate(places * queryWidth_ * sizeof(float));
    if (!ring)
      return Status::error("the GPU has no room for SnapKV's observed "
                           "queries of " +
                           std::to_string(grown) +
                           " sequences: " + ring.status().message());
    StatusOr<DeviceBuffer> positions =
        DeviceBuffer::allocate(places * sizeof(int32_t));
    if (!positions)
      return positions.status();
    if (cudaError_t e = cudaMemsetAsync(positions->get(), 0xff,
                                        places * sizeof(int32_t), stream))
      return cudaFailed("clearing SnapKV's observed positions", e);
    const uint64_t oldPlaces = uint64_t(ringRows_) * observe_;
    for (uint64_t l = 0; l < layers && oldPlaces; ++l) {
      const uint64_t from = l * oldPlaces, to = l * grown * observe_;
      if (cudaError_t e =
              cudaMemcpyAsync(ring->as<float>() + to * queryWidth_,
                              ring_.as<float>() + from * queryWidth_,
                              oldPlaces * queryWidth_ * sizeof(float),
                              cudaMemcpyDeviceToDevice, stream))
        return cudaFailed("growing SnapKV's observed queries", e);
      if (cudaError_t e = cudaMemcpyAsync(positions->as<int32_t>() + to,
                                          ringPositions_.as<int32_t>() + from,
                                          oldPlaces * sizeof(int32_t),
                                          cudaMemcpyDeviceToDevice, stream))
        return cudaFailed("growing SnapKV's observed queries", e);
    }
    // The old buffers are freed after the copies (cudaFree waits for them).
    ring_ = std::move(*ring);
    ringPositions_ = std::move(*positions);
    ringRows_ = grown;
    ++moves_;
  }
  for (uint32_t r = 0; r < rows; ++r) {
    const uint32_t slot = ledger.slot(rowSequences[r]);
    if (!observing_.emplace(rowSequences[r], slot).second)
      continue;
    // A slot another sequence may have held: its places emptied.
    for (uint64_t l = 0; l < layers; ++l)
      if (cudaError_t e = cudaMemsetAsync(
              ringPositions_.as<int32_t>() + (l * ringRows_ + slot) * observe_,
              0xff, observe_ * sizeof(int32_t), stream))
        return cudaFailed("clearing SnapKV's observed positions", e);
  }
  return Status::ok();
}

Status DeviceEviction::record(uint32_t layer, const float *q, uint64_t qStride,
                              uint32_t rows, const int32_t *positions,
                              const int32_t *marks, cudaStream_t stream) {
  const size_t l = layerIndex(layer);
  if (l == layers_.size())
    return Status::error("layer " + std::to_string(layer) + " does not evict");
  const size_t places = size_t(l) * ringRows_ * observe_;
  const Layer &evicting = layers_[l];
  return recordObserved(
      q, qStride, uint32_t(evicting.call.qHeads) * evicting.headDim, rows,
      positions, marks, observe_, ring_.as<float>() + places * queryWidth_,
      ringPositions_.as<int32_t>() + places, stream);
}

float *DeviceEviction::mass(uint32_t layer) {
  const size_t l = layerIndex(layer);
  return accumulates_ && l < layers_.size()
             ? mass_.as<float>() + l * layerStride_
             : nullptr;
}

Status DeviceEviction::accumulate(uint32_t layer, const H2oRows &calls,
                                  const DeviceKvPool &pool,
                                  const int32_t *pageTables,
                                  uint32_t pageTableStride,
                                  cudaStream_t stream) {
  const size_t l = layerIndex(layer);
  if (l == layers_.size())
    return Status::error("layer " + std::to_string(layer) + " does not evict");
  return accumulateH2o(layerLaunch(l, pool, pageTables, pageTableStride), calls,
                       h2oPartials_.as<float2>(), stream);
}

StatusOr<std::vector<std::vector<int32_t>>>
DeviceEviction::positions(uint32_t layer, const std::vector<int32_t> &pages,
                          uint64_t length) const {
  const size_t l = layerIndex(layer);
  if (l == layers_.size())
    return Status::error("layer " + std::to_string(layer) + " does not evict");
  std::vector<std::vector<int32_t>> out(kvHeads_);
  std::vector<int32_t> page(size_t(kvHeads_) * pageSize_);
  for (uint64_t p = 0; p * pageSize_ < length; ++p) {
    const int32_t *from = positions_.as<int32_t>() + l * layerStride_ +
                          size_t(pages[p]) * kvHeads_ * pageSize_;
    if (cudaError_t e =
            cudaMemcpy(page.data(), from, page.size() * sizeof(int32_t),
                       cudaMemcpyDeviceToHost))
      return cudaFailed("reading the evicting layer's positions", e);
    const uint64_t slots =
        std::min<uint64_t>(pageSize_, length - p * pageSize_);
    for (uint32_t h = 0; h < kvHeads_; ++h)
      out[h].insert(out[h].end(), page.begin() + h * pageSize_,
                    page.begin() + h * pageSize_ + slots);
  }
  return out;
}

} // namespace kvrt::cuda
