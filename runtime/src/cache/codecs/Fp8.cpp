//===- Fp8.cpp - OCP FP8 entries with a per-head or per-vector scale ------===//
//
// Value = decoded FP8 code * scale. Per-head scales (from calibration): the
// head's area starts with its fp32 scale, then entry `slot` holds headDim
// codes at 4 + slot * headDim. Dynamic scales (absmax / max finite, per
// vector): entry `slot` holds headDim codes then its fp32 scale, at
// slot * (headDim + 4). Keeping the per-head scale in the area lets
// entries decode to the model's values without knowing their head.
//
//===----------------------------------------------------------------------===//
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/EntryLoops.h"
#include "runtime/src/cache/codecs/Minifloat.h"

#include <cmath>
#include <cstring>

namespace kvrt::codecs {
namespace {

/// An entry where it lies (EntryLoops.h): each code's value times the
/// entry's (or head's) scale.
struct Fp8Entry {
  static constexpr bool kDecodeOnce = true;
  const uint8_t *codes;
  const float *values; // code -> value
  float entryScale;
  float scale = 1.0f;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    const uint8_t *c = codes + i;
    const Vec8 x = {values[c[0]], values[c[1]], values[c[2]], values[c[3]],
                    values[c[4]], values[c[5]], values[c[6]], values[c[7]]};
    return x * entryScale;
  }
  KVRT_INLINE float load(uint32_t i) const {
    return values[codes[i]] * entryScale;
  }
};

KVRT_MULTIVERSION
void fp8Scores(const float *queries, int64_t heads, uint32_t stride,
               const Fp8Entry &entry, uint32_t headDim, float *scores) {
  scoresOf(queries, heads, stride, entry, headDim, scores);
}

KVRT_MULTIVERSION
void fp8Accumulate(const float *weights, int64_t heads, const Fp8Entry &entry,
                   uint32_t headDim, float *acc) {
  accumulateOf(weights, heads, entry, headDim, acc);
}

/// Entry t of a run: its codes `stride` bytes after the previous one's,
/// its scale after them (dynamic) or at the area's start (per head).
struct Fp8Entries {
  const uint8_t *area;
  const uint8_t *first;
  uint64_t stride;
  uint32_t headDim;
  bool dynamic;
  const float *values;
  KVRT_INLINE Fp8Entry operator()(int64_t t) const {
    const uint8_t *codes = first + uint64_t(t) * stride;
    float scale;
    std::memcpy(&scale, dynamic ? codes + headDim : area, sizeof scale);
    return {codes, values, scale};
  }
};

KVRT_MULTIVERSION
void fp8ScoreRun(const float *queries, int64_t heads, uint32_t stride,
                 const Fp8Entries &entries, int64_t count, float scale,
                 float *scores, int64_t scoreStride) {
  scoresOfRun(queries, heads, stride, entries, count, entries.headDim, scale,
              scores, scoreStride);
}

KVRT_MULTIVERSION
void fp8AccumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                      const Fp8Entries &entries, int64_t count, float *acc) {
  accumulateOfRun(weights, weightStride, heads, entries, count, entries.headDim,
                  acc);
}

class Fp8Codec final : public Codec {
public:
  /// Dynamic scales when `headScales` is empty.
  Fp8Codec(uint32_t headDim, const MinifloatFormat &format,
           std::vector<float> headScales)
      : Codec(headDim), format_(format), headScales_(std::move(headScales)) {
    for (uint32_t code = 0; code < 256; ++code)
      values_[code] = float(decodeMinifloat(code, format_));
  }

  uint64_t headBytes(uint32_t pageSize) const override {
    return codesAt(pageSize);
  }

  uint64_t sharedBytes() const override {
    return dynamic() ? 0 : sizeof(float);
  }

