//===- RandomWeights.h - A synthetic model's weights ------------*- C++ -*-===//
//
// The weights of a synthetic model are the values kvrt generates for a
// synthetic tensor (kvrt/Synthetic.h): element i is a
// function of the tensor's seed and i alone. The compiler makes the same
// values when the artifact is to hold them, so that an artifact that stores
// its weights and one that leaves them to the runtime compute alike. Any
// range of a tensor is generated independently of the others, on any number
// of threads, and streamed in chunks: a tensor is never held whole.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_IMPORT_SYNTHETIC_RANDOMWEIGHTS_H
#define KVOPT_COMPILER_IMPORT_SYNTHETIC_RANDOMWEIGHTS_H

#include "compiler/import/Weights.h"

#include <cstdint>
#include <string_view>

namespace kvopt::import::synthetic {

/// The seed of the tensor `name` of a model seeded `seed`.
uint64_t tensorSeed(uint64_t seed, std::string_view name);

/// Writes the bf16 values `begin` to `begin + count - 1` of a tensor
/// generated as `values` says into `out`, on up to `threads` threads (0:
/// one per core).
void fillBf16(const GeneratedValues &values, uint64_t begin, uint64_t count,
              uint16_t *out, unsigned threads = 0);

/// Streams the `count` bf16 values of such a tensor to a sink in chunks,
/// making the next chunk on every core while the sink takes the current
/// one.
WeightProducer streamBf16(const GeneratedValues &values, uint64_t count);

} // namespace kvopt::import::synthetic

#endif // KVOPT_COMPILER_IMPORT_SYNTHETIC_RANDOMWEIGHTS_H
