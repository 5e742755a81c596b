//===- Weights.h - Weights as importers hand them over ----------*- C++ -*-===//
#ifndef KVOPT_COMPILER_IMPORT_WEIGHTS_H
#define KVOPT_COMPILER_IMPORT_WEIGHTS_H

#include "kvrt/Status.h"
#include "runtime/schema/kvpkg.pb.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvopt::import {

enum class WeightType { F32, F16, BF16 };

/// Passes the bytes of a weight, in order and in pieces of any size, to a
/// sink; the same types as kvrt::BlobSink and kvrt::BlobProducer, so that
/// the artifact writer calls it directly.
using WeightSink = std::function<kvrt::Status(const void *data, size_t size)>;
using WeightProducer = std::function<kvrt::Status(const WeightSink &sink)>;

/// Values the runtime generates itself rather than read them from the
/// artifact (its synthetic tensors, kvrt/Synthetic.h):
/// element i is kvrt::syntheticValue(seed, i, bound * 2^-23), uniform in
/// [-bound, bound), or `constant` everywhere when `bound` is 0.
struct GeneratedValues {
  uint64_t seed = 0;
  float bound = 0;
  float constant = 0;
};

/// The bytes of a weight that no memory holds (a synthetic model's): a
/// producer streams them into the artifact as it is written or, when
/// `generated` is set, the artifact leaves them to the runtime.
struct DeferredBytes {
  WeightProducer producer;
  std::optional<GeneratedValues> generated;
  explicit operator bool() const { return producer || generated; }
};

/// A weight as its source file holds it in a ggml block format (GGUF's
/// Q8_0, Q4_0, Q4_1): rows of whole blocks, in the weight's row order. The
/// artifact stores these bytes instead of the f32 values the module holds,
/// which are exactly their values (kvrt::decodeValues), unless a pass
/// changed the weight.
struct WeightBlocks {
  kvrt::schema::DType dtype = kvrt::schema::DTYPE_UNSPECIFIED;
  std::shared_ptr<const std::vector<uint8_t>> bytes;
};

/// The bytes of one weight, row-major in Hugging Face layout (out x in for
/// projections). `data` points into a mapped file or into `owner`'s memory;
/// `owner` keeps whichever alive for as long as the weight is used. A
/// weight that no memory holds has no `data` but `deferred` bytes instead.
struct Weight {
  WeightType type = WeightType::F32;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr;
  uint64_t byteSize = 0;
  std::shared_ptr<const void> owner;
  DeferredBytes deferred;
  /// Where the source holds the weight in a block format.
  std::optional<WeightBlocks> blocks;
};

/// The deferred weights of a module, by the key of the `dense_resource`
/// (with no blob) that names each: the exporter streams them into the
/// artifact or records how the runtime generates them.
using DeferredWeights = std::map<std::string, DeferredBytes>;

/// The weights whose source holds them in a block format, by the key of
/// the `dense_resource` that holds their f32 values.
using BlockWeights = std::map<std::string, WeightBlocks>;

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
