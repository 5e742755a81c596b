//===- Kivi.cpp - KIVI: asymmetric integers, keys per channel -------------===//
//
// Codes of `bits` bits with an fp16 scale and an fp16 zero per group:
// value = zero + code * scale. Keys are grouped along tokens (a channel's
// `group` tokens share a scale and zero), values along channels.
//
// Keys: block j (tokens j * group ...) at j * blockBytes holds group rows of
// packed codes (headDim * bits / 8 bytes each), then headDim fp16 scales,
// then headDim fp16 zeros. Values: entry `slot` at slot * entryBytes holds
// one row of packed codes, then per channel group an fp16 scale and zero.
//
//===----------------------------------------------------------------------===//
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/codecs/BitPacking.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/EntryLoops.h"
#include "runtime/src/cache/codecs/HalfBytes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kvrt::codecs {
namespace {

/// Stores the fp16 scale and zero of values in [min, max] at `scale` and
/// `zero`; quantizes with what was stored.
class Affine {
public:
  Affine(float min, float max, uint32_t maxCode, uint8_t *scale, uint8_t *zero)
      : maxCode_(maxCode),
        scale_(storeF16(scale, (double(max) - double(min)) / maxCode)),
        zero_(storeF16(zero, min)) {}

  /// The nearest code (ties to even) in [0, maxCode]; 0 when the scale is
  /// 0 or x is NaN.
  uint8_t quantize(float x) const {
    if (!(scale_ > 0))
      return 0;
    double code = std::nearbyint((double(x) - zero_) / scale_);
    return code > 0 ? uint8_t(std::min(code, double(maxCode_))) : 0;
  }

private:
  uint32_t maxCode_;
  double scale_, zero_;
};

/// A key row where it lies (EntryLoops.h): zero + code * scale per channel,
/// the channels' scales and zeros those of the row's block.
template <uint32_t Bits> struct KiviKeyEntry {
  static constexpr bool kDecodeOnce = true;
  const uint8_t *codes, *scales, *zeros;
  float scale = 1.0f;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    const Vec8 code =
        __builtin_convertvector(codesOf<Bits>(codes + i / 8 * Bits), Vec8);
    return loadF16x8(zeros + 2 * i) + code * loadF16x8(scales + 2 * i);
  }
  KVRT_INLINE float load(uint32_t i) const { return load8(i / 8 * 8)[i % 8]; }
};

/// scores[h] = q_h . the key row of `codes`, whose block's scales are at
/// `scales` and zeros headDim scales later.
KVRT_MULTIVERSION
void kiviKeyScores(const float *queries, int64_t heads, uint32_t stride,
                   const uint8_t *codes, const uint8_t *scales, uint32_t bits,
                   uint32_t headDim, float *scores) {
  const uint8_t *zeros = scales + 2 * headDim;
  if (bits == 2)
    return scoresOf(queries, heads, stride,
                    KiviKeyEntry<2>{codes, scales, zeros}, headDim, scores);
  scoresOf(queries, heads, stride, KiviKeyEntry<4>{codes, scales, zeros},
           headDim, scores);
}

/// Key row t of a run from `slot` on: its block's codes and scales.
template <uint32_t Bits> struct KiviKeyRows {
  const uint8_t *area;
  uint32_t slot, group, rowBytes, blockBytes, headDim;
  KVRT_INLINE KiviKeyEntry<Bits> operator()(int64_t t) const {
    const uint32_t row = slot + uint32_t(t);
    const uint8_t *block = area + uint64_t(row / group) * blockBytes;
    const uint8_t *scales = block + uint64_t(group) * rowBytes;
    return {block + (row % group) * rowBytes, scales, scales + 2 * headDim};
  }
};

/// What kiviKeyScoreRun() takes besides the queries.
struct KiviKeyRun {
  const uint8_t *area;
  uint32_t slot, group, rowBytes, blockBytes, headDim, bits;
  template <uint32_t Bits> KiviKeyRows<Bits> rows() const {
    return {area, slot, group, rowBytes, blockBytes, headDim};
  }
};

KVRT_MULTIVERSION
void kiviKeyScoreRun(const float *queries, int64_t heads, uint32_t stride,
                     const KiviKeyRun &run, int64_t count, float scale,
                     float *scores, int64_t scoreStride) {
  if (run.bits == 2)
    return scoresOfRun(queries, heads, stride, run.rows<2>(), count,
                       run.headDim, scale, scores, scoreStride);
  scoresOfRun(queries, heads, stride, run.rows<4>(), count, run.headDim, scale,
              scores, scoreStride);
}

