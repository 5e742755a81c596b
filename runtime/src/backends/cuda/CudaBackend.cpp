//===- CudaBackend.cpp - Running a plan on the GPU ------------------------===//
//
// The plan's steps as the CPU backend runs them, on one CUDA stream: fp32
// activations, bf16 projection weights through cuBLASLt (fp32
// accumulation), the cache in device pages (DeviceKvPool.h), attention by
// the flash-decoding kernels (DecodeAttention.h) for decode rows and the
// prefill kernel (PrefillAttention.h) for a sequence's run of rows: row i
// of a run reads the first before + i + 1 tokens, the earlier ones from
// the pages, the run's own from the bf16 copy its append left.
//
// Where it differs from the CPU backend, by design or not yet:
// - Projection inputs are rounded to bf16 (the CPU multiplies in fp32),
//   and f32 weights are rounded to bf16 when they are uploaded.
// - A decode step's new token is encoded when appended and read encoded by
//   the same step; the CPU backend reads it from its bf16 tail until the
//   next append. A prefill reads its own tokens in bf16 on both. For a
//   bf16 cache the two always read the same values. A layer that keeps
//   tokens exact beside their codes (ExactTokens.h) reads what the CPU
//   backend reads: its sinks, its window and the call's own tokens in
//   bf16, the rest encoded.
// - A chunked prefill (earlier tokens stored) of an fp8, nvfp4 or polar
//   cache reads its earlier tokens decoded and rounded to bf16, its exact
//   ones from their store (PrefillDecode.h), where the CPU backend scores
//   their codes; of other quantized caches (KIVI, low-rank) or offloaded
//   layers it runs its rows through the decode kernels, which read the
//   chunk's own tokens encoded.
// - Sparse selection (AttentionParams.select) runs for bf16, fp8 e4m3,
//   nvfp4 and 2- to 4-bit polar caches (with or without exact sinks and
//   window, not offloaded beside them), by
//   the kernels of SparseSelect.h: a selecting layer keeps block summaries
//   beside its pages, rebuilt for the pages a prefill wrote and, each
//   decode step, for the block of each row's newest token (by the sparse
//   attention's launch, ready for the next step; with a window of exact
//   tokens, of the newest token outside it, as the CPU encodes it); its
//   decode rows (a sequence's only row in the batch, as on the CPU) select
//   and attend sparsely, its prefill rows attend densely. The selection
//   ranks in fp32 where the CPU ranks in double: a near tie may go the
//   other way.
// - Offload (prefetch calls, OffloadedPages.h) keeps an offloaded layer's
//   pages in mapped host memory and a budget of them in device slots,
//   chosen by the schedule the CPU backend counts with; runner-up
//   prefetches are not done on the GPU (refused).
// - KIVI keeps its residual window in bf16 (the exact-token store) and
//   encodes a group as it leaves (KiviFlush.cu), as the CPU's tail does;
//   its rows read what the CPU backend's read.
// - Low-rank values (#kv.lowrank, side=value) with a bf16 latent of one KV
//   head each are encoded on append and attended as latents, mapped back
//   once per row (DecodeAttention.h); low-rank keys with a bf16 latent of
//   one KV head each beside bf16 values (or latent values of rank up to
//   64) are rotated back and encoded on append and rebuilt and rotated
//   inside the attention's split kernel (LatentKeyOperands.h). Quantized
//   latents, latents of groups of heads, low-rank keys beside quantized
//   values or wider latents, and eviction that scores low-rank keys are
//   refused when the backend is created.
// - Eviction (DeviceEviction.h) runs after the call's steps, outside the
//   captured graphs, for every layer at once; the next call's page tables
//   and lengths carry the compaction to the kernels. TriAttention, SnapKV
//   (its queries recorded inside the steps), H2O (its attention added up
//   inside the steps) and StreamingLLM, every layer alike, caches that
//   keep no tokens exact.
// - Selection over other encodings, the fidelity probe, append
//   observers (calibration), offloaded KIVI layers and polar with QJL run
//   on the cpu backend only; an artifact or option that needs them is
//   refused when the backend is created.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/artifact/Plan.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/backends/cuda/Append.h"
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/DecodeAttention.h"
#include "runtime/src/backends/cuda/DecoderKernels.h"
#include "runtime/src/backends/cuda/DeviceEviction.h"
#include "runtime/src/backends/cuda/DeviceKvPool.h"
#include "runtime/src/backends/cuda/ExactTokens.h"
#include "runtime/src/backends/cuda/Gemm.h"
#include "runtime/src/backends/cuda/OffloadedPages.h"
#include "runtime/src/backends/cuda/PrefillAttention.h"
#include "runtime/src/backends/cuda/PrefillDecode.h"
#include "runtime/src/backends/cuda/SideLayout.h"
#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/backends/cuda/StepPlanning.h"
#include "runtime/src/engine/Backend.h"
#include "runtime/src/engine/PlanSteps.h"
#include "runtime/src/engine/SideCodec.h"

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

namespace kvrt {
namespace {

using cuda::cudaFailed;
using cuda::DeviceBuffer;

/// Bytes of split partials one attention launch may use: a long prefill's
/// rows are launched in groups that fit.
constexpr size_t kAttentionWorkspaceBytes = 256u << 20;
/// Bytes of the sparse decode's workspace at most: a larger batch of
/// decode rows selects in groups that fit.
constexpr size_t kSparseWorkspaceBytes = 256u << 20;

/// A plan step with its device operands.
struct Step : PlanStep {
  const uint16_t *weight = nullptr;
  const float *normWeight = nullptr;
  const float *bias = nullptr;
  float epsilon = 0;
  /// rope: inverse frequencies in device memory.
  const double *inverseFrequencies = nullptr;
  double attentionFactor = 1.0;
  bool interleaved = false;
  /// rms_norm, swiglu: also writes its output in bf16 for the projections
  /// that read it. linear: its input must be converted to bf16 first (no
  /// step left it there).
  bool writesBf16 = false;
  bool convertsInput = true;
  /// linear in a fused group (StepPlanning.h): the first member runs the
  /// group's GEMM over `weight` and `bias` side by side into fusedOutput_,
  /// `groupWidth` values a row; the others run nothing.
  bool fused = false, runsGroup = false;
  int64_t groupWidth = 0;
  /// Per input: where a fused GEMM left it (group -1: its buffer).
  std::vector<cuda::StridedInput> strided;
  /// rms_norm: the residual add it computes first (StepPlanning.h), or
  /// kNoStep. add, rope: whether a norm or an append computes it (it runs
  /// nothing).
  int64_t addStep = kNoStep;
  bool foldedAway = false;
  /// append: the rope of its keys and of queries it runs (StepPlanning.h),
  /// or kNoStep.
  int64_t keyRope = kNoStep, queryRope = kNoStep;
  /// append, attention.
  uint32_t layer = 0;
  float scale = 1.0f;
  int32_t slidingWindow = 0;
  /// attention: the layer's selection for decode rows; block 0: none.
  cuda::SparsePolicy select;
};

/// A device buffer that grows to what is asked and keeps its contents
/// only until then.
struct Scratch {
  DeviceBuffer buffer;
  /// Times the buffer moved: a captured graph holds its address.
  uint64_t moves = 0;
  Status reserve(size_t bytes) {
    if (buffer.size() >= bytes && buffer.get())
      return Status::ok();
    ++moves;
    buffer = DeviceBuffer();
    StatusOr<DeviceBuffer> made = DeviceBuffer::allocate(bytes);
    if (!made)
      return made.status();
    buffer = std::move(*made);
    return Status::ok();
  }
};

/// Pinned host memory for the batch's integers, so that their copy to the
/// device is one asynchronous transfer.
class PinnedInts {
public:
  ~PinnedInts() {
    if (data_)
      cudaFreeHost(data_);
  }
  StatusOr<int32_t *> reserve(size_t count) {
    if (count > capacity_) {
      if (data_)
        cudaFreeHost(data_);
      data_ = nullptr;
      capacity_ = 0;
      if (cudaError_t e = cudaMallocHost(&data_, count * sizeof(int32_t)))
        return cudaFailed("allocating pinned host memory", e);
      capacity_ = count;
    }
    return static_cast<int32_t *>(data_);
  }

private:
  void *data_ = nullptr;
  size_t capacity_ = 0;
};

/// A captured decode step, replayed while its shape repeats.
struct CapturedStep {
  cudaGraphExec_t exec = nullptr;
  ~CapturedStep() {
    if (exec)
      cudaGraphExecDestroy(exec);
  }
};

/// What a captured step depends on besides the device data it reads.
struct StepShape {
  uint32_t rows, logitRows, planLength;
  uint64_t scratchMoves;
  bool operator<(const StepShape &o) const {
    return std::tie(rows, logitRows, planLength, scratchMoves) <
           std::tie(o.rows, o.logitRows, o.planLength, o.scratchMoves);
  }
  bool operator==(const StepShape &o) const {
    return !(*this < o || o < *this);
  }
};

class CudaBackend final : public Backend {
public:
  explicit CudaBackend(std::shared_ptr<const Artifact> artifact)
      : artifact_(std::move(artifact)) {}
  ~CudaBackend() override {
    if (stream_)
      cudaStreamDestroy(stream_);
    if (exactSide_.stream)
      cudaStreamDestroy(exactSide_.stream);
    if (exactSide_.fork)
      cudaEventDestroy(exactSide_.fork);
    if (exactSide_.join)
      cudaEventDestroy(exactSide_.join);
  }

  Status prepare(const EngineOptions &options);

