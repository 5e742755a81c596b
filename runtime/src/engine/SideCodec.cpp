//===- SideCodec.cpp - The codec of one side of a cache layer -------------===//
#include "runtime/src/engine/SideCodec.h"

#include <cstring>
#include <string>

namespace kvrt {

StatusOr<SideCodec> makeSideCodec(const Artifact &artifact,
                                  const schema::CacheLayout &layout,
                                  const schema::Encoding &encoding,
                                  CacheSide side) {
  const std::string where = "layer " + std::to_string(layout.layer()) +
                            (side == CacheSide::Value ? " value" : " key");
  SideCodec result;
  if (encoding.has_scale_tensor()) {
    const schema::Tensor &t =
        artifact.manifest().tensors(int(encoding.scale_tensor()));
    if (t.dtype() != schema::DTYPE_F32)
      return Status::error(artifact.name() + ": " + where + " scale tensor \"" +
                           t.name() + "\" must be f32");
    StatusOr<ByteView> bytes = artifact.tensorData(encoding.scale_tensor());
    if (!bytes)
      return bytes.status();
    result.scales.resize(bytes->size / sizeof(float));
    std::memcpy(result.scales.data(), bytes->data,
                result.scales.size() * sizeof(float));
  }
  CodecContext context;
  context.layer = layout.layer();
  context.side = side;
  context.kvHeads = layout.kv_heads();
  context.headDim = layout.head_dim();
  context.scales = result.scales;
  StatusOr<std::unique_ptr<Codec>> codec = makeCodec(encoding, context);
  if (!codec)
    return Status::error(artifact.name() + ": " + codec.status().message());
  result.codec = std::move(*codec);
  return result;
}

} // namespace kvrt
