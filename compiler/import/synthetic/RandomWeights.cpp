//===- RandomWeights.cpp - A synthetic model's weights --------------------===//
#include "compiler/import/synthetic/RandomWeights.h"

#include "kvrt/Synthetic.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

namespace kvopt::import::synthetic {
namespace {

/// As kvrt::Artifact generates a synthetic bf16 tensor.
void fillRange(const GeneratedValues &v, uint64_t begin, uint64_t count,
               uint16_t *out) {
  if (!(v.bound > 0)) {
    std::fill(out, out + count, kvrt::syntheticBf16(v.constant));
    return;
  }
  float step = std::ldexp(v.bound, -23);
  for (uint64_t i = 0; i < count; ++i)
    out[i] = kvrt::syntheticBf16(kvrt::syntheticValue(v.seed, begin + i, step));
}

/// Values per chunk a producer hands to the sink: 32 MiB of bf16.
constexpr uint64_t kChunkValues = uint64_t(16) << 20;
/// Below this many values per thread, one thread does the work.
constexpr uint64_t kMinValuesPerThread = uint64_t(1) << 16;

} // namespace

uint64_t tensorSeed(uint64_t seed, std::string_view name) {
  uint64_t hash = 0xCBF29CE484222325ull; // FNV-1a
  for (char c : name)
    hash = (hash ^ uint8_t(c)) * 0x100000001B3ull;
  return kvrt::mix64(hash ^ kvrt::mix64(seed));
}

void fillBf16(const GeneratedValues &values, uint64_t begin, uint64_t count,
              uint16_t *out, unsigned threads) {
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  uint64_t useful = std::max<uint64_t>(1, count / kMinValuesPerThread);
  threads = unsigned(std::min<uint64_t>(threads, useful));
  uint64_t per = (count + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) {
    uint64_t from = std::min(count, t * per);
    uint64_t n = std::min(count, from + per) - from;
    workers.emplace_back(fillRange, values, begin + from, n, out + from);
  }
  fillRange(values, begin, std::min(count, per), out);
  for (std::thread &w : workers)
    w.join();
}

WeightProducer streamBf16(const GeneratedValues &values, uint64_t count) {
  return [values, count](const WeightSink &sink) -> kvrt::Status {
    uint64_t chunk = std::min(count, kChunkValues);
    std::vector<uint16_t> current(chunk), next(chunk);
    fillBf16(values, 0, chunk, current.data());
    for (uint64_t begin = 0; begin < count;) {
      uint64_t n = std::min(chunk, count - begin);
      uint64_t after = begin + n;
      uint64_t nextN = std::min(chunk, count - after);
      // The next chunk is made while the sink writes this one.
      std::thread maker;
      if (nextN)
        maker =
            std::thread([&] { fillBf16(values, after, nextN, next.data()); });
      kvrt::Status status = sink(current.data(), n * sizeof(uint16_t));
      if (maker.joinable())
        maker.join();
      if (!status)
        return status;
      current.swap(next);
      begin = after;
    }
    return kvrt::Status::ok();
  };
}

} // namespace kvopt::import::synthetic