/// A value entry where it lies: zero + code * scale, one pair for each
/// `group` channels (a multiple of 8).
template <uint32_t Bits> struct KiviValueEntry {
  static constexpr bool kDecodeOnce = true;
  const uint8_t *codes, *pairs;
  uint32_t group;
  float scale = 1.0f;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    const Vec8 code =
        __builtin_convertvector(codesOf<Bits>(codes + i / 8 * Bits), Vec8);
    const uint8_t *pair = pairs + 4 * (i / group);
    return loadF16(pair + 2) + code * loadF16(pair);
  }
  KVRT_INLINE float load(uint32_t i) const { return load8(i / 8 * 8)[i % 8]; }
};

/// acc[h * headDim + d] += weights[h] * the value entry of `codes` and the
/// scale and zero pairs at `pairs`.
KVRT_MULTIVERSION
void kiviValueAccumulate(const float *weights, int64_t heads,
                         const uint8_t *codes, const uint8_t *pairs,
                         uint32_t bits, uint32_t group, uint32_t headDim,
                         float *acc) {
  if (bits == 2)
    return accumulateOf(weights, heads, KiviValueEntry<2>{codes, pairs, group},
                        headDim, acc);
  accumulateOf(weights, heads, KiviValueEntry<4>{codes, pairs, group}, headDim,
               acc);
}

/// Value entry t of a run, `entryBytes` apart, its pairs after its codes.
template <uint32_t Bits> struct KiviValueEntries {
  const uint8_t *first;
  uint32_t entryBytes, rowBytes, group;
  KVRT_INLINE KiviValueEntry<Bits> operator()(int64_t t) const {
    const uint8_t *entry = first + uint64_t(t) * entryBytes;
    return {entry, entry + rowBytes, group};
  }
};

KVRT_MULTIVERSION
void kiviValueAccumulateRun(const float *weights, int64_t weightStride,
                            int64_t heads, const uint8_t *first,
                            uint32_t entryBytes, uint32_t rowBytes,
                            uint32_t bits, uint32_t group, int64_t count,
                            uint32_t headDim, float *acc) {
  if (bits == 2)
    return accumulateOfRun(
        weights, weightStride, heads,
        KiviValueEntries<2>{first, entryBytes, rowBytes, group}, count, headDim,
        acc);
  accumulateOfRun(weights, weightStride, heads,
                  KiviValueEntries<4>{first, entryBytes, rowBytes, group},
                  count, headDim, acc);
}

/// Unpacking codes through this table yields the codes.
constexpr float kCodeValues[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                   8, 9, 10, 11, 12, 13, 14, 15};

class KiviKeyCodec final : public Codec {
public:
  KiviKeyCodec(uint32_t headDim, uint32_t bits, uint32_t group)
      : Codec(headDim), bits_(bits), group_(group) {}

  uint32_t groupTokens() const override { return group_; }
  uint64_t headBytes(uint32_t pageSize) const override {
    // Whole blocks, should a page not hold a multiple of the group.
    return uint64_t((pageSize + group_ - 1) / group_) * blockBytes();
  }

  void encode(const float *src, int64_t stride, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    uint8_t *block = area + uint64_t(slot / group_) * blockBytes();
    uint8_t *scales = block + group_ * rowBytes();
    uint8_t *zeros = scales + 2 * headDim();
    const uint32_t maxCode = (1u << bits_) - 1;
    std::vector<uint8_t> codes(size_t(group_) * headDim());
    for (uint32_t c = 0; c < headDim(); ++c) {
      float min = src[c], max = src[c];
      for (uint32_t t = 1; t < group_; ++t) {
        min = std::fmin(min, src[t * stride + c]);
        max = std::fmax(max, src[t * stride + c]);
      }
      Affine affine(min, max, maxCode, scales + 2 * c, zeros + 2 * c);
      for (uint32_t t = 0; t < group_; ++t)
        codes[t * headDim() + c] = affine.quantize(src[t * stride + c]);
    }
    for (uint32_t t = 0; t < group_; ++t)
      packCodes(&codes[t * headDim()], headDim(), bits_,
                block + t * rowBytes());
  }

  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *block = area + uint64_t(slot / group_) * blockBytes();
    const uint8_t *scales = block + group_ * rowBytes();
    const uint8_t *zeros = scales + 2 * headDim();
    unpackThrough(block + (slot % group_) * rowBytes(), headDim(), bits_,
                  kCodeValues, out);
    for (uint32_t c = 0; c < headDim(); c += 4) {
      Vec4 code;
      std::memcpy(&code, out + c, sizeof(code));
      Vec4 value = loadF16x4(zeros + 2 * c) + code * loadF16x4(scales + 2 * c);
      std::memcpy(out + c, &value, sizeof(value));
    }
  }

  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *) const override {
    const uint8_t *block = area + uint64_t(slot / group_) * blockBytes();
    kiviKeyScores(prepared, heads, preparedQuerySize(),
                  block + (slot % group_) * rowBytes(),
                  block + group_ * rowBytes(), bits_, headDim(), scores);
  }
  void scoreRun(const float *prepared, int64_t heads, const uint8_t *area,
                uint32_t slot, uint32_t count, const int32_t *, float scale,
                float *scores, int64_t scoreStride, float *) const override {
    kiviKeyScoreRun(
        prepared, heads, preparedQuerySize(),
        {area, slot, group_, rowBytes(), blockBytes(), headDim(), bits_}, count,
        scale, scores, scoreStride);
  }

