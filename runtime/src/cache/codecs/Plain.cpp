//===- Plain.cpp - f32 and bf16 entries, stored as they are ---------------===//
//
// Entry `slot` of a head's area holds headDim values at slot * headDim *
// width: float32 or bfloat16 (round to nearest even), little-endian.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Simd.h"
#include "runtime/src/cache/codecs/Codecs.h"

#include <cstring>

namespace kvrt::codecs {
namespace {

using cpu::Vec8;
typedef uint32_t Vec8u __attribute__((vector_size(32)));

/// An entry's elements as floats: f32 as they are, bf16 widened.
struct F32Elements {
  static constexpr uint32_t kBytes = 4;
  KVRT_INLINE static Vec8 load8(const uint8_t *p) {
    Vec8 out;
    std::memcpy(&out, p, sizeof out);
    return out;
  }
  KVRT_INLINE static float load(const uint8_t *p) {
    float out;
    std::memcpy(&out, p, sizeof out);
    return out;
  }
};
struct Bf16Elements {
  static constexpr uint32_t kBytes = 2;
  KVRT_INLINE static Vec8 load8(const uint8_t *p) {
    Vec8u bits;
    for (int i = 0; i < 8; ++i)
      bits[i] = uint32_t(load16(p + 2 * i)) << 16;
    Vec8 out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
  }
  KVRT_INLINE static float load(const uint8_t *p) {
    return cpu::bf16ToFloat(load16(p));
  }
  KVRT_INLINE static uint16_t load16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
};

// The codecs here score and accumulate an entry where it is instead of
// decoding it into scratch first, with the operations of Codec's versions
// over the decoded entry (codecs::dot's even and odd four-lane sums are the
// halves of one eight-lane sum; this file is built without fused
// multiply-adds), so attention gives the same bits, in the x86-64-v3
// clone's instructions.

/// scores[h] = q_h . entry for `heads` queries `stride` floats apart.
template <typename Elements>
KVRT_INLINE void scoresOf(const float *queries, int64_t heads, uint32_t stride,
                          const uint8_t *entry, uint32_t n, float *scores) {
  const uint32_t full = n / 8 * 8;
  for (int64_t h = 0; h < heads; ++h) {
    const float *q = queries + h * stride;
    Vec8 sums = {};
    for (uint32_t i = 0; i < full; i += 8)
      sums += cpu::load8(q + i) * Elements::load8(entry + Elements::kBytes * i);
    float sum = ((sums[0] + sums[4]) + (sums[2] + sums[6])) +
                ((sums[1] + sums[5]) + (sums[3] + sums[7]));
    for (uint32_t i = full; i < n; ++i)
      sum += q[i] * Elements::load(entry + Elements::kBytes * i);
    scores[h] = sum;
  }
}

/// acc[h * n + d] += weights[h] * entry[d] for `heads` rows.
template <typename Elements>
KVRT_INLINE void accumulateOf(const float *weights, int64_t heads,
                              const uint8_t *entry, uint32_t n, float *acc) {
  const uint32_t full = n / 8 * 8;
  for (int64_t h = 0; h < heads; ++h) {
    float *row = acc + h * n;
    const float w = weights[h];
    for (uint32_t i = 0; i < full; i += 8) {
      const Vec8 sum = cpu::load8(row + i) +
                       w * Elements::load8(entry + Elements::kBytes * i);
      std::memcpy(row + i, &sum, sizeof sum);
    }
    for (uint32_t i = full; i < n; ++i)
      row[i] += w * Elements::load(entry + Elements::kBytes * i);
  }
}

KVRT_MULTIVERSION
void f32Scores(const float *queries, int64_t heads, uint32_t stride,
               const uint8_t *entry, uint32_t n, float *scores) {
  scoresOf<F32Elements>(queries, heads, stride, entry, n, scores);
}
KVRT_MULTIVERSION
void bf16Scores(const float *queries, int64_t heads, uint32_t stride,
                const uint8_t *entry, uint32_t n, float *scores) {
  scoresOf<Bf16Elements>(queries, heads, stride, entry, n, scores);
}
KVRT_MULTIVERSION
void f32Accumulate(const float *weights, int64_t heads, const uint8_t *entry,
                   uint32_t n, float *acc) {
  accumulateOf<F32Elements>(weights, heads, entry, n, acc);
}
KVRT_MULTIVERSION
void bf16Accumulate(const float *weights, int64_t heads, const uint8_t *entry,
                    uint32_t n, float *acc) {
  accumulateOf<Bf16Elements>(weights, heads, entry, n, acc);
}

class F32Codec final : public Codec {
public:
  explicit F32Codec(uint32_t headDim) : Codec(headDim) {}

  uint64_t headBytes(uint32_t pageSize) const override {
    return uint64_t(pageSize) * entryBytes();
  }
  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    std::memcpy(area + uint64_t(slot) * entryBytes(), src, entryBytes());
  }
  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    std::memcpy(out, area + uint64_t(slot) * entryBytes(), entryBytes());
  }
  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *) const override {
    f32Scores(prepared, heads, preparedQuerySize(),
              area + uint64_t(slot) * entryBytes(), headDim(), scores);
  }
  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    f32Accumulate(weights, heads, area + uint64_t(slot) * entryBytes(),
                  headDim(), acc);
  }

private:
  uint32_t entryBytes() const { return headDim() * sizeof(float); }
};

class Bf16Codec final : public Codec {
public:
  explicit Bf16Codec(uint32_t headDim) : Codec(headDim) {}

  uint64_t headBytes(uint32_t pageSize) const override {
    return uint64_t(pageSize) * headDim() * sizeof(uint16_t);
  }
  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    uint8_t *entry = area + uint64_t(slot) * headDim() * sizeof(uint16_t);
    for (uint32_t i = 0; i < headDim(); ++i) {
      uint16_t v = cpu::floatToBf16(src[i]);
      std::memcpy(entry + i * sizeof(v), &v, sizeof(v));
    }
  }
  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *entry = entryAt(area, slot);
    for (uint32_t i = 0; i < headDim(); ++i)
      out[i] = Bf16Elements::load(entry + Bf16Elements::kBytes * i);
  }
  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *) const override {
    bf16Scores(prepared, heads, preparedQuerySize(), entryAt(area, slot),
               headDim(), scores);
  }
  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    bf16Accumulate(weights, heads, entryAt(area, slot), headDim(), acc);
  }

private:
  const uint8_t *entryAt(const uint8_t *area, uint32_t slot) const {
    return area + uint64_t(slot) * headDim() * Bf16Elements::kBytes;
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