  Status addSequence(SequenceId sequence) override {
    return pool_->addSequence(sequence);
  }
  StatusOr<SharedPrefix> forkSequence(SequenceId from, SequenceId sequence,
                                      uint64_t tokens) override;
  uint64_t forkGranularity() const override {
    // Eviction moves entries within a sequence's pages, offload tracks
    // each sequence's pages apart, and exact tokens live in a store row per
    // sequence that would have to be copied: none of them shares.
    return eviction_ || offloaded_ || keepsExact_ ? 0 : pool_->pageSize();
  }
  void removeSequence(SequenceId sequence) override {
    pool_->ledger().removeSequence(sequence);
    if (eviction_)
      eviction_->removeSequence(sequence);
  }
  Status forward(const BatchView &batch, float *logits) override;
  CacheStats cacheStats() const override {
    CacheStats stats{pool_->bytesPerToken(), pool_->bytesInUse(),
                     pool_->peakBytes(),
                     pool_->ledger().capacityPages() * pool_->pageSize()};
    if (offloaded_)
      offloaded_->addStats(stats.offload);
    if (eviction_) {
      stats.compactions = eviction_->compactions();
      stats.evictedEntries = eviction_->evictedEntries();
    }
    return stats;
  }
  StatusOr<std::vector<std::vector<int32_t>>>
  cachedPositions(SequenceId sequence, uint32_t layer) const override;
  std::vector<LayerFidelity> fidelity() const override { return {}; }
  void resetFidelity() override {}

private:
  /// Tensor `index` in device memory, as bf16 (`bf16`) or f32.
  StatusOr<const void *> tensor(uint32_t index, bool bf16);
  /// Puts the weights (and biases) of each fused group's members side by
  /// side in one tensor the group's first member reads, freeing the
  /// members' own where no other step reads them.
  Status fuseProjections(const cuda::FusedProjections &fused);
  /// Input `i` of `s`, and the values between its rows.
  const float *input(const Step &s, size_t i);
  int64_t inputStride(const Step &s, size_t i) const;
  Status prepareCache(const EngineOptions &options);
  /// The one sparse workspace of the selecting layers, for `pages` pages
  /// (sequences of at most `longest` tokens).
  Status prepareSparse(uint64_t pages, uint64_t longest);
  Status run(const Step &s, uint32_t rows, uint32_t logitRows);
  /// Runs every step, from a captured graph where the step's shape
  /// repeats (a decode step, EngineOptions::cudaGraphs).
  Status runSteps(uint32_t rows, uint32_t logitRows);
  uint64_t scratchMoves() const;
  Status attention(const Step &s, const float *q, float *out, uint32_t rows);
  /// The layer's pages, the batch's page tables and its exact tokens with
  /// the call's own, as the kernels read them (rows, lengths: the caller's).
  cuda::PagedKvView layerView(const cuda::DeviceKvPool::Layer &layer) const;
  /// decodeAttention() of rows [first, first + count), in groups whose
  /// split partials fit the workspace budget.
  Status decodeRows(cuda::DecodeAttentionArgs args, uint32_t first,
                    uint32_t count);
  /// As on the CPU, a decode row is its sequence's only row in the batch.
  bool decodeRow(uint32_t r) const {
    return sequenceRowsHost_[size_t(tableRowsHost_[r])] == 1;
  }
  /// Rows [first, first + count) of a selecting layer: decode rows through
  /// sparseRows(), the others through decodeRows().
  Status selectingRows(const Step &s, const cuda::DecodeAttentionArgs &args,
                       uint32_t first, uint32_t count);
  /// Decode rows [first, first + count), whose page tables are consecutive,
  /// selected and attended sparsely in groups that fit the workspace.
  Status sparseRows(const Step &s, const cuda::DecodeAttentionArgs &args,
                    uint32_t first, uint32_t count);
  float *buffer(uint32_t index) { return buffers_[index].buffer.as<float>(); }
  /// Whether the append of a layer of `spec` leaves the batch's entries in
  /// bf16 (ownKeys_, ownValues_): for a prefill's attention and for layers
  /// that keep tokens exact.
  bool keepsOwnEntries(const cuda::DeviceLayerSpec &spec) const {
    return hasRuns_ || spec.keepsExact();
  }

  std::shared_ptr<const Artifact> artifact_;
  cudaStream_t stream_ = nullptr;
  /// With exact tokens: where their attention runs beside the codes'.
  cuda::SideStream exactSide_;
  uint32_t multiprocessors_ = 0;
  std::unique_ptr<cuda::Gemm> gemm_;
  std::unique_ptr<cuda::DeviceKvPool> pool_;
  /// kv-evict: the evict calls, and the compactions (DeviceEviction.h).
  std::vector<cuda::EvictCall> evictCalls_;
  std::unique_ptr<cuda::DeviceEviction> eviction_;
  /// kv-offload: the prefetch calls, and their layers' device pages.
  std::vector<cuda::OffloadPlan> offloadPlans_;
  std::unique_ptr<cuda::OffloadedPages> offloaded_;
  std::unordered_map<uint64_t, DeviceBuffer> tensors_;
  /// The fused groups' weights and biases side by side.
  std::vector<DeviceBuffer> fusedTensors_;
  std::vector<DeviceBuffer> ropeTables_;
  std::vector<Step> steps_;
  std::vector<int64_t> bufferWidths_;
  /// Per forward: activation buffers, the bf16 projection input, the
  /// logits, the batch's integers, the attention's workspace and greedy
  /// tokens.
  std::vector<Scratch> buffers_;
  Scratch bf16Input_, logits_, batchInts_, workspace_, greedy_;
  /// What a fused group's GEMM writes, [rows][widestGroup_], read by its
  /// members' readers with a row stride.
  Scratch fusedOutput_;
  int64_t widestGroup_ = 0;
  /// Per buffer: whether a step other than a fused projection writes it
  /// (the others are never reserved).
  std::vector<bool> bufferWritten_;
  /// When the batch holds a prefill (a sequence with several rows): the
  /// bf16 keys and values each append leaves for its layer's attention.
  Scratch ownKeys_, ownValues_;
  /// A chunked prefill's earlier tokens of a quantized layer, decoded to
  /// bf16 pages for the prefill kernel (PrefillDecode.h).
  Scratch decodedEarlier_;
  bool hasRuns_ = false;
  /// Whether some layer keeps tokens exact (its appends then leave their
  /// entries in bf16 in every call).
  bool keepsExact_ = false;
  int64_t widestKv_ = 0;
  /// Sparse selection: whether a layer selects, the workspace every
  /// selecting layer uses in turn (allocated once: a captured graph holds
  /// its address), and the decode rows one launch takes.
  bool selects_ = false;
  DeviceBuffer sparseWorkspace_;
  uint32_t sparseBatch_ = 0;
  /// Per forward, with a prefill: the pages it wrote and their stored
  /// slots (device pointers into batchInts_), whose summaries each
  /// selecting layer rebuilds.
  const int32_t *buildPages_ = nullptr, *buildSlots_ = nullptr;
  uint32_t builds_ = 0;
  /// The selecting layers' window of exact tokens (one for all of them),
  /// whose entries no summary holds until they leave it.
  uint32_t selectWindow_ = 0;
  std::vector<int32_t> buildPagesHost_, buildSlotsHost_;
  /// planLength() of the batch's longest row.
  uint32_t planLength_ = 0;
  bool useGraphs_ = true;
  std::map<StepShape, std::unique_ptr<CapturedStep>> graphs_;
  std::optional<StepShape> lastShape_;
  int64_t widestInput_ = 0;
  PinnedInts hostInts_;
  /// Device pointers into batchInts_, set by forward().
  const int32_t *tokens_ = nullptr, *positions_ = nullptr, *slots_ = nullptr,
                *rowLengths_ = nullptr, *tableRows_ = nullptr,
                *pageTables_ = nullptr;
  /// With exact tokens: per table row, the sequence's slot and its tokens
  /// before and after the call (ExactTokensView::calls).
  const int32_t *exactCalls_ = nullptr;
  /// SnapKV: each row's place in the observed queries' ring, or -1
  /// (observedRowMarks()).
  const int32_t *observedRows_ = nullptr;
  /// Selecting layers with a window of exact tokens: each row's length
  /// less the window (SparseDecodeArgs::codedLengths).
  const int32_t *codedLengths_ = nullptr;
  const uint32_t *logitRows_ = nullptr;
  uint32_t pageTableStride_ = 0;
  /// The batch's row lengths and table rows on the host: attention plans
  /// for the longest row and finds each sequence's prefill rows.
  std::vector<int32_t> rowLengthsHost_, tableRowsHost_;
  /// Rows of each table row's sequence in the batch: 1 for a decode row.
  std::vector<uint32_t> sequenceRowsHost_;
  /// H2O: the runs of rows (first, count) that the last attention step
  /// gave the prefill kernel, whose weights the evict step adds up; the
  /// decode kernels add their rows' as they attend.
  std::vector<std::pair<uint32_t, uint32_t>> prefilledRuns_;
  float *logitsOut_ = nullptr;
};

StatusOr<const void *> CudaBackend::tensor(uint32_t index, bool bf16) {
  const uint64_t key = uint64_t(index) << 1 | (bf16 ? 1 : 0);
  auto found = tensors_.find(key);
  if (found != tensors_.end())
    return static_cast<const void *>(found->second.get());
  const schema::Tensor &t = artifact_->manifest().tensors(int(index));
  if (t.has_synthetic()) {
    // Generated in place: an 8B-shaped model's weights take a fraction of
    // a second here and never exist on the host.
    uint64_t count = 1;
    for (int64_t d : t.shape())
      count *= uint64_t(d);
    StatusOr<DeviceBuffer> device =
        DeviceBuffer::allocate(count * (bf16 ? 2 : 4));
    if (!device)
      return Status::error(artifact_->name() + ": tensor \"" + t.name() +
                           "\": " + device.status().message());
    const schema::SyntheticValues &v = t.synthetic();
    if (!cuda::launchSynthetic(v.seed(), std::ldexp(v.bound(), -23),
                               v.constant(), count, bf16, device->get(),
                               stream_))
      return cudaFailed("generating synthetic weights", cudaGetLastError());
    const void *data = device->get();
    tensors_.emplace(key, std::move(*device));
    return data;
  }
  StatusOr<ByteView> bytes = artifact_->tensorData(index);
  if (!bytes)
    return bytes.status();
  size_t count = 1;
  for (int64_t d : t.shape())
    count *= size_t(d);
  StatusOr<DeviceBuffer> device =
      DeviceBuffer::allocate(count * (bf16 ? 2 : 4));
  if (!device)
    return Status::error(artifact_->name() + ": tensor \"" + t.name() +
                         "\": " + device.status().message());
  if (bf16 && t.dtype() == schema::DTYPE_BF16) {
    KVRT_RETURN_IF_ERROR(device->upload(bytes->data, bytes->size));
  } else {
    // f32, f16 and the block formats (q4_1, ...) through their f32 values,
    // the CPU backend's.
    std::vector<float> values(count);
    decodeValues(t.dtype(), bytes->data, count, values.data());
    if (bf16) {
      std::vector<uint16_t> converted(count);
      for (size_t i = 0; i < count; ++i)
        converted[i] = cpu::floatToBf16(values[i]);
      KVRT_RETURN_IF_ERROR(device->upload(converted.data(), count * 2));
    } else {
      KVRT_RETURN_IF_ERROR(device->upload(values.data(), count * 4));
    }
  }
  const void *data = device->get();
  tensors_.emplace(key, std::move(*device));
  return data;
}

Status CudaBackend::prepare(const EngineOptions &options) {
  const std::string &name = artifact_->name();
  if (options.measureFidelity)
    return Status::error("measuring fidelity against a bf16 copy of the "
                         "cache runs on the cpu backend only");
  if (options.observer)
    return Status::error("observing appended keys and values (calibration) "
                         "runs on the cpu backend only");
  useGraphs_ = options.cudaGraphs;
  int devices = 0, device = 0;
  if (cudaError_t e = cudaGetDeviceCount(&devices); e || devices == 0)
    return Status::error(
        std::string("the cuda backend found no usable GPU") +
        (e ? std::string(" (CUDA: ") + cudaGetErrorString(e) + ")"
           : std::string()));
  if (cudaError_t e = cudaGetDevice(&device))
    return cudaFailed("finding a GPU", e);
  int count = 0;
  cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
  multiprocessors_ = uint32_t(count);
  if (cudaError_t e =
          cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking))
    return cudaFailed("creating a stream", e);
  StatusOr<std::unique_ptr<cuda::Gemm>> gemm = cuda::Gemm::create();
  if (!gemm)
    return gemm.status();
  gemm_ = std::move(*gemm);

