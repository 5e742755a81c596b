//===- DecodeBench.h - Timing prefill and decode through the engine -*- C++
//-*-===//
//
// What `kvopt bench` measures, on any backend, through the public Engine
// API alone: `batch` sequences of `context` random tokens prefilled (each
// in chunks of `chunk` tokens), the first one's prefill timed (time to
// first token), then `steps` decode steps of the whole batch after
// `warmup` ones, each ending when its greedy next tokens are on the host
// (Engine::stepGreedy: the CUDA backend picks them on the device). The GPU
// benchmark (test/cuda/EngineMain.cpp) adds the copy-bandwidth floor.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_TOOLS_KVOPT_DECODEBENCH_H
#define KVOPT_TOOLS_KVOPT_DECODEBENCH_H

#include "kvrt/Artifact.h"
#include "kvrt/Runtime.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace kvopt::bench {

struct DecodeBenchOptions {
  int64_t batch = 1;
  int64_t context = 1024;
  int64_t steps = 32;
  int64_t warmup = 3;
  /// Prefill tokens per forward; 0: the whole context at once.
  int64_t chunk = 0;
};

struct DecodeBenchResult {
  /// Creating the engine (weights converted or uploaded).
  double loadSeconds = 0;
  /// The first sequence's prefill, logits of its last token on the host.
  double firstTokenSeconds = 0;
  /// The slowest sequence's prefill, and every sequence's in all (each is
  /// prefilled alone, one after another).
  double slowestPrefillSeconds = 0, prefillSeconds = 0;
  /// Decode step times: median, fastest and slowest.
  double stepSeconds = 0, fastestStep = 0, slowestStep = 0;
  double kvBytesPerToken = 0;
  /// Bytes a decode step must read: the weights of every call but the
  /// embedding (at the backend's width: f32 on cpu, bf16 on cuda, norms
  /// f32), and the cached keys and values of the whole batch; where a
  /// layer selects (kv-sparse-select), its block summaries, the keys of the
  /// top blocks' entries and the keys and values of the entries attended.
  double weightBytes = 0;
  double cacheBytes = 0;
  /// Offloaded layers (kv-offload): what the timed steps read and copied.
  kvrt::EngineStats::Offload offload;
  double decodeTokensPerSecond() const {
    return stepSeconds > 0 ? double(batchSize) / stepSeconds : 0;
  }
  int64_t batchSize = 0;
};

/// `count` deterministic token ids in [3, vocab) (the first ids are often
/// special), the same for the same seed.
std::vector<int32_t> randomTokens(int64_t count, int64_t vocab, uint64_t seed);

/// Runs the benchmark of `options` on a new engine made with `engine`, or
/// says why it cannot (an invalid option, a cache too small, a backend
/// that refuses the artifact).
kvrt::StatusOr<DecodeBenchResult>
runDecodeBench(std::shared_ptr<const kvrt::Artifact> artifact,
               const kvrt::EngineOptions &engine,
               const DecodeBenchOptions &options);

} // namespace kvopt::bench

#endif // KVOPT_TOOLS_KVOPT_DECODEBENCH_H
