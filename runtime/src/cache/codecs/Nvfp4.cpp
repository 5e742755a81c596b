//===- Nvfp4.cpp - E2M1 values, an E4M3 scale per 16, a tensor scale -----===//
//
// Entry `slot` (at slot * headDim * 9 / 16) holds headDim E2M1 codes packed
// two per byte, low nibble first, then one E4M3 scale byte per block of 16
// coordinates. Value = e2m1 * e4m3 * tensorScale; the tensor scale is the
// artifact's (1 without one) and is not stored in pages.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/cache/codecs/BitPacking.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/EntryLoops.h"
#include "runtime/src/cache/codecs/Minifloat.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <cmath>

namespace kvrt::codecs {
namespace {

constexpr uint32_t kBlock = 16;

/// An entry where it lies (EntryLoops.h): e2m1 * (e4m3 * tensor scale) per
/// block, the E2M1 values' table in two halves.
struct Nvfp4Entry {
  static constexpr bool kDecodeOnce = true;
  const uint8_t *codes;
  uint32_t headDim;
  const float *scaleOf; // E4M3 code -> value
  float tensorScale;
  Vec8 low, high;
  float scale = 1.0f;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    const float block = scaleOf[codes[headDim / 2 + i / kBlock]] * tensorScale;
    return throughTable(codesOf<4>(codes + i / 2), low, high) * block;
  }
  KVRT_INLINE float load(uint32_t i) const { return load8(i / 8 * 8)[i % 8]; }
};

KVRT_MULTIVERSION
void nvfp4Scores(const float *queries, int64_t heads, uint32_t stride,
                 const uint8_t *entry, uint32_t headDim, const float *values,
                 const float *scales, float tensorScale, float *scores) {
  scoresOf(queries, heads, stride,
           Nvfp4Entry{entry, headDim, scales, tensorScale, cpu::load8(values),
                      cpu::load8(values + 8)},
           headDim, scores);
}

KVRT_MULTIVERSION
void nvfp4Accumulate(const float *weights, int64_t heads, const uint8_t *entry,
                     uint32_t headDim, const float *values, const float *scales,
                     float tensorScale, float *acc) {
  accumulateOf(weights, heads,
               Nvfp4Entry{entry, headDim, scales, tensorScale,
                          cpu::load8(values), cpu::load8(values + 8)},
               headDim, acc);
}

/// Entry t of a run, `entryBytes` apart, the E2M1 table in registers.
struct Nvfp4Entries {
  const uint8_t *first;
  uint64_t entryBytes;
  uint32_t headDim;
  const float *scaleOf;
  float tensorScale;
  Vec8 low, high;
  KVRT_INLINE Nvfp4Entry operator()(int64_t t) const {
    return {first + uint64_t(t) * entryBytes,
            headDim,
            scaleOf,
            tensorScale,
            low,
            high};
  }
};

KVRT_MULTIVERSION
void nvfp4ScoreRun(const float *queries, int64_t heads, uint32_t stride,
                   const uint8_t *first, uint64_t entryBytes, int64_t count,
                   uint32_t headDim, const float *values, const float *scales,
                   float tensorScale, float scale, float *scores,
                   int64_t scoreStride) {
  scoresOfRun(queries, heads, stride,
              Nvfp4Entries{first, entryBytes, headDim, scales, tensorScale,
                           cpu::load8(values), cpu::load8(values + 8)},
              count, headDim, scale, scores, scoreStride);
}

KVRT_MULTIVERSION
void nvfp4AccumulateRun(const float *weights, int64_t weightStride,
                        int64_t heads, const uint8_t *first,
                        uint64_t entryBytes, int64_t count, uint32_t headDim,
                        const float *values, const float *scales,
                        float tensorScale, float *acc) {
  accumulateOfRun(weights, weightStride, heads,
                  Nvfp4Entries{first, entryBytes, headDim, scales, tensorScale,
                               cpu::load8(values), cpu::load8(values + 8)},
                  count, headDim, acc);
}

class Nvfp4Codec final : public Codec {
public:
  Nvfp4Codec(uint32_t headDim, float tensorScale)
      : Codec(headDim), tensorScale_(tensorScale) {
    for (uint32_t code = 0; code < 16; ++code)
      values_[code] = float(decodeMinifloat(code, kE2M1));
    for (uint32_t code = 0; code < 256; ++code)
      scales_[code] = float(decodeMinifloat(code, kE4M3));
  }