  PlanSteps plan = planSteps(artifact_->manifest().plan());
  KVRT_RETURN_IF_ERROR(cuda::checkKernelLimits(plan.steps, name));
  bufferWidths_ = plan.bufferWidths;
  buffers_.resize(bufferWidths_.size());
  for (const PlanStep &planned : plan.steps) {
    Step step;
    static_cast<PlanStep &>(step) = planned;
    const schema::KernelCall &call = *planned.call;
    auto weightOf = [&](int i, bool bf16) -> StatusOr<const void *> {
      return tensor(call.tensors(i), bf16);
    };
    switch (step.kernel) {
    case Kernel::Embedding:
    case Kernel::Linear:
    case Kernel::LMHead: {
      StatusOr<const void *> w = weightOf(0, true);
      if (!w)
        return w.status();
      step.weight = static_cast<const uint16_t *>(*w);
      if (call.tensors_size() > 1) {
        StatusOr<const void *> b = weightOf(1, false);
        if (!b)
          return b.status();
        step.bias = static_cast<const float *>(*b);
      }
      if (step.kernel != Kernel::Embedding)
        widestInput_ = std::max(widestInput_, step.inputWidth);
      break;
    }
    case Kernel::RmsNorm: {
      StatusOr<const void *> w = weightOf(0, false);
      if (!w)
        return w.status();
      step.normWeight = static_cast<const float *>(*w);
      step.epsilon = float(call.rms_norm().epsilon());
      step.dim = artifact_->manifest().tensors(int(call.tensors(0))).shape(0);
      break;
    }
    case Kernel::Rope: {
      cpu::RopeFrequencies f =
          cpu::ropeFrequencies(call.rope().rope(), step.dim);
      StatusOr<DeviceBuffer> table =
          DeviceBuffer::allocate(f.inverse.size() * sizeof(double));
      if (!table)
        return table.status();
      KVRT_RETURN_IF_ERROR(
          table->upload(f.inverse.data(), f.inverse.size() * sizeof(double)));
      step.inverseFrequencies = table->as<double>();
      step.attentionFactor = f.attentionFactor;
      step.interleaved = f.interleaved;
      ropeTables_.push_back(std::move(*table));
      break;
    }
    case Kernel::Append:
      step.layer = call.append().layer();
      break;
    case Kernel::Attention:
      if (call.attention().has_select() && call.attention().select().block()) {
        const schema::SelectParams &p = call.attention().select();
        step.select = {p.block(), p.top_blocks(), p.top_tokens()};
        selects_ = true;
      }
      step.layer = call.attention().layer();
      step.scale = float(call.attention().scale());
      step.slidingWindow = call.attention().has_sliding_window()
                               ? int32_t(call.attention().sliding_window())
                               : 0;
      break;
    case Kernel::Evict: {
      cuda::EvictCall evict;
      evict.plan = call.evict();
      if (call.tensors_size() >= 2) {
        evict.centres = call.tensors(0);
        evict.magnitudes = call.tensors(1);
      }
      evict.qHeads = step.heads;
      const int64_t rope = step.producers.empty() ? kNoStep : step.producers[0];
      if (rope == kNoStep || steps_[size_t(rope)].kernel != Kernel::Rope)
        return Status::error(name + ": the evict call of layer " +
                             std::to_string(evict.plan.layer()) +
                             " reads queries that no rope call produced");
      evict.rope = cpu::ropeFrequencies(
          steps_[size_t(rope)].call->rope().rope(), steps_[size_t(rope)].dim);
      for (const Step &earlier : steps_)
        if (earlier.kernel == Kernel::Attention &&
            earlier.layer == evict.plan.layer()) {
          evict.slidingWindow = earlier.slidingWindow != 0;
          evict.scale = earlier.scale;
        }
      step.layer = evict.plan.layer();
      evictCalls_.push_back(std::move(evict));
      break;
    }
    case Kernel::Prefetch: {
      const schema::PrefetchParams &p = call.prefetch();
      if (p.runners_up())
        return Status::error(
            name + ": the prefetch call of layer " + std::to_string(p.layer()) +
            " prefetches runner-up blocks, which the cuda backend does not "
            "(they cost more copies than they save: docs/offload.md); "
            "compile with kv-offload{runners_up=0} for the GPU");
      cuda::OffloadPlan plan;
      plan.layer = p.layer();
      plan.slots = p.has_device_pages() ? p.device_pages() : 0;
      plan.ratio = p.device_ratio();
      // The artifact's validation puts a selecting attention before it.
      for (const Step &earlier : steps_)
        if (earlier.kernel == Kernel::Attention && earlier.layer == p.layer())
          plan.select = earlier.select;
      offloadPlans_.push_back(plan);
      break;
    }
    default:
      break;
    }
    steps_.push_back(std::move(step));
  }
  const cuda::Bf16Inputs bf16 = cuda::planBf16Inputs(plan.steps);
  for (size_t i = 0; i < steps_.size(); ++i) {
    steps_[i].writesBf16 = bf16.writes[i];
    steps_[i].convertsInput = bf16.converts[i];
  }
  cuda::FusedProjections fused;
  if (options.cudaFusion) {
    fused = cuda::planFusedProjections(plan.steps);
    const cuda::FoldedAdds adds = cuda::planFoldedAdds(plan.steps);
    const cuda::FoldedRopes ropes = cuda::planFoldedRopes(plan.steps);
    for (size_t i = 0; i < steps_.size(); ++i) {
      steps_[i].addStep = adds.addOf[i];
      steps_[i].foldedAway = adds.folded[i] || ropes.folded[i];
      steps_[i].keyRope = ropes.keyRopeOf[i];
      steps_[i].queryRope = ropes.queryRopeOf[i];
    }
  } else {
    fused.inputs.resize(steps_.size());
  }
  fused.memberOf.resize(steps_.size(), -1);
  for (size_t i = 0; i < steps_.size(); ++i)
    fused.inputs[i].resize(steps_[i].inputs.size());
  KVRT_RETURN_IF_ERROR(fuseProjections(fused));
  return prepareCache(options);
}

Status CudaBackend::fuseProjections(const cuda::FusedProjections &fused) {
  widestGroup_ = fused.widest;
  bufferWritten_.assign(buffers_.size(), false);
  // The tensors a step outside the groups reads (a tied embedding, say).
  std::set<uint32_t> shared;
  for (size_t i = 0; i < steps_.size(); ++i) {
    steps_[i].strided = fused.inputs[i];
    if (fused.memberOf[i] >= 0)
      continue;
    if (steps_[i].output != kNoBuffer && steps_[i].kernel != Kernel::Reshape)
      bufferWritten_[steps_[i].output] = true;
    for (uint32_t t : steps_[i].call->tensors())
      shared.insert(t);
  }
  for (const cuda::FusedProjection &group : fused.groups) {
    Step &first = steps_[group.members[0]];
    const size_t in = size_t(first.inputWidth);
    StatusOr<DeviceBuffer> weights =
        DeviceBuffer::allocate(size_t(group.width) * in * sizeof(uint16_t));
    if (!weights)
      return weights.status();
    DeviceBuffer biases;
    if (first.bias) {
      StatusOr<DeviceBuffer> made =
          DeviceBuffer::allocate(size_t(group.width) * sizeof(float));
      if (!made)
        return made.status();
      biases = std::move(*made);
    }
    for (size_t k = 0; k < group.members.size(); ++k) {
      Step &m = steps_[group.members[k]];
      const size_t width = size_t(m.outputWidth);
      cudaError_t e = cudaMemcpyAsync(
          weights->as<uint16_t>() + size_t(group.offsets[k]) * in, m.weight,
          width * in * sizeof(uint16_t), cudaMemcpyDeviceToDevice, stream_);
      if (!e && m.bias)
        e = cudaMemcpyAsync(biases.as<float>() + group.offsets[k], m.bias,
                            width * sizeof(float), cudaMemcpyDeviceToDevice,
                            stream_);
      if (e)
        return cudaFailed("putting fused projections' weights together", e);
      m.fused = true;
      m.weight = nullptr;
      m.bias = nullptr;
    }
    first.runsGroup = true;
    first.groupWidth = group.width;
    first.weight = weights->as<uint16_t>();
    first.bias = biases.as<float>();
    fusedTensors_.push_back(std::move(*weights));
    fusedTensors_.push_back(std::move(biases));
  }
  if (cudaError_t e = cudaStreamSynchronize(stream_))
    return cudaFailed("putting fused projections' weights together", e);
  for (const cuda::FusedProjection &group : fused.groups)
    for (size_t m : group.members)
      for (uint32_t t : steps_[m].call->tensors())
        if (!shared.count(t)) {
          tensors_.erase(uint64_t(t) << 1);
          tensors_.erase(uint64_t(t) << 1 | 1);
        }
  return Status::ok();
}

Status CudaBackend::prepareCache(const EngineOptions &options) {
  const schema::Manifest &m = artifact_->manifest();
  const std::string &name = artifact_->name();
  uint32_t pageSize = options.pageSize;
  if (!pageSize) {
    // One page size serves every layer: the artifact's, or where its layers
    // differ (kv-sparse-select makes a selecting layer's page a multiple of
    // its block) their least common multiple.
    uint64_t common = 1;
    // KIVI's pages hold whole groups.
    for (const schema::CacheLayout &c : m.cache()) {
      common = std::lcm<uint64_t>(common, c.page_size());
      for (const schema::Encoding *e : {&c.key(), &c.value()})
        if (e->kind() == schema::ENCODING_INT && e->group())
          common = std::lcm<uint64_t>(common, e->group());
    }
    if (common > (1u << 16))
      return Status::error(name + ": the layers' page sizes have no common "
                                  "multiple of at most 65536 tokens, which "
                                  "the cuda backend needs (set "
                                  "EngineOptions::pageSize)");
    pageSize = uint32_t(common);
  }
  // The selecting layers' policies and query heads.
  std::map<uint32_t, const Step *> selecting;
  for (const Step &s : steps_)
    if (s.kernel == Kernel::Attention && s.select.block)
      selecting[s.layer] = &s;
  std::map<uint32_t, const cuda::OffloadPlan *> offloading;
  for (const cuda::OffloadPlan &plan : offloadPlans_)
    offloading[plan.layer] = &plan;
  std::vector<cuda::DeviceLayerSpec> specs;
  // Bytes of one page of every layer on the device and in host memory,
  // and the device bytes of fixed offload budgets.
  uint64_t pageBytes = 0, hostPageBytes = 0, fixedBytes = 0;
  // Bytes of one sequence's exact tokens in every layer that keeps them.
  uint64_t exactBytes = 0;
  bool selectWindowSet = false;
  for (const schema::CacheLayout &c : m.cache()) {
    const std::string where = name + ": layer " + std::to_string(c.layer());
    cuda::DeviceLayerSpec spec;
    spec.kvHeads = c.kv_heads();
    spec.headDim = c.head_dim();
    for (int i = 0; i < 2; ++i) {
      const schema::Encoding &e = i ? c.value() : c.key();
      StatusOr<SideCodec> codec = makeSideCodec(
          *artifact_, c, e, i ? CacheSide::Value : CacheSide::Key);
      if (!codec)
        return codec.status();
      StatusOr<cuda::DeviceSideLayout> side =
          cuda::deviceSideLayout(e, *codec->codec, pageSize);
      if (!side)
        return Status::error(where + ": " + side.status().message());
      if (!cuda::appendWrites(*side))
        return Status::error(where + (i ? " values" : " keys") +
                             ": appending to polar caches of more than 4 "
                             "bits on the GPU is not written; run this "
                             "artifact on the cpu backend");
      (i ? spec.value : spec.key) = *side;
      spec.exactSinks = std::max(spec.exactSinks, e.sinks());
      spec.exactWindow = std::max(spec.exactWindow, e.residual());
      if (side->kind == cuda::DeviceSideLayout::Kind::Kivi)
        spec.flushGroup = side->group;
      if (e.kind() == schema::ENCODING_FP8 &&
          e.scale_mode() == schema::SCALE_MODE_PER_HEAD)
        (i ? spec.valueScales : spec.keyScales) = codec->scales;
      if (side->kind == cuda::DeviceSideLayout::Kind::Latent)
        spec.valueBasis = std::move(codec->basis);
      if (side->kind == cuda::DeviceSideLayout::Kind::LatentKey) {
        const cpu::RopeFrequencies &rope = *codec->codec->storedBeforeRope();
        if (rope.inverse.size() != c.head_dim() / 2)
          return Status::error(where + " stores low-rank keys rotated by "
                                       "RoPE over part of the head, which "
                                       "the cuda backend does not rebuild");
        spec.keyOperands = cuda::latentKeyOperands(
            codec->basis, c.kv_heads(), c.head_dim(), side->rank, rope);
        spec.keyBasis = std::move(codec->basis);
      }
    }
    // The decode kernels' constraints, checked once for a batch of one.
    cuda::DecodeAttentionShape shape{1,
                                     c.kv_heads(),
                                     c.kv_heads(),
                                     c.head_dim(),
                                     pageSize,
                                     1,
                                     spec.key,
                                     spec.value,
                                     spec.exactSinks + spec.ringEntries()};
    StatusOr<cuda::DecodeAttentionPlan> planned =
        cuda::planDecodeAttention(shape, multiprocessors_);
    if (!planned)
      return Status::error(where + ": " + planned.status().message());
    if (auto found = selecting.find(c.layer()); found != selecting.end()) {
      const Step &s = *found->second;
      // Which encodings the sparse kernels read is planSparseDecode()'s to
      // say; the exact tokens beside the codes are the backend's.
      if (spec.keepsExact() && offloading.count(c.layer()))
        return Status::error(
            where + " selects entries sparsely over an offloaded cache that "
                    "keeps exact sinks or a window beside its codes, which "
                    "the cuda backend does not; run this artifact on the "
                    "cpu backend, or compile it without sinks and window "
                    "or without kv-offload for the GPU");
      // Summaries are rebuilt for every selecting layer alike.
      if (!selectWindowSet) {
        selectWindow_ = spec.exactWindow;
        selectWindowSet = true;
      } else if (spec.exactWindow != selectWindow_) {
        return Status::error(
            where + " keeps a window of " + std::to_string(spec.exactWindow) +
            " exact tokens beside a selecting layer that keeps " +
            std::to_string(selectWindow_) +
            ", and the cuda backend selects beside one window for all "
            "layers; run this artifact on the cpu backend");
      }
      cuda::SparseDecodeShape shape{1,
                                    uint32_t(s.heads),
                                    c.kv_heads(),
                                    c.head_dim(),
                                    pageSize,
                                    1,
                                    spec.key,
                                    spec.value,
                                    s.select,
                                    spec.exactSinks + spec.ringEntries()};
      StatusOr<cuda::SparseDecodePlan> sparse =
          cuda::planSparseDecode(shape, multiprocessors_);
      if (!sparse)
        return Status::error(where + " selects entries sparsely, and " +
                             sparse.status().message() +
                             "; run this artifact on the cpu backend");
      spec.summaryBlock = s.select.block;
    }
    const uint64_t areas =
        (spec.key.areaStride + spec.value.areaStride) * spec.kvHeads;
    pageBytes += cuda::DeviceKvPool::summaryPageBytes(spec, pageSize);
    if (auto found = offloading.find(c.layer()); found != offloading.end()) {
      if (spec.flushGroup > 1)
        return Status::error(where +
                             " offloads a kivi cache, whose groups the cuda "
                             "backend encodes in device pages only; run this "
                             "artifact on the cpu backend, or compile it "
                             "without kv-offload for the GPU");
      spec.offloaded = true;
      hostPageBytes += areas;
      pageBytes += cuda::OffloadedPages::tableBytesPerPage(spec);
      const cuda::OffloadPlan &plan = *found->second;
      if (plan.slots)
        fixedBytes += plan.slots * cuda::OffloadedPages::slotBytes(spec);
      else
        pageBytes += uint64_t(std::ceil(plan.ratio * double(areas)));
    } else {
      pageBytes += areas;
    }
    widestKv_ =
        std::max<int64_t>(widestKv_, int64_t(spec.kvHeads) * spec.headDim);
    keepsExact_ = keepsExact_ || spec.keepsExact();
    exactBytes += 2 * spec.exactSideBytes();
    specs.push_back(std::move(spec));
  }
  if (!evictCalls_.empty()) {
    std::vector<uint32_t> cacheLayers;
    for (const schema::CacheLayout &c : m.cache())
      cacheLayers.push_back(c.layer());
    StatusOr<std::unique_ptr<cuda::DeviceEviction>> eviction =
        cuda::DeviceEviction::create(*artifact_, std::move(evictCalls_), specs,
                                     cacheLayers);
    if (!eviction)
      return eviction.status();
    eviction_ = std::move(*eviction);
    pageBytes += eviction_->pageBytes() * pageSize;
  }
  if (keepsExact_) {
    cudaError_t e =
        cudaStreamCreateWithFlags(&exactSide_.stream, cudaStreamNonBlocking);
    if (!e)
      e = cudaEventCreateWithFlags(&exactSide_.fork, cudaEventDisableTiming);
    if (!e)
      e = cudaEventCreateWithFlags(&exactSide_.join, cudaEventDisableTiming);
    if (e)
      return cudaFailed("creating the exact tokens' stream", e);
  }
  uint64_t pages;
  if (options.cacheTokens) {
    pages = (options.cacheTokens + pageSize - 1) / pageSize;
  } else {
    // As for the CPU backend, room for four sequences of the full context,
    // but at most 90% (or with cacheMemory, that share and no fewer
    // sequences) of what the GPU has free beyond 2 GiB for activations and
    // cuBLASLt and the exact tokens of 64 sequences (and the offloaded
    // pages in at most half of the host's memory).
    const double share =
        options.cacheMemory > 0 ? std::min(options.cacheMemory, 1.0) : 0.9;
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    const uint64_t reserve = (2ull << 30) + fixedBytes + 64 * exactBytes;
    uint64_t fits = free > reserve
                        ? uint64_t(double(free - reserve) * share) / pageBytes
                        : 0;
    if (hostPageBytes) {
      const uint64_t host =
          uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGESIZE));
      fits = std::min<uint64_t>(fits, host / 2 / hostPageBytes);
    }
    const uint64_t fourContexts =
        (4 * uint64_t(m.model().max_positions()) + pageSize - 1) / pageSize;
    pages = options.cacheMemory > 0 ? fits : std::min(fourContexts, fits);
  }
  if (pages == 0 || pages > uint64_t(INT32_MAX) / pageSize)
    return Status::error(name + ": the device KV cache would hold " +
                         std::to_string(pages) +
                         " pages; set EngineOptions::cacheTokens to what "
                         "fits the GPU");
  StatusOr<std::unique_ptr<cuda::DeviceKvPool>> pool =
      cuda::DeviceKvPool::create(std::move(specs), pageSize, uint32_t(pages));
  if (!pool)
    return pool.status();
  pool_ = std::move(*pool);
  if (eviction_)
    KVRT_RETURN_IF_ERROR(eviction_->allocate(uint32_t(pages), pageSize));
  if (!offloadPlans_.empty()) {
    StatusOr<std::unique_ptr<cuda::OffloadedPages>> offloaded =
        cuda::OffloadedPages::create(*pool_, offloadPlans_);
    if (!offloaded)
      return Status::error(name + ": " + offloaded.status().message());
    offloaded_ = std::move(*offloaded);
  }
  uint64_t longest = pages * pageSize;
  if (m.model().max_positions() > 0)
    longest = std::min<uint64_t>(longest, m.model().max_positions());
  return prepareSparse(pages, longest);
}