private:
  uint32_t rowBytes() const { return packedBytes(headDim(), bits_); }
  uint32_t blockBytes() const { return group_ * rowBytes() + 4 * headDim(); }

  uint32_t bits_, group_;
};

class KiviValueCodec final : public Codec {
public:
  KiviValueCodec(uint32_t headDim, uint32_t bits, uint32_t group)
      : Codec(headDim), bits_(bits), group_(group) {}

  uint64_t headBytes(uint32_t pageSize) const override {
    return uint64_t(pageSize) * entryBytes();
  }

  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    uint8_t *entry = area + uint64_t(slot) * entryBytes();
    uint8_t *metadata = entry + rowBytes();
    const uint32_t maxCode = (1u << bits_) - 1;
    std::vector<uint8_t> codes(headDim());
    for (uint32_t g = 0; g < headDim() / group_; ++g) {
      const float *x = src + g * group_;
      float min = x[0], max = x[0];
      for (uint32_t c = 1; c < group_; ++c) {
        min = std::fmin(min, x[c]);
        max = std::fmax(max, x[c]);
      }
      Affine affine(min, max, maxCode, metadata + 4 * g, metadata + 4 * g + 2);
      for (uint32_t c = 0; c < group_; ++c)
        codes[g * group_ + c] = affine.quantize(x[c]);
    }
    packCodes(codes.data(), headDim(), bits_, entry);
  }

  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *entry = area + uint64_t(slot) * entryBytes();
    const uint8_t *metadata = entry + rowBytes();
    unpackThrough(entry, headDim(), bits_, kCodeValues, out);
    for (uint32_t g = 0; g < headDim() / group_; ++g) {
      float scale = loadF16(metadata + 4 * g);
      float zero = loadF16(metadata + 4 * g + 2);
      for (uint32_t c = g * group_; c < (g + 1) * group_; ++c)
        out[c] = zero + out[c] * scale;
    }
  }

  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    const uint8_t *entry = area + uint64_t(slot) * entryBytes();
    kiviValueAccumulate(weights, heads, entry, entry + rowBytes(), bits_,
                        group_, headDim(), acc);
  }
  void accumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                     const uint8_t *area, uint32_t slot, uint32_t count,
                     float *acc, float *) const override {
    kiviValueAccumulateRun(weights, weightStride, heads,
                           area + uint64_t(slot) * entryBytes(), entryBytes(),
                           rowBytes(), bits_, group_, count, headDim(), acc);
  }

private:
  uint32_t rowBytes() const { return packedBytes(headDim(), bits_); }
  uint32_t entryBytes() const { return rowBytes() + 4 * (headDim() / group_); }

  uint32_t bits_, group_;
};

} // namespace

CodecOr makeKiviCodec(const schema::Encoding &encoding,
                      const CodecContext &context) {
  const std::string cache = describeCache(context);
  const uint32_t bits = encoding.bits(), group = encoding.group(),
                 headDim = context.headDim;
  if (bits != 2 && bits != 4)
    return Status::error(cache + " use #kv.int with " + std::to_string(bits) +
                         " bits; this runtime stores 2 or 4");
  if (group != 32 && group != 64 && group != 128)
    return Status::error(cache + " use #kv.int with group " +
                         std::to_string(group) + "; allowed: 32, 64 or 128");
  if (context.side == CacheSide::Value && headDim % group != 0)
    return Status::error(cache +
                         " use #kv.int, which groups values along "
                         "channels, but group " +
                         std::to_string(group) + " does not divide head_dim " +
                         std::to_string(headDim));
  if (headDim % 8 != 0)
    return Status::error(cache +
                         " use #kv.int, which packs codes 8 channels "
                         "at a time, but head_dim " +
                         std::to_string(headDim) + " is not a multiple of 8");
  if (context.side == CacheSide::Key)
    return std::unique_ptr<Codec>(new KiviKeyCodec(headDim, bits, group));
  return std::unique_ptr<Codec>(new KiviValueCodec(headDim, bits, group));
}

} // namespace kvrt::codecs