  uint64_t headBytes(uint32_t pageSize) const override {
    return uint64_t(pageSize) * entryBytes();
  }

  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    uint8_t *entry = area + uint64_t(slot) * entryBytes();
    uint8_t codes[kBlock];
    for (uint32_t block = 0; block < headDim() / kBlock; ++block) {
      const float *x = src + block * kBlock;
      float absMax = 0;
      for (uint32_t i = 0; i < kBlock; ++i)
        absMax = std::fmax(absMax, std::fabs(x[i]));
      uint32_t scaleCode = encodeMinifloat(
          double(absMax) / kE2M1.maxFinite / tensorScale_, kE4M3);
      double scale = double(scales_[scaleCode]) * tensorScale_;
      for (uint32_t i = 0; i < kBlock; ++i)
        codes[i] =
            scale > 0 ? uint8_t(encodeMinifloat(x[i] / scale, kE2M1)) : 0;
      packCodes(codes, kBlock, 4, entry + block * kBlock / 2);
      entry[headDim() / 2 + block] = uint8_t(scaleCode);
    }
  }

  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *entry = area + uint64_t(slot) * entryBytes();
    unpackThrough<4>(entry, headDim(), values_, out);
    for (uint32_t block = 0; block < headDim() / kBlock; ++block)
      scaleInPlace(out + block * kBlock,
                   scales_[entry[headDim() / 2 + block]] * tensorScale_,
                   kBlock);
  }

  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *) const override {
    nvfp4Scores(prepared, heads, preparedQuerySize(),
                area + uint64_t(slot) * entryBytes(), headDim(), values_,
                scales_, tensorScale_, scores);
  }
  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    nvfp4Accumulate(weights, heads, area + uint64_t(slot) * entryBytes(),
                    headDim(), values_, scales_, tensorScale_, acc);
  }
  void scoreRun(const float *prepared, int64_t heads, const uint8_t *area,
                uint32_t slot, uint32_t count, const int32_t *, float scale,
                float *scores, int64_t scoreStride, float *) const override {
    nvfp4ScoreRun(prepared, heads, preparedQuerySize(),
                  area + uint64_t(slot) * entryBytes(), entryBytes(), count,
                  headDim(), values_, scales_, tensorScale_, scale, scores,
                  scoreStride);
  }
  void accumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                     const uint8_t *area, uint32_t slot, uint32_t count,
                     float *acc, float *) const override {
    nvfp4AccumulateRun(weights, weightStride, heads,
                       area + uint64_t(slot) * entryBytes(), entryBytes(),
                       count, headDim(), values_, scales_, tensorScale_, acc);
  }

private:
  uint32_t entryBytes() const { return headDim() / 2 + headDim() / kBlock; }

  float tensorScale_;
  float values_[16];
  float scales_[256];
};

} // namespace

CodecOr makeNvfp4Codec(const CodecContext &context) {
  const std::string cache = describeCache(context);
  if (context.headDim % kBlock != 0)
    return Status::error(cache +
                         " use #kv.nvfp4, which scales blocks of 16 "
                         "coordinates, but head_dim " +
                         std::to_string(context.headDim) +
                         " is not a multiple of 16");
  if (context.scales.size() > 1)
    return Status::error(cache +
                         " use #kv.nvfp4, which has one per-tensor "
                         "scale, but the artifact gives " +
                         std::to_string(context.scales.size()));
  float tensorScale = context.scales.empty() ? 1.0f : context.scales[0];
  if (!(tensorScale > 0) || !std::isfinite(tensorScale))
    return Status::error(cache + " use #kv.nvfp4 with a per-tensor scale of " +
                         std::to_string(tensorScale) +
                         ", not a positive finite number");
  return std::unique_ptr<Codec>(new Nvfp4Codec(context.headDim, tensorScale));
}

} // namespace kvrt::codecs