Status CudaBackend::prepareSparse(uint64_t pages, uint64_t longest) {
  if (!selects_)
    return Status::ok();
  // Planned for the longest row the cache can hold (as forward() rounds
  // it) and as many decode rows as it has pages, within the budget.
  const uint32_t maxLength = cuda::planLength(
      uint32_t(std::min<uint64_t>(longest, uint64_t(INT32_MAX) / 2)));
  std::vector<cuda::SparseDecodeShape> shapes;
  for (const Step &s : steps_) {
    if (s.kernel != Kernel::Attention || !s.select.block)
      continue;
    const cuda::DeviceKvPool::Layer &layer = pool_->layer(s.layer);
    shapes.push_back({0, uint32_t(s.heads), layer.spec.kvHeads,
                      layer.spec.headDim, pool_->pageSize(), maxLength,
                      layer.spec.key, layer.spec.value, s.select,
                      layer.spec.exactSinks + layer.spec.ringEntries()});
  }
  StatusOr<cuda::SparseWorkspaceSize> size = cuda::sizeSparseWorkspace(
      shapes, uint32_t(std::min<uint64_t>(pages, 65535)), kSparseWorkspaceBytes,
      multiprocessors_);
  if (!size)
    return Status::error(artifact_->name() + ": " + size.status().message());
  StatusOr<DeviceBuffer> workspace = DeviceBuffer::allocate(size->bytes);
  if (!workspace)
    return Status::error(artifact_->name() + ": the sparse workspace: " +
                         workspace.status().message());
  sparseWorkspace_ = std::move(*workspace);
  sparseBatch_ = size->maxBatch;
  return Status::ok();
}

