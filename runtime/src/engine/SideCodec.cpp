//===- SideCodec.cpp - The codec of one side of a cache layer -------------===//
#include "runtime/src/engine/SideCodec.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/engine/PlanSteps.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

namespace kvrt {
namespace {

/// The RoPE of the rope call whose output `layer`'s append stores as keys
/// (through reshapes), or nothing when no rope call produces them.
std::optional<cpu::RopeFrequencies> keyRope(const schema::Plan &plan,
                                            uint32_t layer, int64_t headDim) {
  PlanSteps steps = planSteps(plan);
  for (const PlanStep &step : steps.steps) {
    if (step.kernel != Kernel::Append || step.call->append().layer() != layer)
      continue;
    int64_t producer = step.producers[0];
    if (producer == kNoStep ||
        steps.steps[size_t(producer)].kernel != Kernel::Rope)
      return std::nullopt;
    return cpu::ropeFrequencies(
        steps.steps[size_t(producer)].call->rope().rope(), headDim);
  }
  return std::nullopt;
}

} // namespace

StatusOr<SideCodec> makeSideCodec(const Artifact &artifact,
                                  const schema::CacheLayout &layout,
                                  const schema::Encoding &encoding,
                                  CacheSide side) {
  const std::string where = "layer " + std::to_string(layout.layer()) +
                            (side == CacheSide::Value ? " value" : " key");
  SideCodec result;
  // An f32 tensor of the encoding's into `out`.
  auto readF32 = [&](uint32_t index, const char *what,
                     std::vector<float> &out) -> Status {
    const schema::Tensor &t = artifact.manifest().tensors(int(index));
    if (t.dtype() != schema::DTYPE_F32)
      return Status::error(artifact.name() + ": " + where + " " + what +
                           " tensor \"" + t.name() + "\" must be f32");
    StatusOr<ByteView> bytes = artifact.tensorData(index);
    if (!bytes)
      return bytes.status();
    out.resize(bytes->size / sizeof(float));
    std::memcpy(out.data(), bytes->data, out.size() * sizeof(float));
    return Status::ok();
  };
  if (encoding.has_scale_tensor())
    KVRT_RETURN_IF_ERROR(
        readF32(encoding.scale_tensor(), "scale", result.scales));
  if (encoding.kind() == schema::ENCODING_LOWRANK &&
      encoding.has_basis_tensor())
    KVRT_RETURN_IF_ERROR(
        readF32(encoding.basis_tensor(), "basis", result.basis));
  // A format 1.0 key basis has no mean column: its latents are taken
  // around 0.
  if (encoding.kind() == schema::ENCODING_LOWRANK && side == CacheSide::Key &&
      result.basis.size() == size_t(layout.kv_heads()) * layout.head_dim() *
                                 (encoding.rank() + 1)) {
    const size_t rows = size_t(layout.kv_heads()) * layout.head_dim();
    const uint32_t rank = encoding.rank();
    std::vector<float> widened(rows * (rank + 2), 0.0f);
    for (size_t i = 0; i < rows; ++i)
      std::copy_n(result.basis.data() + i * (rank + 1), rank + 1,
                  widened.data() + i * (rank + 2));
    result.basis = std::move(widened);
  }
  // Folded values are on their axes already: the basis is the identity's
  // first `rank` columns around 0, which a backend without a folded path
  // (the CUDA kernels) applies as any other.
  if (encoding.kind() == schema::ENCODING_LOWRANK && encoding.folded()) {
    const uint32_t d = layout.head_dim(), rank = encoding.rank();
    if (rank < d) {
      result.basis.assign(size_t(layout.kv_heads()) * d * (rank + 1), 0.0f);
      for (uint32_t h = 0; h < layout.kv_heads(); ++h)
        for (uint32_t j = 0; j < rank; ++j)
          result.basis[(size_t(h) * d + j) * (rank + 1) + j] = 1.0f;
    }
  }
  CodecContext context;
  context.layer = layout.layer();
  context.side = side;
  context.kvHeads = layout.kv_heads();
  context.headDim = layout.head_dim();
  context.scales = result.scales;
  context.basis = result.basis;
  // Low-rank keys are stored before RoPE: their codec rotates them.
  std::optional<cpu::RopeFrequencies> rope;
  if (encoding.kind() == schema::ENCODING_LOWRANK && side == CacheSide::Key)
    rope =
        keyRope(artifact.manifest().plan(), layout.layer(), layout.head_dim());
  context.rope = rope ? &*rope : nullptr;
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(encoding, context);
  if (!codec)
    return Status::error(artifact.name() + ": " + codec.status().message());
  result.codec = std::move(*codec);
  return result;
}

} // namespace kvrt
