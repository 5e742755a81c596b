//===- OffloadedPages.cpp - Offloaded layers' pages on the device ---------===//
#include "runtime/src/backends/cuda/OffloadedPages.h"

#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/PageCopies.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>

namespace kvrt::cuda {

struct OffloadedPages::Layer {
  uint32_t kvHeads = 0;
  SparsePolicy select;
  uint64_t keyArea = 0, valueArea = 0;
  const uint8_t *hostKeys = nullptr, *hostValues = nullptr;
  std::unique_ptr<offload::LayerOffload> schedule;
  /// [slots][area] bytes of each side, and [pages][kvHeads] slot numbers
  /// (-1: not resident) with their host mirror.
  DeviceBuffer slotKeys, slotValues, slotOf;
  std::vector<int32_t> mirror;
  /// [slot]: the page whose areas the slot holds (DevicePages::kNoPage).
  std::vector<uint64_t> copied;
  /// Per table row of a call: [kvHeads] blocks kept, then (after
  /// sequenceCapacity_ rows) [kvHeads][topBlocks] their indices, written
  /// there by level 1 of the selection; `signal` is set after it.
  HostBuffer selections;
  uint32_t *signal = nullptr;
  /// afterCall()'s result for the layer: its copies and table writes.
  Status status;
  std::vector<PageCopy> copies;
  std::vector<SlotWrite> writes;
};

OffloadedPages::~OffloadedPages() {
  for (cudaEvent_t event : {copied_, called_})
    if (event)
      cudaEventDestroy(event);
  if (copyStream_)
    cudaStreamDestroy(copyStream_);
}

uint64_t OffloadedPages::tableBytesPerPage(const DeviceLayerSpec &spec) {
  return uint64_t(spec.kvHeads) * sizeof(int32_t);
}

uint64_t OffloadedPages::slotBytes(const DeviceLayerSpec &spec) {
  return spec.key.areaStride + spec.value.areaStride;
}

StatusOr<std::unique_ptr<OffloadedPages>>
OffloadedPages::create(const DeviceKvPool &pool,
                       const std::vector<OffloadPlan> &plans) {
  std::unique_ptr<OffloadedPages> pages(new OffloadedPages());
  pages->pageSize_ = pool.pageSize();
  const uint64_t capacity = pool.ledger().capacityPages();
  for (const OffloadPlan &plan : plans) {
    const DeviceKvPool::Layer &stored = pool.layer(plan.layer);
    const DeviceLayerSpec &spec = stored.spec;
    // Its encodings are those the sparse kernels read (the layer selects:
    // planSparseDecode() refused the others when the cache was planned),
    // whose appends write resident slots too (Append.h).
    const std::string where = "offloaded layer " + std::to_string(plan.layer);
    auto layer = std::make_unique<Layer>();
    layer->kvHeads = spec.kvHeads;
    layer->select = plan.select;
    layer->keyArea = spec.key.areaStride;
    layer->valueArea = spec.value.areaStride;
    layer->hostKeys = stored.keys();
    layer->hostValues = stored.values();
    uint64_t slots = plan.slots;
    if (!slots)
      slots = uint64_t(std::ceil(plan.ratio * double(capacity) * spec.kvHeads));
    slots = std::max<uint64_t>(slots, 1);
    if (slots > uint64_t(INT32_MAX))
      return Status::error(where + ": " + std::to_string(slots) +
                           " device pages are more than the slot table "
                           "numbers");
    layer->schedule = std::make_unique<offload::LayerOffload>(
        plan.layer, spec.kvHeads, slots, plan.select.topBlocks);
    layer->copied.assign(slots, offload::DevicePages::kNoPage);
    const uint64_t tableBytes = capacity * tableBytesPerPage(spec);
    for (auto [buffer, bytes] :
         {std::make_pair(&layer->slotKeys, slots * spec.key.areaStride),
          std::make_pair(&layer->slotValues, slots * spec.value.areaStride),
          std::make_pair(&layer->slotOf, tableBytes)}) {
      StatusOr<DeviceBuffer> made = DeviceBuffer::allocate(bytes);
      if (!made)
        return Status::error(where +
                             ": its device pages: " + made.status().message());
      *buffer = std::move(*made);
    }
    layer->mirror.assign(capacity * spec.kvHeads, -1);
    if (cudaError_t e = cudaMemset(layer->slotOf.get(), 0xff, tableBytes))
      return cudaFailed("clearing a slot table", e);
    pages->layers_.emplace(plan.layer, std::move(layer));
  }
  StatusOr<HostBuffer> signals =
      HostBuffer::allocate(pages->layers_.size() * sizeof(uint32_t));
  if (!signals)
    return Status::error("the offloaded layers' signals: " +
                         signals.status().message());
  pages->signals_ = std::move(*signals);
  uint32_t *signal = pages->signals_.as<uint32_t>();
  for (auto &[index, layer] : pages->layers_)
    layer->signal = signal++;
  pages->threads_ = std::make_unique<cpu::ThreadPool>(
      std::max(1u, std::min(unsigned(plans.size()),
                            std::thread::hardware_concurrency())));
  if (cudaError_t e =
          cudaStreamCreateWithFlags(&pages->copyStream_, cudaStreamNonBlocking))
    return cudaFailed("creating the copy stream", e);
  for (cudaEvent_t *event : {&pages->copied_, &pages->called_})
    if (cudaError_t e = cudaEventCreateWithFlags(event, cudaEventDisableTiming))
      return cudaFailed("creating the copy events", e);
  return pages;
}

Status OffloadedPages::admit(uint64_t decodeRows) const {
  for (const auto &[index, layer] : layers_)
    KVRT_RETURN_IF_ERROR(layer->schedule->admit(decodeRows));
  return Status::ok();
}

Status OffloadedPages::prepareCall(uint32_t sequences) {
  // The last call has run: nothing writes the signals until this one does.
  std::fill_n(signals_.as<uint32_t>(), layers_.size(), 0u);
  if (sequences <= sequenceCapacity_)
    return Status::ok();
  // A graph captured with the old buffers is not replayed: moves_ changes
  // the step's shape.
  const uint32_t capacity = std::max(sequences, 2 * sequenceCapacity_);
  for (auto &[index, layer] : layers_) {
    StatusOr<HostBuffer> made =
        HostBuffer::allocate(uint64_t(capacity) * layer->kvHeads *
                             (1 + layer->select.topBlocks) * sizeof(int32_t));
    if (!made)
      return Status::error("offloaded layer " + std::to_string(index) +
                           ": its selections: " + made.status().message());
    layer->selections = std::move(*made);
  }
  sequenceCapacity_ = capacity;
  ++moves_;
  return Status::ok();
}

Status OffloadedPages::waitForCopies(cudaStream_t stream) {
  if (!copiesPending_)
    return Status::ok();
  if (cudaError_t e = cudaStreamWaitEvent(stream, copied_, 0))
    return cudaFailed("waiting for the offload copies", e);
  return Status::ok();
}

ResidentPages OffloadedPages::resident(uint32_t layer) const {
  const Layer &l = *layers_.at(layer);
  return {l.slotOf.as<int32_t>(), l.slotKeys.as<uint8_t>(),
          l.slotValues.as<uint8_t>()};
}

void OffloadedPages::residentAppend(uint32_t layer, bool values,
                                    AppendArgs &args) const {
  const Layer &l = *layers_.at(layer);
  args.residentSlotOf = l.slotOf.as<int32_t>();
  args.residentAreas = (values ? l.slotValues : l.slotKeys).as<uint8_t>();
  args.residentAreaStride = values ? l.valueArea : l.keyArea;
}

void OffloadedPages::mirrorSelection(uint32_t layer, uint32_t tableRow,
                                     uint32_t rowsEnd,
                                     SparseDecodeArgs &args) const {
  const Layer &l = *layers_.at(layer);
  args.hostBlockCounts =
      l.selections.as<uint32_t>() + uint64_t(tableRow) * l.kvHeads;
  args.hostBlocks = l.selections.as<int32_t>() +
                    uint64_t(sequenceCapacity_) * l.kvHeads +
                    uint64_t(tableRow) * l.kvHeads * l.select.topBlocks;
  args.hostSignal = l.signal;
  args.signalEnd = rowsEnd;
}

Status OffloadedPages::waitForSelections(const Layer &l,
                                         uint32_t decodeEnd) const {
  // The groups of decode rows run in row order, so the signal grows to
  // decodeEnd. A call that ends short of it would be a planning error:
  // the call's end is checked now and then so that it cannot hang.
  const volatile uint32_t *signal = l.signal;
  auto check = std::chrono::steady_clock::now();
  while (*signal < decodeEnd) {
    const auto now = std::chrono::steady_clock::now();
    if (now < check)
      continue;
    check = now + std::chrono::microseconds(50);
    const cudaError_t e = cudaEventQuery(called_);
    if (e == cudaErrorNotReady) {
      cudaGetLastError(); // this thread's, not an error
      continue;
    }
    if (e != cudaSuccess)
      return cudaFailed("waiting for a layer's selections", e);
    if (*signal < decodeEnd)
      return Status::error(
          "offloaded layer " + std::to_string(l.schedule->layer()) +
          ": the call ended with its selections signalled for rows up to " +
          std::to_string(*signal) + " of " + std::to_string(decodeEnd));
  }
  // The selections were written before the signal.
  std::atomic_thread_fence(std::memory_order_acquire);
  return Status::ok();
}

Status OffloadedPages::afterCall(const PageLedger &ledger,
                                 const std::vector<CallSequence> &sequences,
                                 uint32_t decodeEnd, cudaStream_t stream) {
  if (cudaError_t e = cudaEventRecord(called_, stream))
    return cudaFailed("recording the end of a call", e);
  // What every layer reads of the ledger, looked up once.
  std::vector<const std::vector<int32_t> *> tables;
  for (const CallSequence &s : sequences)
    tables.push_back(&ledger.pages(s.id));
  std::vector<Layer *> layers;
  for (auto &[index, layer] : layers_)
    layers.push_back(layer.get());
  // The layers' schedules are independent: one task each, in layer order,
  // each waiting for its selections (a call without decode rows selects
  // none).
  threads_->run(layers.size(), [&](size_t i, unsigned) {
    Layer &l = *layers[i];
    l.status = waitForSelections(l, decodeEnd);
    if (!l.status.isOk())
      return;
    const uint32_t *counts = l.selections.as<uint32_t>();
    const int32_t *blocks =
        l.selections.as<int32_t>() + uint64_t(sequenceCapacity_) * l.kvHeads;
    offload::LayerCall call;
    call.pageSize = pageSize_;
    for (size_t s = 0; s < sequences.size(); ++s) {
      // A decode row selected where it kept blocks (none: it attended to
      // every entry).
      const bool selected = sequences[s].rows == 1 && counts[s * l.kvHeads] > 0;
      call.sequences.push_back(
          {sequences[s].length, sequences[s].rows, selected});
    }
    call.pageKey = [&](size_t s, uint64_t p, uint32_t h) {
      const int32_t page = (*tables[s])[p];
      return offload::pageKey(uint32_t(page), h, ledger.generation(page));
    };
    call.pagesOf = [&](size_t s, uint32_t h, std::vector<uint64_t> &read,
                       std::vector<uint64_t> &) {
      const uint64_t row = s * l.kvHeads + h;
      const int32_t *kept = blocks + row * l.select.topBlocks;
      for (uint32_t b = 0; b < counts[row]; ++b)
        read.push_back(uint64_t(kept[b]) * l.select.block / pageSize_);
    };
    l.copies.clear();
    l.writes.clear();
    l.status = l.schedule->run(call);
    if (l.status.isOk())
      collectCopies(l);
  });
  // Whether the GPU had run the call before the last schedule ended.
  ++calls_;
  if (cudaError_t e = cudaEventQuery(called_); e == cudaSuccess)
    ++lateCalls_;
  else if (e == cudaErrorNotReady)
    cudaGetLastError(); // not an error: the launches' checks must not see it
  else
    return cudaFailed("asking whether a call has run", e);
  copies_.clear();
  writes_.clear();
  for (Layer *l : layers) {
    KVRT_RETURN_IF_ERROR(l->status);
    copies_.insert(copies_.end(), l->copies.begin(), l->copies.end());
    writes_.insert(writes_.end(), l->writes.begin(), l->writes.end());
  }
  if (copies_.empty() && writes_.empty())
    return Status::ok();
  // The launch reads its list from mapped host memory: the last one must
  // have finished before the list is rewritten (the call waited for it,
  // but may not have started yet).
  if (cudaError_t e = cudaEventSynchronize(copied_))
    return cudaFailed("waiting for the offload copies", e);
  const size_t bytes =
      copies_.size() * sizeof(PageCopy) + writes_.size() * sizeof(SlotWrite);
  if (descriptors_.size() < bytes) {
    StatusOr<HostBuffer> made = HostBuffer::allocate(2 * bytes);
    if (!made)
      return Status::error("the offload copies' list: " +
                           made.status().message());
    descriptors_ = std::move(*made);
  }
  PageCopy *copies = descriptors_.as<PageCopy>();
  std::copy(copies_.begin(), copies_.end(), copies);
  SlotWrite *writes = reinterpret_cast<SlotWrite *>(copies + copies_.size());
  std::copy(writes_.begin(), writes_.end(), writes);
  // The slots change once the call has read them.
  if (cudaError_t e = cudaStreamWaitEvent(copyStream_, called_, 0))
    return cudaFailed("ordering the offload copies after the call", e);
  if (!launchPageCopies(copies, uint32_t(copies_.size()), writes,
                        uint32_t(writes_.size()), copyStream_))
    return cudaFailed("copying offloaded pages to the device",
                      cudaGetLastError());
  if (cudaError_t e = cudaEventRecord(copied_, copyStream_))
    return cudaFailed("recording the offload copies", e);
  copiesPending_ = true;
  return Status::ok();
}

void OffloadedPages::collectCopies(Layer &l) {
  offload::DevicePages &pages = l.schedule->pages();
  std::vector<uint64_t> entries;
  auto copy = [&](const uint8_t *from, uint8_t *to, uint64_t bytes) {
    l.copies.push_back({reinterpret_cast<const uint4 *>(from),
                        reinterpret_cast<uint4 *>(to), uint32_t(bytes / 16)});
  };
  const uint64_t keyPage = l.keyArea * l.kvHeads;
  const uint64_t valuePage = l.valueArea * l.kvHeads;
  for (uint64_t slot : pages.takeChangedSlots()) {
    const uint64_t now = pages.holder(slot);
    const uint64_t before = l.copied[slot];
    if (now == before)
      continue;
    // The page that leaves: its entry names this slot unless a later use
    // of the same page (another generation) is elsewhere already.
    if (before != offload::DevicePages::kNoPage) {
      const uint64_t entry =
          uint64_t(offload::pageIndexOf(before)) * l.kvHeads +
          offload::pageHeadOf(before);
      if (l.mirror[entry] == int32_t(slot)) {
        l.mirror[entry] = -1;
        entries.push_back(entry);
      }
    }
    const uint64_t index = offload::pageIndexOf(now);
    const uint32_t head = offload::pageHeadOf(now);
    copy(l.hostKeys + index * keyPage + head * l.keyArea,
         l.slotKeys.as<uint8_t>() + slot * l.keyArea, l.keyArea);
    copy(l.hostValues + index * valuePage + head * l.valueArea,
         l.slotValues.as<uint8_t>() + slot * l.valueArea, l.valueArea);
    const uint64_t entry = index * l.kvHeads + head;
    l.mirror[entry] = int32_t(slot);
    entries.push_back(entry);
    l.copied[slot] = now;
  }
  // Each changed entry once, with its final value: the launch writes in no
  // order.
  std::sort(entries.begin(), entries.end());
  entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
  for (uint64_t entry : entries)
    l.writes.push_back({l.slotOf.as<int32_t>() + entry, l.mirror[entry]});
}

void OffloadedPages::addStats(EngineStats::Offload &stats) const {
  stats.scheduledCalls += calls_;
  stats.lateSchedules += lateCalls_;
  for (const auto &[index, layer] : layers_)
    offload::addCounts(layer->schedule->counts(),
                       layer->keyArea + layer->valueArea, stats);
}

} // namespace kvrt::cuda