Status CudaBackend::forward(const BatchView &batch, float *logits) {
  const uint32_t rows = uint32_t(batch.rows);
  // Sequences in order of first appearance, their rows and lengths.
  std::vector<std::pair<uint64_t, uint64_t>> counts;
  std::unordered_map<SequenceId, size_t> index;
  for (uint32_t r = 0; r < rows; ++r) {
    auto [it, inserted] = index.emplace(batch.sequences[r], counts.size());
    if (inserted)
      counts.push_back({batch.sequences[r], 0});
    // A row finds the earlier rows of its call, whose tokens it reads
    // exact, right before it.
    else if (keepsExact_ && batch.sequences[r - 1] != batch.sequences[r])
      return Status::error(
          "the cuda backend reads a call's own tokens exact (sinks, window) "
          "where each sequence's rows are consecutive in the batch; row " +
          std::to_string(r) + " of sequence " +
          std::to_string(batch.sequences[r]) +
          " follows another sequence's row");
    ++counts[it->second].second;
  }
  if (offloaded_) {
    // Before anything is stored: the decode rows' reads must fit the
    // device pages, and the last call's copies must be in.
    const uint64_t decodeRows =
        uint64_t(std::count_if(counts.begin(), counts.end(),
                               [](const auto &c) { return c.second == 1; }));
    KVRT_RETURN_IF_ERROR(offloaded_->admit(decodeRows));
    KVRT_RETURN_IF_ERROR(offloaded_->prepareCall(uint32_t(counts.size())));
    KVRT_RETURN_IF_ERROR(offloaded_->waitForCopies(stream_));
  }
  KVRT_RETURN_IF_ERROR(pool_->reserve(counts));

  // The batch's integers, in one pinned array: tokens, positions, slots,
  // row lengths, table rows, page tables, the logit rows, then the pages
  // whose summaries the selecting layers rebuild and their slots.
  const uint32_t pageSize = pool_->pageSize();
  hasRuns_ = counts.size() < rows;
  sequenceRowsHost_.resize(counts.size());
  buildPagesHost_.clear();
  buildSlotsHost_.clear();
  for (size_t s = 0; s < counts.size(); ++s) {
    sequenceRowsHost_[s] = uint32_t(counts[s].second);
    // A prefill (a sequence's several rows) writes pages whose summaries
    // are rebuilt whole; a decode row's block is updated by its attention.
    // The window's tokens join them as they leave it.
    if (selects_ && counts[s].second > 1) {
      const uint64_t before = pool_->ledger().length(counts[s].first);
      const uint64_t after = before + counts[s].second;
      auto outside = [&](uint64_t n) {
        return n > selectWindow_ ? n - selectWindow_ : 0;
      };
      cuda::summaryBuilds(pool_->ledger().pages(counts[s].first),
                          outside(before), outside(after), pageSize,
                          buildPagesHost_, buildSlotsHost_);
    }
  }
  builds_ = uint32_t(buildPagesHost_.size());
  uint64_t longest = 0;
  for (const auto &[sequence, more] : counts)
    longest = std::max(longest, pool_->ledger().length(sequence) + more);
  planLength_ = cuda::planLength(uint32_t(longest));
  // Room for every page up to the plan's length: the stride stays while
  // the plan does.
  pageTableStride_ = (planLength_ + pageSize - 1) / pageSize;
  const std::vector<uint32_t> &wanted = *batch.logitRows;
  const size_t tableInts = counts.size() * pageTableStride_;
  const size_t exactInts = keepsExact_ ? 3 * counts.size() : 0;
  const bool observes = eviction_ && eviction_->observes();
  const size_t codedInts = selectWindow_ ? rows : 0;
  const size_t total = 5 * size_t(rows) + tableInts + wanted.size() +
                       2 * size_t(builds_) + exactInts + (observes ? rows : 0) +
                       codedInts;
  StatusOr<int32_t *> host = hostInts_.reserve(total);
  if (!host)
    return host.status();
  int32_t *h = *host;
  std::vector<uint64_t> stored(counts.size());
  for (size_t i = 0; i < counts.size(); ++i)
    stored[i] = pool_->ledger().length(counts[i].first);
  rowLengthsHost_.resize(rows);
  tableRowsHost_.resize(rows);
  for (uint32_t r = 0; r < rows; ++r) {
    const size_t s = index[batch.sequences[r]];
    const uint64_t at = stored[s]++;
    const std::vector<int32_t> &pages = pool_->ledger().pages(counts[s].first);
    h[r] = batch.tokens[r];
    h[rows + r] = batch.positions[r];
    h[2 * rows + r] =
        pages[at / pageSize] * int32_t(pageSize) + int32_t(at % pageSize);
    h[3 * rows + r] = rowLengthsHost_[r] = int32_t(at + 1);
    h[4 * rows + r] = tableRowsHost_[r] = int32_t(s);
  }
  int32_t *tables = h + 5 * rows;
  for (size_t s = 0; s < counts.size(); ++s) {
    const std::vector<int32_t> &pages = pool_->ledger().pages(counts[s].first);
    std::copy(pages.begin(), pages.end(), tables + s * pageTableStride_);
    std::fill(tables + s * pageTableStride_ + pages.size(),
              tables + (s + 1) * pageTableStride_, 0);
  }
  std::copy(wanted.begin(), wanted.end(), tables + tableInts);
  int32_t *builds = tables + tableInts + wanted.size();
  std::copy(buildPagesHost_.begin(), buildPagesHost_.end(), builds);
  std::copy(buildSlotsHost_.begin(), buildSlotsHost_.end(), builds + builds_);
  int32_t *calls = builds + 2 * builds_;
  for (size_t s = 0; s < exactInts / 3; ++s) {
    const uint64_t sequence = counts[s].first;
    calls[3 * s] = int32_t(pool_->ledger().slot(sequence));
    calls[3 * s + 1] = int32_t(pool_->ledger().length(sequence));
    calls[3 * s + 2] = int32_t(stored[s]);
  }
  if (observes) {
    const std::vector<int32_t> marks = cuda::observedRowMarks(
        batch.sequences, rows, eviction_->observe(),
        [&](uint64_t sequence) { return pool_->ledger().slot(sequence); });
    std::copy(marks.begin(), marks.end(), calls + exactInts);
  }
  int32_t *coded = calls + exactInts + (observes ? rows : 0);
  for (size_t r = 0; r < codedInts; ++r)
    coded[r] = cuda::codedTokens(rowLengthsHost_[r], int(selectWindow_), 1);

  KVRT_RETURN_IF_ERROR(batchInts_.reserve(total * sizeof(int32_t)));
  const int32_t *d = batchInts_.buffer.as<int32_t>();
  tokens_ = d;
  positions_ = d + rows;
  slots_ = d + 2 * rows;
  rowLengths_ = d + 3 * rows;
  tableRows_ = d + 4 * rows;
  pageTables_ = d + 5 * rows;
  logitRows_ = reinterpret_cast<const uint32_t *>(d + 5 * rows + tableInts);
  buildPages_ = d + 5 * rows + tableInts + wanted.size();
  buildSlots_ = buildPages_ + builds_;
  exactCalls_ = keepsExact_ ? buildSlots_ + builds_ : nullptr;
  observedRows_ = observes ? buildSlots_ + builds_ + exactInts : nullptr;
  codedLengths_ =
      codedInts ? buildSlots_ + builds_ + exactInts + (observes ? rows : 0)
                : nullptr;
  if (cudaError_t e =
          cudaMemcpyAsync(batchInts_.buffer.get(), h, total * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_))
    return cudaFailed("copying the batch to the device", e);

  for (size_t b = 0; b < buffers_.size(); ++b)
    if (bufferWritten_[b])
      KVRT_RETURN_IF_ERROR(
          buffers_[b].reserve(size_t(rows) * bufferWidths_[b] * sizeof(float)));
  if (widestGroup_)
    KVRT_RETURN_IF_ERROR(
        fusedOutput_.reserve(size_t(rows) * widestGroup_ * sizeof(float)));
  KVRT_RETURN_IF_ERROR(
      bf16Input_.reserve(size_t(rows) * widestInput_ * sizeof(uint16_t)));
  const int64_t vocab = artifact_->manifest().model().vocab_size();
  KVRT_RETURN_IF_ERROR(
      logits_.reserve(wanted.size() * size_t(vocab) * sizeof(float)));
  if (hasRuns_ || keepsExact_) {
    const size_t bytes = size_t(rows) * widestKv_ * sizeof(uint16_t);
    KVRT_RETURN_IF_ERROR(ownKeys_.reserve(bytes));
    KVRT_RETURN_IF_ERROR(ownValues_.reserve(bytes));
  }
  KVRT_RETURN_IF_ERROR(cuda::launchStorePositions(slots_, positions_, rows,
                                                  pool_->positions(), stream_));
  if (eviction_) {
    KVRT_RETURN_IF_ERROR(
        eviction_->storePositions(slots_, positions_, rows, stream_));
    KVRT_RETURN_IF_ERROR(eviction_->beforeCall(pool_->ledger(), batch.sequences,
                                               rows, planLength_, stream_));
  }

  KVRT_RETURN_IF_ERROR(runSteps(rows, uint32_t(wanted.size())));
  std::vector<std::pair<uint64_t, uint64_t>> compacted;
  if (eviction_) {
    std::vector<cuda::EvictCallSequence> called(counts.size());
    for (size_t i = 0; i < counts.size(); ++i)
      called[i] = {counts[i].first, counts[i].second, stored[i], 0, int32_t(i)};
    for (uint32_t r = 0; r < rows; ++r)
      called[index[batch.sequences[r]]].lastPosition = batch.positions[r];
    StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> done =
        eviction_->afterCall(called, *pool_, pageTables_, pageTableStride_,
                             stream_);
    if (!done)
      return done.status();
    compacted = std::move(*done);
  }

  if (batch.greedy) {
    // The tokens, not the rows x vocab floats, cross to the host.
    KVRT_RETURN_IF_ERROR(greedy_.reserve(wanted.size() * sizeof(int32_t)));
    if (!cuda::launchRowArgmax(logits_.buffer.as<float>(),
                               int64_t(wanted.size()), vocab,
                               greedy_.buffer.as<int32_t>(), stream_))
      return cudaFailed("launching the greedy tokens' argmax",
                        cudaGetLastError());
  }
  if (offloaded_) {
    // The schedules run while the GPU computes the call's later layers, so
    // they start before the results cross: a copy into pageable memory
    // returns only once the call has run.
    std::vector<cuda::OffloadedPages::CallSequence> called;
    for (size_t i = 0; i < counts.size(); ++i)
      called.push_back({counts[i].first, counts[i].second, stored[i]});
    uint32_t decodeEnd = 0;
    for (uint32_t r = 0; r < rows; ++r)
      if (decodeRow(r))
        decodeEnd = r + 1;
    KVRT_RETURN_IF_ERROR(
        offloaded_->afterCall(pool_->ledger(), called, decodeEnd, stream_));
  }
  if (batch.greedy) {
    if (cudaError_t e = cudaMemcpyAsync(batch.greedy, greedy_.buffer.get(),
                                        wanted.size() * sizeof(int32_t),
                                        cudaMemcpyDeviceToHost, stream_))
      return cudaFailed("copying the greedy tokens to the host", e);
  } else if (cudaError_t e =
                 cudaMemcpyAsync(logits, logits_.buffer.get(),
                                 wanted.size() * vocab * sizeof(float),
                                 cudaMemcpyDeviceToHost, stream_)) {
    return cudaFailed("copying the logits to the host", e);
  }
  if (cudaError_t e = cudaStreamSynchronize(stream_))
    return cudaFailed("running the batch", e);
  for (size_t i = 0; i < counts.size(); ++i)
    pool_->ledger().setLength(counts[i].first, stored[i]);
  for (const auto &[sequence, kept] : compacted)
    pool_->ledger().shrink(sequence, kept);
  return Status::ok();
}

