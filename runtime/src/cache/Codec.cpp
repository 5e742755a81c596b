//===- Codec.cpp - Default attention steps and the codec factory ----------===//
#include "runtime/src/cache/Codec.h"
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <cstring>
#include <string>
#include <vector>

namespace kvrt {

void Codec::prepareQuery(const float *q, uint32_t, float *prepared) const {
  std::memcpy(prepared, q, headDim_ * sizeof(float));
}

void Codec::score(const float *prepared, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *scores, float *scratch) const {
  decode(area, slot, scratch);
  const uint32_t stride = preparedQuerySize();
  for (int64_t h = 0; h < heads; ++h)
    scores[h] = codecs::dot(prepared + h * stride, scratch, headDim_);
}

void Codec::accumulate(const float *weights, int64_t heads, const uint8_t *area,
                       uint32_t slot, float *acc, float *scratch) const {
  decode(area, slot, scratch);
  for (int64_t h = 0; h < heads; ++h)
    codecs::addScaled(acc + h * headDim_, weights[h], scratch, headDim_);
}

void Codec::scoreRun(const float *prepared, int64_t heads, const uint8_t *area,
                     uint32_t slot, uint32_t count, const int32_t *positions,
                     float scale, float *scores, int64_t scoreStride,
                     float *scratch) const {
  thread_local std::vector<float> perHead;
  perHead.resize(size_t(heads));
  for (uint32_t t = 0; t < count; ++t) {
    scoreAt(prepared, heads, area, slot + t, positions ? positions[t] : 0,
            perHead.data(), scratch);
    for (int64_t h = 0; h < heads; ++h)
      scores[h * scoreStride + t] = perHead[size_t(h)] * scale;
  }
}

void Codec::accumulateRun(const float *weights, int64_t weightStride,
                          int64_t heads, const uint8_t *area, uint32_t slot,
                          uint32_t count, float *acc, float *scratch) const {
  thread_local std::vector<float> perHead;
  perHead.resize(size_t(heads));
  for (uint32_t t = 0; t < count; ++t) {
    for (int64_t h = 0; h < heads; ++h)
      perHead[size_t(h)] = weights[h * weightStride + t];
    accumulate(perHead.data(), heads, area, slot + t, acc, scratch);
  }
}

void Codec::finishOutput(float *, uint32_t) const {}

namespace codecs {
std::string describeCache(const CodecContext &context) {
  return std::string(context.side == CacheSide::Key ? "the keys"
                                                    : "the values") +
         " of layer " + std::to_string(context.layer);
}
} // namespace codecs

StatusOr<std::unique_ptr<Codec>> makeCodec(const schema::Encoding &encoding,
                                           const CodecContext &context) {
  using namespace codecs;
  // Codecs size pages in 64-bit arithmetic from 32-bit counts; heads far
  // beyond any model's keep every entry's size within 32 bits too.
  constexpr uint32_t kMaxHeadDim = 65536;
  if (context.kvHeads == 0 || context.headDim == 0 ||
      context.headDim > kMaxHeadDim)
    return Status::error(
        describeCache(context) + " have " + std::to_string(context.kvHeads) +
        " KV heads of head_dim " + std::to_string(context.headDim) +
        "; a cache needs at least one head and a head_dim "
        "from 1 to " +
        std::to_string(kMaxHeadDim));
  switch (encoding.kind()) {
  case schema::ENCODING_F32:
    return makeF32Codec(context);
  case schema::ENCODING_BF16:
    return makeBf16Codec(context);
  case schema::ENCODING_FP8:
    return makeFp8Codec(encoding, context);
  case schema::ENCODING_NVFP4:
    return makeNvfp4Codec(context);
  case schema::ENCODING_INT:
    return makeKiviCodec(encoding, context);
  case schema::ENCODING_POLAR:
    return makePolarCodec(encoding, context);
  case schema::ENCODING_LOWRANK:
    return makeLowRankCodec(encoding, context);
  default:
    return Status::error(describeCache(context) +
                         " have no encoding this runtime knows (kind " +
                         std::to_string(int(encoding.kind())) + ")");
  }
}

} // namespace kvrt
