//===- Plain.cpp - f32 and bf16 entries, stored as they are ---------------===//
//
// Entry `slot` of a head's area holds headDim values at slot * headDim *
// width: float32 or bfloat16 (round to nearest even), little-endian.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/EntryLoops.h"

#include <cstring>

namespace kvrt::codecs {
namespace {

typedef uint32_t Vec8u __attribute__((vector_size(32)));

/// An entry's elements as floats, where it lies (EntryLoops.h): f32 as they
/// are, bf16 widened.
struct F32Entry {
  static constexpr bool kDecodeOnce = false;
  static constexpr uint32_t kBytes = 4;
  const uint8_t *at;
  float scale = 1.0f;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    Vec8 out;
    std::memcpy(&out, at + kBytes * i, sizeof out);
    return out;
  }
  KVRT_INLINE float load(uint32_t i) const {
    float out;
    std::memcpy(&out, at + kBytes * i, sizeof out);
    return out;
  }
};
struct Bf16Entry {
  static constexpr bool kDecodeOnce = false;
  static constexpr uint32_t kBytes = 2;
  const uint8_t *at;
  float scale = 1.0f;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    // From one pointer, so that the eight loads become one widening load.
    const uint8_t *p = at + size_t(kBytes) * i;
    Vec8u bits;
    for (int j = 0; j < 8; ++j)
      bits[j] = uint32_t(load16(p + kBytes * j)) << 16;
    Vec8 out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
  }
  KVRT_INLINE float load(uint32_t i) const {
    return cpu::bf16ToFloat(load16(at + size_t(kBytes) * i));
  }
  KVRT_INLINE static uint16_t load16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
};

// The loops of EntryLoops.h over either kind of entry, in each clone's
// instructions.
template <typename Entry>
KVRT_MULTIVERSION void plainScores(const float *queries, int64_t heads,
                                   uint32_t stride, const uint8_t *entry,
                                   uint32_t n, float *scores) {
  scoresOf(queries, heads, stride, Entry{entry}, n, scores);
}
template <typename Entry>
KVRT_MULTIVERSION void plainAccumulate(const float *weights, int64_t heads,
                                       const uint8_t *entry, uint32_t n,
                                       float *acc) {
  accumulateOf(weights, heads, Entry{entry}, n, acc);
}

/// Runs of entries `bytes` apart from `area` on (EntryLoops.h's run loops).
template <typename Entry> struct EntriesFrom {
  const uint8_t *area;
  uint64_t bytes;
  KVRT_INLINE Entry operator()(int64_t t) const {
    return Entry{area + uint64_t(t) * bytes};
  }
};

template <typename Entry>
KVRT_MULTIVERSION void plainScoreRun(const float *queries, int64_t heads,
                                     uint32_t stride, const uint8_t *area,
                                     int64_t count, uint32_t n, float scale,
                                     float *scores, int64_t scoreStride) {
  scoresOfRun(queries, heads, stride,
              EntriesFrom<Entry>{area, uint64_t(n) * Entry::kBytes}, count, n,
              scale, scores, scoreStride);
}
template <typename Entry>
KVRT_MULTIVERSION void
plainAccumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                   const uint8_t *area, int64_t count, uint32_t n, float *acc,
                   uint32_t begin, uint32_t end) {
  accumulateOfRun(weights, weightStride, heads,
                  EntriesFrom<Entry>{area, uint64_t(n) * Entry::kBytes}, count,
                  n, acc, begin, end);
}

/// What the f32 and bf16 codecs share: entries of headDim elements of
/// Entry::kBytes one after another, scored and summed where they lie.
template <typename Entry> class PlainCodec : public Codec, public ColumnSums {
public:
  explicit PlainCodec(uint32_t headDim) : Codec(headDim) {}

  uint64_t headBytes(uint32_t pageSize) const override {
    return uint64_t(pageSize) * entryBytes();
  }
  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *) const override {
    plainScores<Entry>(prepared, heads, preparedQuerySize(),
                       entryAt(area, slot), headDim(), scores);
  }
  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    plainAccumulate<Entry>(weights, heads, entryAt(area, slot), headDim(), acc);
  }
  void scoreRun(const float *prepared, int64_t heads, const uint8_t *area,
                uint32_t slot, uint32_t count, const int32_t *, float scale,
                float *scores, int64_t scoreStride, float *) const override {
    plainScoreRun<Entry>(prepared, heads, preparedQuerySize(),
                         entryAt(area, slot), count, headDim(), scale, scores,
                         scoreStride);
  }
  void accumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                     const uint8_t *area, uint32_t slot, uint32_t count,
                     float *acc, float *) const override {
    plainAccumulateRun<Entry>(weights, weightStride, heads, entryAt(area, slot),
                              count, headDim(), acc, 0, headDim());
  }
  const ColumnSums *columnSums() const override { return this; }
  void accumulateRunColumns(const float *weights, int64_t weightStride,
                            int64_t heads, const uint8_t *area, uint32_t slot,
                            uint32_t count, uint32_t begin, uint32_t end,
                            float *acc) const override {
    plainAccumulateRun<Entry>(weights, weightStride, heads, entryAt(area, slot),
                              count, headDim(), acc, begin, end);
  }

protected:
  uint64_t entryBytes() const { return uint64_t(headDim()) * Entry::kBytes; }
  template <typename Byte> Byte *entryAt(Byte *area, uint32_t slot) const {
    return area + uint64_t(slot) * entryBytes();
  }
};

class F32Codec final : public PlainCodec<F32Entry> {
public:
  using PlainCodec::PlainCodec;

  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    std::memcpy(entryAt(area, slot), src, entryBytes());
  }
  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    std::memcpy(out, entryAt(area, slot), entryBytes());
  }
};

class Bf16Codec final : public PlainCodec<Bf16Entry> {
public:
  using PlainCodec::PlainCodec;

  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    uint8_t *entry = entryAt(area, slot);
    for (uint32_t i = 0; i < headDim(); ++i) {
      uint16_t v = cpu::floatToBf16(src[i]);
      std::memcpy(entry + i * sizeof(v), &v, sizeof(v));
    }
  }
  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *entry = entryAt(area, slot);
    for (uint32_t i = 0; i < headDim(); ++i)
      out[i] = Bf16Entry{entry}.load(i);
  }
};

} // namespace

CodecOr makeF32Codec(const CodecContext &context) {
  return std::unique_ptr<Codec>(new F32Codec(context.headDim));
}

CodecOr makeBf16Codec(const CodecContext &context) {
  return std::unique_ptr<Codec>(new Bf16Codec(context.headDim));
}

} // namespace kvrt::codecs