uint64_t CudaBackend::scratchMoves() const {
  uint64_t moves = bf16Input_.moves + logits_.moves + batchInts_.moves +
                   fusedOutput_.moves + workspace_.moves + ownKeys_.moves +
                   ownValues_.moves + (offloaded_ ? offloaded_->moves() : 0) +
                   (eviction_ ? eviction_->moves() : 0) + pool_->exactMoves();
  for (const Scratch &b : buffers_)
    moves += b.moves;
  return moves;
}

Status CudaBackend::runSteps(uint32_t rows, uint32_t logitRows) {
  auto enqueue = [&]() -> Status {
    for (const Step &s : steps_)
      KVRT_RETURN_IF_ERROR(run(s, rows, logitRows));
    return Status::ok();
  };
  if (!useGraphs_ || hasRuns_)
    return enqueue();
  // A shape is captured the second time in a row it comes (the first run
  // allocates what it needs), then replayed for as long as it repeats.
  const StepShape shape{rows, logitRows, planLength_, scratchMoves()};
  auto found = graphs_.find(shape);
  if (found == graphs_.end() && lastShape_ == shape) {
    if (graphs_.size() >= 32)
      graphs_.clear();
    if (cudaError_t e =
            cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal))
      return cudaFailed("capturing a decode step", e);
    Status enqueued = enqueue();
    cudaGraph_t graph = nullptr;
    cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    KVRT_RETURN_IF_ERROR(enqueued);
    if (ended)
      return cudaFailed("capturing a decode step", ended);
    auto captured = std::make_unique<CapturedStep>();
    cudaError_t made = cudaGraphInstantiate(&captured->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (made)
      return cudaFailed("instantiating a decode step's graph", made);
    found = graphs_.emplace(shape, std::move(captured)).first;
  }
  lastShape_ = shape;
  if (found == graphs_.end())
    return enqueue();
  if (cudaError_t e = cudaGraphLaunch(found->second->exec, stream_))
    return cudaFailed("replaying a decode step", e);
  return Status::ok();
}

const float *CudaBackend::input(const Step &s, size_t i) {
  const cuda::StridedInput &from = s.strided[i];
  return from.group < 0 ? buffer(s.inputs[i])
                        : fusedOutput_.buffer.as<float>() + from.offset;
}

int64_t CudaBackend::inputStride(const Step &s, size_t i) const {
  const cuda::StridedInput &from = s.strided[i];
  return from.group < 0 ? bufferWidths_[s.inputs[i]] : from.stride;
}

