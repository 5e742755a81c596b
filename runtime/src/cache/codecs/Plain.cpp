//===- Plain.cpp - f32 and bf16 entries, stored as they are ---------------===//
//
// Entry `slot` of a head's area holds headDim values at slot * headDim *
// width: float32 or bfloat16 (round to nearest even), little-endian.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/cache/codecs/Codecs.h"

#include <cstring>

namespace kvrt::codecs {
namespace {

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
    const uint8_t *entry = area + uint64_t(slot) * headDim() * sizeof(uint16_t);
    for (uint32_t i = 0; i < headDim(); ++i) {
      uint16_t v;
      std::memcpy(&v, entry + i * sizeof(v), sizeof(v));
      out[i] = cpu::bf16ToFloat(v);
    }
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
