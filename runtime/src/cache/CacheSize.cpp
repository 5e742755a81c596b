//===- CacheSize.cpp - Bytes per token of a cache layout ------------------===//
#include "kvrt/Artifact.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/sparse/BoundCodes.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace kvrt {

uint32_t pageSizeFor(const Codec &key, const Codec &value, uint32_t requested) {
  uint32_t group = std::lcm(key.groupTokens(), value.groupTokens());
  return (requested + group - 1) / group * group;
}

StatusOr<CacheSideBytes>
cacheSideBytesPerToken(const schema::CacheLayout &layout) {
  CodecContext context;
  context.layer = layout.layer();
  context.kvHeads = layout.kv_heads();
  context.headDim = layout.head_dim();
  std::unique_ptr<Codec> codecs[2];
  const schema::Encoding *encodings[2] = {&layout.key(), &layout.value()};
  for (int i = 0; i < 2; ++i) {
    context.side = i ? CacheSide::Value : CacheSide::Key;
    // A low-rank side takes what its latent of `rank` coordinates takes
    // (its basis lives in a tensor, not in pages).
    const schema::Encoding *encoding = encodings[i];
    context.headDim = layout.head_dim();
    // Each head of a group holds rank / group of the group's latent.
    if (encoding->kind() == schema::ENCODING_LOWRANK) {
      const uint32_t group = std::max<uint32_t>(encoding->group(), 1);
      if (encoding->rank() == 0 || encoding->rank() % group ||
          encoding->rank() >= uint64_t(group) * layout.head_dim())
        return Status::error(
            std::string(i ? "the values" : "the keys") + " of layer " +
            std::to_string(layout.layer()) + " use #kv.lowrank of rank " +
            std::to_string(encoding->rank()) + " and group " +
            std::to_string(group) +
            ", which must be a multiple of the group below group x head_dim");
      context.headDim = encoding->rank() / group;
      encoding = &encoding->latent();
    }
    // Sizes do not depend on scale values, only on how many there are.
    schema::EncodingKind kind = encoding->kind();
    context.scales.assign(kind == schema::ENCODING_FP8     ? layout.kv_heads()
                          : kind == schema::ENCODING_NVFP4 ? 1
                                                           : 0,
                          1.0f);
    StatusOr<std::unique_ptr<Codec>> codec = makeCodec(*encoding, context);
    if (!codec)
      return codec.status();
    codecs[i] = std::move(*codec);
  }
  uint32_t page = pageSizeFor(*codecs[0], *codecs[1], layout.page_size());
  const double heads = double(layout.kv_heads());
  return CacheSideBytes{heads * double(codecs[0]->headBytes(page)) / page,
                        heads * double(codecs[1]->headBytes(page)) / page};
}

StatusOr<double> cacheBytesPerToken(const schema::CacheLayout &layout) {
  StatusOr<CacheSideBytes> sides = cacheSideBytesPerToken(layout);
  if (!sides)
    return sides.status();
  return sides->keys + sides->values;
}

double summaryBytesPerToken(const schema::CacheLayout &layout,
                            const schema::SelectParams &select) {
  const uint32_t block = select.block();
  return block ? double(sparse::summaryBytesPerPage(
                     layout.kv_heads(), layout.head_dim(), block, block)) /
                     block
               : 0.0;
}

} // namespace kvrt
