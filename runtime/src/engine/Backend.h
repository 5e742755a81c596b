//===- Backend.h - What the engine needs from a backend ---------*- C++ -*-===//
#ifndef KVRT_ENGINE_BACKEND_H
#define KVRT_ENGINE_BACKEND_H

#include "kvrt/Runtime.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace kvrt {

/// A batch the engine has checked: known sequences, token ids in range,
/// positions increasing per sequence past those already stored.
struct BatchView {
  size_t rows = 0;
  const int32_t *tokens = nullptr;
  const int32_t *positions = nullptr;
  const SequenceId *sequences = nullptr;
  /// Rows whose logits are wanted, increasing.
  const std::vector<uint32_t> *logitRows = nullptr;
  /// When set, the index of each wanted row's largest logit (the first of
  /// equal ones) goes here instead of its logits.
  int32_t *greedy = nullptr;
};

struct CacheStats {
  double bytesPerToken = 0;
  uint64_t bytesInUse = 0;
  uint64_t peakBytes = 0;
  /// Tokens the pool holds (the least of its layers').
  uint64_t capacityTokens = 0;
  /// Eviction: compactions run and entries dropped, over all layers.
  uint64_t compactions = 0;
  uint64_t evictedEntries = 0;
  EngineStats::Offload offload;
};

/// What a sequence added by Backend::forkSequence() holds.
struct SharedPrefix {
  uint64_t tokens = 0;
  /// One past the position of its last token (0 when it holds none).
  int64_t nextPosition = 0;
};

/// Runs one artifact's plan and owns its KV cache.
class Backend {
public:
  virtual ~Backend() = default;
  virtual Status addSequence(SequenceId sequence) = 0;
  /// Adds `sequence` holding as many of the first `tokens` tokens of
  /// `from` as the backend can share rather than copy (whole pages), or
  /// none: see Engine::forkSequence().
  virtual StatusOr<SharedPrefix>
  forkSequence(SequenceId from, SequenceId sequence, uint64_t tokens) {
    (void)from;
    (void)tokens;
    KVRT_RETURN_IF_ERROR(addSequence(sequence));
    return SharedPrefix{};
  }
  /// See Engine::forkGranularity().
  virtual uint64_t forkGranularity() const { return 0; }
  virtual void removeSequence(SequenceId sequence) = 0;
  /// Runs the plan on `batch`, writing logitRows->size() x vocab floats to
  /// `logits`, or with batch.greedy the rows' greedy tokens there (`logits`
  /// then holds anything: the backend may use it). On error nothing is
  /// stored.
  virtual Status forward(const BatchView &batch, float *logits) = 0;
  virtual CacheStats cacheStats() const = 0;
  /// See Engine::cachedPositions().
  virtual StatusOr<std::vector<std::vector<int32_t>>>
  cachedPositions(SequenceId sequence, uint32_t layer) const = 0;
  /// See Engine::fidelity().
  virtual std::vector<LayerFidelity> fidelity() const = 0;
  virtual void resetFidelity() = 0;
};

/// The reference backend: fp32 kernels on a thread pool, paged host cache.
StatusOr<std::unique_ptr<Backend>>
createCpuBackend(std::shared_ptr<const Artifact> artifact,
                 const EngineOptions &options);

/// The GPU backend (backends/cuda/CudaBackend.cpp): the plan on one CUDA
/// device, the cache in device pages; built when the CUDA toolkit is found.
StatusOr<std::unique_ptr<Backend>>
createCudaBackend(std::shared_ptr<const Artifact> artifact,
                  const EngineOptions &options);

} // namespace kvrt

#endif // KVRT_ENGINE_BACKEND_H