  void encode(const float *src, int64_t, uint32_t head, uint32_t slot,
              uint8_t *area) const override {
    float scale;
    if (dynamic()) {
      float absMax = 0;
      for (uint32_t i = 0; i < headDim(); ++i)
        absMax = std::fmax(absMax, std::fabs(src[i]));
      scale = float(double(absMax) / format_.maxFinite);
    } else {
      scale = headScales_[head];
    }
    std::memcpy(scaleAt(area, slot), &scale, sizeof(scale));
    uint8_t *codes = area + codesAt(slot);
    // Quotients in double round once, straight to FP8.
    for (uint32_t i = 0; i < headDim(); ++i)
      codes[i] = scale > 0
                     ? uint8_t(encodeMinifloat(src[i] / double(scale), format_))
                     : 0;
  }

  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *codes = area + codesAt(slot);
    float scale;
    std::memcpy(&scale, scaleAt(area, slot), sizeof(scale));
    for (uint32_t i = 0; i < headDim(); ++i)
      out[i] = values_[codes[i]] * scale;
  }

  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *) const override {
    fp8Scores(prepared, heads, preparedQuerySize(), entryOf(area, slot),
              headDim(), scores);
  }
  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    fp8Accumulate(weights, heads, entryOf(area, slot), headDim(), acc);
  }
  void scoreRun(const float *prepared, int64_t heads, const uint8_t *area,
                uint32_t slot, uint32_t count, const int32_t *, float scale,
                float *scores, int64_t scoreStride, float *) const override {
    fp8ScoreRun(prepared, heads, preparedQuerySize(), runFrom(area, slot),
                count, scale, scores, scoreStride);
  }
  void accumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                     const uint8_t *area, uint32_t slot, uint32_t count,
                     float *acc, float *) const override {
    fp8AccumulateRun(weights, weightStride, heads, runFrom(area, slot), count,
                     acc);
  }

private:
  bool dynamic() const { return headScales_.empty(); }
  Fp8Entry entryOf(const uint8_t *area, uint32_t slot) const {
    float scale;
    std::memcpy(&scale, scaleAt(area, slot), sizeof(scale));
    return {area + codesAt(slot), values_, scale};
  }
  Fp8Entries runFrom(const uint8_t *area, uint32_t slot) const {
    return {area,
            area + codesAt(slot),
            codesAt(1) - codesAt(0),
            headDim(),
            dynamic(),
            values_};
  }
  /// Where the codes of `slot` start (for slot = pageSize: the area's size).
  uint64_t codesAt(uint32_t slot) const {
    return dynamic() ? uint64_t(slot) * (headDim() + sizeof(float))
                     : sizeof(float) + uint64_t(slot) * headDim();
  }
  template <typename Byte> Byte *scaleAt(Byte *area, uint32_t slot) const {
    return dynamic() ? area + codesAt(slot) + headDim() : area;
  }

  MinifloatFormat format_;
  std::vector<float> headScales_;
  float values_[256];
};

} // namespace

CodecOr makeFp8Codec(const schema::Encoding &encoding,
                     const CodecContext &context) {
  const std::string cache = describeCache(context);
  const MinifloatFormat *format;
  switch (encoding.fp8_format()) {
  case schema::FP8_FORMAT_E4M3:
    format = &kE4M3;
    break;
  case schema::FP8_FORMAT_E5M2:
    format = &kE5M2;
    break;
  default:
    return Status::error(cache +
                         " use #kv.fp8 with an fp8 format this "
                         "runtime does not know (" +
                         std::to_string(int(encoding.fp8_format())) + ")");
  }
  if (encoding.scale_mode() == schema::SCALE_MODE_DYNAMIC)
    return std::unique_ptr<Codec>(
        new Fp8Codec(context.headDim, *format, /*headScales=*/{}));
  if (encoding.scale_mode() != schema::SCALE_MODE_PER_HEAD)
    return Status::error(cache +
                         " use #kv.fp8 with a scale mode this "
                         "runtime does not know (" +
                         std::to_string(int(encoding.scale_mode())) + ")");
  const std::vector<float> &scales = context.scales;
  if (scales.empty())
    return Status::error(cache + " use #kv.fp8 with per_head scales, but "
                                 "the artifact lacks the calibrated scales");
  if (scales.size() != context.kvHeads)
    return Status::error(cache +
                         " use #kv.fp8 with per_head scales, but "
                         "the artifact has " +
                         std::to_string(scales.size()) + " scales for " +
                         std::to_string(context.kvHeads) + " KV heads");
  for (size_t h = 0; h < scales.size(); ++h)
    if (!(scales[h] > 0) || !std::isfinite(scales[h]))
      return Status::error(cache +
                           " use #kv.fp8 with per_head scales, but "
                           "the scale of KV head " +
                           std::to_string(h) + " is " +
                           std::to_string(scales[h]) +
                           ", not a positive finite number");
  return std::unique_ptr<Codec>(new Fp8Codec(context.headDim, *format, scales));
}

} // namespace kvrt::codecs