Status CudaBackend::run(const Step &s, uint32_t rows, uint32_t logitRows) {
  auto in = [&](size_t i) { return input(s, i); };
  float *out = s.output == kNoBuffer ? nullptr : buffer(s.output);
  bool launched = true;
  switch (s.kernel) {
  case Kernel::Embedding:
    launched = cuda::launchEmbedding(s.weight, s.outputWidth, tokens_, rows,
                                     out, stream_);
    break;
  case Kernel::RmsNorm: {
    uint16_t *bf16 = s.writesBf16 ? bf16Input_.buffer.as<uint16_t>() : nullptr;
    const int64_t norms = rows * s.inputWidth / s.dim;
    if (s.addStep == kNoStep) {
      launched =
          cuda::launchRmsNorm(in(0), nullptr, nullptr, norms, s.dim,
                              s.normWeight, s.epsilon, out, bf16, stream_);
      break;
    }
    const Step &add = steps_[size_t(s.addStep)];
    launched = cuda::launchRmsNorm(input(add, 0), input(add, 1),
                                   buffer(add.output), norms, s.dim,
                                   s.normWeight, s.epsilon, out, bf16, stream_);
    break;
  }
  case Kernel::Linear: {
    if (s.fused && !s.runsGroup)
      return Status::ok(); // The group's first member computed it.
    uint16_t *x = bf16Input_.buffer.as<uint16_t>();
    // A refused conversion is reported below, as any refused launch.
    if (s.convertsInput &&
        !(launched = cuda::launchRowsToBf16(in(0), nullptr, rows, s.inputWidth,
                                            x, stream_)))
      break;
    if (s.runsGroup)
      return gemm_->run(x, rows, s.inputWidth, s.weight, s.groupWidth, s.bias,
                        fusedOutput_.buffer.as<float>(), stream_);
    return gemm_->run(x, rows, s.inputWidth, s.weight, s.outputWidth, s.bias,
                      out, stream_);
  }
  case Kernel::LMHead: {
    uint16_t *x = bf16Input_.buffer.as<uint16_t>();
    launched = cuda::launchRowsToBf16(in(0), logitRows_, logitRows,
                                      s.inputWidth, x, stream_);
    if (!launched)
      break;
    return gemm_->run(x, logitRows, s.inputWidth, s.weight, s.outputWidth,
                      nullptr, logits_.buffer.as<float>(), stream_);
  }
  case Kernel::Reshape:
    return Status::ok();
  case Kernel::Rope:
    if (s.foldedAway)
      return Status::ok(); // The append after it runs it.
    launched = cuda::launchRope(in(0), inputStride(s, 0), rows, s.heads, s.dim,
                                positions_, s.inverseFrequencies,
                                s.attentionFactor, s.interleaved, out, stream_);
    break;
  case Kernel::Append: {
    cuda::DeviceKvPool::Layer &layer = pool_->layer(s.layer);
    cuda::AppendArgs keys;
    keys.slots = slots_;
    keys.rows = rows;
    keys.kvHeads = layer.spec.kvHeads;
    keys.headDim = layer.spec.headDim;
    keys.pageSize = pool_->pageSize();
    keys.positions = positions_;
    cuda::AppendArgs values = keys;
    keys.src = in(0);
    keys.srcStride = uint64_t(inputStride(s, 0));
    if (s.keyRope != kNoStep) {
      // The keys' rope runs here: read what it would have read.
      const Step &rope = steps_[size_t(s.keyRope)];
      keys.src = input(rope, 0);
      keys.srcStride = uint64_t(inputStride(rope, 0));
      keys.rope = {rope.inverseFrequencies, rope.attentionFactor,
                   rope.interleaved};
    }
    keys.pool = layer.keys();
    keys.headScales = layer.keyScales.as<float>();
    keys.basis = layer.keyBasis.as<float>();
    keys.rotations = layer.keyRotations.as<double>();
    keys.ropeInverse = layer.keyRopeInverse.as<double>();
    keys.rotationScale = layer.spec.keyOperands.rotationScale;
    keys.bf16Copy =
        keepsOwnEntries(layer.spec) ? ownKeys_.buffer.as<uint16_t>() : nullptr;
    values.src = in(1);
    values.srcStride = uint64_t(inputStride(s, 1));
    values.pool = layer.values();
    values.headScales = layer.valueScales.as<float>();
    values.basis = layer.valueBasis.as<float>();
    values.bf16Copy = keepsOwnEntries(layer.spec)
                          ? ownValues_.buffer.as<uint16_t>()
                          : nullptr;
    if (layer.spec.offloaded) {
      offloaded_->residentAppend(s.layer, false, keys);
      offloaded_->residentAppend(s.layer, true, values);
    }
    cuda::QueryRope queries;
    if (s.queryRope != kNoStep) {
      const Step &rope = steps_[size_t(s.queryRope)];
      queries.src = input(rope, 0);
      queries.srcStride = uint64_t(inputStride(rope, 0));
      queries.heads = uint32_t(rope.heads);
      queries.out = buffer(rope.output);
    }
    KVRT_RETURN_IF_ERROR(cuda::launchAppends(
        keys, layer.spec.key, values, layer.spec.value, &queries, stream_));
    if (layer.spec.flushGroup > 1) {
      cuda::KiviFlushArgs flush;
      flush.view = layerView(layer);
      flush.view.tableRows = tableRows_;
      flush.view.lengths = rowLengths_;
      flush.keys = layer.keys();
      flush.values = layer.values();
      flush.rows = rows;
      return cuda::launchKiviFlush(flush, stream_);
    }
    return Status::ok();
  }
  case Kernel::Attention:
    return attention(s, in(0), out, rows);
  case Kernel::SwiGLU:
    launched = cuda::launchSwiglu(
        in(0), inputStride(s, 0), in(1), inputStride(s, 1), rows, s.inputWidth,
        out, s.writesBf16 ? bf16Input_.buffer.as<uint16_t>() : nullptr,
        stream_);
    break;
  case Kernel::Add:
    if (s.foldedAway)
      return Status::ok(); // The norm that reads the sum computes it.
    launched = cuda::launchAdd(in(0), in(1), int64_t(rows) * s.inputWidth, out,
                               stream_);
    break;
  case Kernel::Evict:
    // Compactions follow the call's steps (DeviceEviction::afterCall());
    // SnapKV records its queries now, H2O adds the rows' attention.
    if (eviction_->observes())
      return eviction_->record(s.layer, in(0), uint64_t(inputStride(s, 0)),
                               rows, positions_, observedRows_, stream_);
    for (const auto &[first, count] : prefilledRuns_) {
      cuda::H2oRows calls;
      calls.queryStride = uint64_t(inputStride(s, 0));
      calls.queries = in(0) + first * calls.queryStride;
      calls.rowTables = tableRows_ + first;
      calls.rowLengths = rowLengths_ + first;
      calls.rowPositions = positions_ + first;
      calls.rows = count;
      calls.maxLength = planLength_;
      KVRT_RETURN_IF_ERROR(eviction_->accumulate(
          s.layer, calls, *pool_, pageTables_, pageTableStride_, stream_));
    }
    return Status::ok();
  case Kernel::Prefetch:
    break; // The copies follow the call (OffloadedPages::afterCall()).
  }
  if (launched)
    return Status::ok();
  const std::string what =
      "launching " + s.call->kernel() +
      (s.call->name().empty() ? "" : " (" + s.call->name() + ")");
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed(what, e);
  return Status::error(what + " failed: the launcher refused its arguments");
}

Status CudaBackend::attention(const Step &s, const float *q, float *out,
                              uint32_t rows) {
  cuda::DeviceKvPool::Layer &layer = pool_->layer(s.layer);
  const uint32_t qHeads = uint32_t(s.heads), headDim = layer.spec.headDim;
  cuda::DecodeAttentionArgs args;
  cuda::PagedKvView &view = args.cache;
  view = layerView(layer);
  if (layer.spec.keepsExact())
    args.exactSide = exactSide_;
  args.q = q;
  args.out = out;
  args.qHeads = qHeads;
  args.scale = s.scale;
  args.slidingWindow = s.slidingWindow;
  // H2O: the decode kernels add their rows' attention to the layer's mass.
  prefilledRuns_.clear();
  args.mass = eviction_ ? eviction_->mass(s.layer) : nullptr;
  if (s.select.block && builds_)
    KVRT_RETURN_IF_ERROR(
        cuda::buildBlockSummaries(view, layer.summaries(), s.select.block,
                                  buildPages_, buildSlots_, builds_, stream_));
  // Rows the prefill kernel does not take: to the decode kernels, or in a
  // selecting layer decode rows to the sparse ones.
  auto pendingRows = [&](uint32_t first, uint32_t count) {
    return s.select.block ? selectingRows(s, args, first, count)
                          : decodeRows(args, first, count);
  };
  // A sequence's run of several rows (a prefill) goes to the prefill
  // kernel where it reads the layer; single rows (decode steps) and runs
  // it cannot read to the decode kernels, as many at once as are
  // consecutive.
  uint32_t pending = 0;
  for (uint32_t r = 0; r < rows;) {
    uint32_t end = r + 1;
    while (end < rows && tableRowsHost_[end] == tableRowsHost_[r])
      ++end;
    const uint32_t before = uint32_t(rowLengthsHost_[r] - 1);
    // A quantized layer's earlier tokens are read decoded to bf16 (its
    // exact ones from their store) where its pages are on the device.
    const bool reads = cuda::prefillAttentionReads(view, qHeads, before);
    const bool decodes =
        !reads && !layer.spec.offloaded && cuda::prefillDecodes(view);
    if (end - r == 1 || s.slidingWindow || !(reads || decodes)) {
      r = end;
      continue;
    }
    KVRT_RETURN_IF_ERROR(pendingRows(pending, r - pending));
    cuda::PrefillAttentionArgs run;
    run.cache = view;
    run.pageTable = pageTables_ + size_t(tableRowsHost_[r]) * pageTableStride_;
    if (decodes) {
      KVRT_RETURN_IF_ERROR(
          decodedEarlier_.reserve(cuda::decodedTokensBytes(view, before)));
      StatusOr<cuda::PagedKvView> decoded = cuda::decodeEarlierTokens(
          view, run.pageTable, uint32_t(tableRowsHost_[r]), before,
          decodedEarlier_.buffer.get(), &run.pageTable, stream_);
      if (!decoded)
        return decoded.status();
      run.cache = *decoded;
    }
    run.before = before;
    run.rows = end - r;
    const size_t ownOffset = size_t(r) * view.kvHeads * headDim;
    run.ownKeys = ownKeys_.buffer.as<uint16_t>() + ownOffset;
    run.ownValues = ownValues_.buffer.as<uint16_t>() + ownOffset;
    run.q = q + size_t(r) * qHeads * headDim;
    run.out = out + size_t(r) * qHeads * headDim;
    run.qHeads = qHeads;
    run.scale = s.scale;
    KVRT_RETURN_IF_ERROR(cuda::prefillAttention(run, stream_));
    if (args.mass)
      prefilledRuns_.emplace_back(r, end - r);
    r = pending = end;
  }
  KVRT_RETURN_IF_ERROR(pendingRows(pending, rows - pending));
  // Every row has read the exact tokens as they were before the call.
  view.tableRows = tableRows_;
  view.lengths = rowLengths_;
  return cuda::storeExactTokens(view, rows, stream_);
}

