//===- SideCodec.h - The codec of one side of a cache layer -----*- C++ -*-===//
#ifndef KVRT_ENGINE_SIDECODEC_H
#define KVRT_ENGINE_SIDECODEC_H

#include "kvrt/Artifact.h"
#include "runtime/src/cache/Codec.h"

#include <memory>
#include <vector>

namespace kvrt {

struct SideCodec {
  std::unique_ptr<Codec> codec;
  /// The encoding's scale tensor (f32: one per KV head for fp8 per_head,
  /// one for nvfp4); empty when it has none.
  std::vector<float> scales;
  /// lowrank: the basis tensor, [kv_heads / group][group head_dim][rank +
  /// 1] (values) or [rank + 2] (keys, a format 1.0 basis widened with a
  /// zero mean); empty otherwise.
  std::vector<float> basis;
};

/// The codec that stores `side` of `layout` as `encoding` (the layout's own
/// or another, such as the bf16 copy the fidelity probe keeps), or one
/// sentence naming the artifact and the layer on why it cannot.
StatusOr<SideCodec> makeSideCodec(const Artifact &artifact,
                                  const schema::CacheLayout &layout,
                                  const schema::Encoding &encoding,
                                  CacheSide side);

} // namespace kvrt

#endif // KVRT_ENGINE_SIDECODEC_H
