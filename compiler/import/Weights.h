//===- Weights.h - Weights as importers hand them over ----------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_WEIGHTS_H
#define KVOPT_COMPILER_IMPORT_WEIGHTS_H

#include "kvrt/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvopt::import {

enum class WeightType { F32, F16, BF16 };

/// The bytes of one weight, row-major in Hugging Face layout (out x in for
/// projections). `data` points into a mapped file or into `owner`'s memory;
/// `owner` keeps whichever alive for as long as the weight is used.
struct Weight {
  WeightType type = WeightType::F32;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr;
  uint64_t byteSize = 0;
  std::shared_ptr<const void> owner;
};

/// Finds weights by their Hugging Face names
/// (`model.layers.0.self_attn.q_proj.weight`).
class WeightSource {
public:
  virtual ~WeightSource() = default;
  /// The weight named `name`, checked to have `expectedShape`.
  virtual kvrt::StatusOr<Weight>
  get(const std::string &name, const std::vector<int64_t> &expectedShape) = 0;
  /// True when the source has a weight of that name.
  virtual bool has(const std::string &name) const = 0;
};

/// "[576, 49152]": for messages.
std::string formatShape(const std::vector<int64_t> &shape);

} // namespace kvopt::import

#endif // KVOPT_COMPILER_IMPORT_WEIGHTS_H