StatusOr<SharedPrefix> CudaBackend::forkSequence(SequenceId from,
                                                 SequenceId sequence,
                                                 uint64_t tokens) {
  const cuda::PageLedger &ledger = pool_->ledger();
  const uint64_t pageSize = pool_->pageSize();
  const uint64_t shared =
      forkGranularity()
          ? std::min(tokens, ledger.length(from)) / pageSize * pageSize
          : 0;
  if (shared == 0) {
    KVRT_RETURN_IF_ERROR(addSequence(sequence));
    return SharedPrefix{};
  }
  // The position of the last shared token, which later ones must exceed.
  const int32_t page = ledger.pages(from)[shared / pageSize - 1];
  int32_t last = 0;
  if (cudaError_t e = cudaMemcpy(
          &last, pool_->positions() + size_t(page) * pageSize + pageSize - 1,
          sizeof(int32_t), cudaMemcpyDeviceToHost))
    return cudaFailed("reading the cache's positions", e);
  KVRT_RETURN_IF_ERROR(pool_->share(from, sequence, shared));
  return SharedPrefix{shared, int64_t(last) + 1};
}

StatusOr<std::vector<std::vector<int32_t>>>
CudaBackend::cachedPositions(SequenceId sequence, uint32_t layer) const {
  const cuda::PageLedger &ledger = pool_->ledger();
  if (!ledger.contains(sequence))
    return Status::error("sequence " + std::to_string(sequence) +
                         " is not in the device cache");
  const uint64_t length = ledger.length(sequence);
  if (eviction_)
    return eviction_->positions(layer, ledger.pages(sequence), length);
  // Without eviction every layer and head holds every token so far.
  std::vector<int32_t> all(length);
  for (uint64_t i = 0; i < length; ++i) {
    const int32_t page = ledger.pages(sequence)[i / pool_->pageSize()];
    if (cudaError_t e =
            cudaMemcpy(&all[i],
                       pool_->positions() + size_t(page) * pool_->pageSize() +
                           i % pool_->pageSize(),
                       sizeof(int32_t), cudaMemcpyDeviceToHost))
      return cudaFailed("reading the cache's positions", e);
  }
  return std::vector<std::vector<int32_t>>(pool_->layer(layer).spec.kvHeads,
                                           all);
}

cuda::PagedKvView
CudaBackend::layerView(const cuda::DeviceKvPool::Layer &layer) const {
  cuda::PagedKvView view;
  view.key = layer.spec.key;
  view.value = layer.spec.value;
  view.keys = layer.keys();
  view.values = layer.values();
  view.positions = pool_->positions();
  view.pageTables = pageTables_;
  view.pageTableStride = pageTableStride_;
  view.pageSize = pool_->pageSize();
  view.kvHeads = layer.spec.kvHeads;
  view.headDim = layer.spec.headDim;
  view.valueBasis = layer.valueBasis.as<float>();
  view.keyAxes = layer.keyAxes.as<uint32_t>();
  view.keyFrequencies = layer.keyFrequencies.as<uint32_t>();
  if (layer.spec.keepsExact()) {
    view.exact = layer.exact();
    view.exact.calls = exactCalls_;
    view.exact.ownKeys = ownKeys_.buffer.as<uint16_t>();
    view.exact.ownValues = ownValues_.buffer.as<uint16_t>();
  }
  return view;
}

Status CudaBackend::selectingRows(const Step &s,
                                  const cuda::DecodeAttentionArgs &args,
                                  uint32_t first, uint32_t count) {
  // Consecutive decode rows read consecutive page tables (sequences are
  // numbered as they first appear), so they share one sparse launch.
  for (const uint32_t end = first + count; first < end;) {
    const bool sparse = decodeRow(first);
    uint32_t next = first + 1;
    while (next < end && decodeRow(next) == sparse &&
           (!sparse || tableRowsHost_[next] == tableRowsHost_[next - 1] + 1))
      ++next;
    KVRT_RETURN_IF_ERROR(sparse ? sparseRows(s, args, first, next - first)
                                : decodeRows(args, first, next - first));
    first = next;
  }
  return Status::ok();
}

Status CudaBackend::sparseRows(const Step &s,
                               const cuda::DecodeAttentionArgs &args,
                               uint32_t first, uint32_t count) {
  cuda::DeviceKvPool::Layer &layer = pool_->layer(s.layer);
  const uint32_t qHeads = args.qHeads, headDim = args.cache.headDim;
  cuda::SparseDecodeShape shape{0,
                                qHeads,
                                args.cache.kvHeads,
                                headDim,
                                args.cache.pageSize,
                                planLength_,
                                args.cache.key,
                                args.cache.value,
                                s.select,
                                args.cache.exact.entries()};
  for (const uint32_t end = first + count; first < end;) {
    uint32_t group = std::min(end - first, sparseBatch_);
    cuda::SparseDecodePlan plan;
    // prepareSparse() sized the workspace for every group of up to
    // sparseBatch_ rows of lengths the cache can hold; halving serves what
    // it did not foresee.
    for (;;) {
      shape.batch = group;
      StatusOr<cuda::SparseDecodePlan> planned =
          cuda::planSparseDecode(shape, multiprocessors_);
      if (!planned)
        return planned.status();
      if (planned->workspaceBytes <= sparseWorkspace_.size()) {
        plan = *planned;
        break;
      }
      if (group == 1)
        return Status::error(
            "sparse decode of rows of up to " + std::to_string(planLength_) +
            " tokens needs a workspace of " +
            std::to_string(planned->workspaceBytes) + " bytes, more than the " +
            std::to_string(sparseWorkspace_.size()) +
            " the cuda backend planned for the longest row its cache holds");
      group = std::max<uint32_t>(1, group / 2);
    }
    cuda::SparseDecodeArgs sparse;
    sparse.cache = args.cache;
    sparse.cache.pageTables =
        pageTables_ + size_t(tableRowsHost_[first]) * pageTableStride_;
    sparse.cache.tableRows = nullptr;
    sparse.cache.lengths = rowLengths_ + first;
    if (codedLengths_)
      sparse.codedLengths = codedLengths_ + first;
    // The exact splits' rows: table rows from the first one's, own tokens
    // from the call's row `first`.
    if (sparse.cache.exact.active()) {
      sparse.cache.exact.calls += 3 * size_t(tableRowsHost_[first]);
      sparse.cache.exact.firstRow = first;
      sparse.exactSide = exactSide_;
    }
    sparse.summaries = layer.summaries();
    sparse.q = args.q + size_t(first) * qHeads * headDim;
    sparse.out = args.out + size_t(first) * qHeads * headDim;
    sparse.queryPositions = positions_ + first;
    sparse.batch = group;
    sparse.qHeads = qHeads;
    sparse.scale = args.scale;
    sparse.slidingWindow = args.slidingWindow;
    sparse.workspace = sparseWorkspace_.get();
    if (layer.spec.offloaded) {
      sparse.resident = offloaded_->resident(s.layer);
      offloaded_->mirrorSelection(s.layer, uint32_t(tableRowsHost_[first]),
                                  first + group, sparse);
    }
    // Both levels, then attention over what they kept (whose launch also
    // adds this step's token to its block's summary, for the next step).
    KVRT_RETURN_IF_ERROR(cuda::selectSparseEntries(sparse, plan, stream_));
    KVRT_RETURN_IF_ERROR(cuda::sparseAttention(sparse, plan, stream_));
    first += group;
  }
  return Status::ok();
}

Status CudaBackend::decodeRows(cuda::DecodeAttentionArgs args, uint32_t first,
                               uint32_t count) {
  const uint32_t qHeads = args.qHeads, headDim = args.cache.headDim;
  const float *q = args.q;
  float *out = args.out;
  cuda::PagedKvView &view = args.cache;
  for (const uint32_t end = first + count; first < end;) {
    uint32_t group = 0;
    cuda::DecodeAttentionPlan plan;
    // Halve the group until its plan's workspace fits.
    for (uint32_t n = std::min<uint32_t>(end - first, 65535);;) {
      const int32_t longest = *std::max_element(
          rowLengthsHost_.begin() + first, rowLengthsHost_.begin() + first + n);
      cuda::DecodeAttentionShape shape{n,
                                       qHeads,
                                       view.kvHeads,
                                       headDim,
                                       view.pageSize,
                                       uint32_t(longest),
                                       view.key,
                                       view.value,
                                       view.exact.entries(),
                                       args.mass != nullptr};
      StatusOr<cuda::DecodeAttentionPlan> planned =
          cuda::planDecodeAttention(shape, multiprocessors_);
      if (!planned)
        return planned.status();
      if (planned->workspaceBytes <= kAttentionWorkspaceBytes || n == 1) {
        plan = *planned;
        group = n;
        break;
      }
      n = std::max<uint32_t>(1, n / 2);
    }
    KVRT_RETURN_IF_ERROR(workspace_.reserve(plan.workspaceBytes));
    view.tableRows = tableRows_ + first;
    view.lengths = rowLengths_ + first;
    view.exact.firstRow = first;
    args.q = q + size_t(first) * qHeads * headDim;
    args.out = out + size_t(first) * qHeads * headDim;
    args.queryPositions = positions_ + first;
    args.batch = group;
    args.workspace = workspace_.buffer.get();
    KVRT_RETURN_IF_ERROR(cuda::decodeAttention(args, plan, stream_));
    first += group;
  }
  return Status::ok();
}

} // namespace

StatusOr<std::unique_ptr<Backend>>
createCudaBackend(std::shared_ptr<const Artifact> artifact,
                  const EngineOptions &options) {
  auto backend = std::make_unique<CudaBackend>(std::move(artifact));
  KVRT_RETURN_IF_ERROR(backend->prepare(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

} // namespace kvrt
