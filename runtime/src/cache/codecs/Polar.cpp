//===- Polar.cpp - A random rotation, then a Lloyd-Max codebook -----------===//
//
// PolarQuant / TurboQuant's MSE stage: a vector x is stored as a scale and
// the Lloyd-Max codes of the coordinates of R x / |x|, R the layer's
// randomized Hadamard rotation for this side. Attention never rotates a
// stored entry: queries are rotated once (q.k = Rq . Rk) and the weighted
// sum of values is rotated back once (sum w v = R^T sum w Rv).
//
// Entry `slot` (at slot * entryBytes) holds headDim * bits / 8 bytes of
// packed codes, then the fp16 scale of the codebook levels they select; with
// QJL (keys only), then Qjl's bytes.
//
//===----------------------------------------------------------------------===//
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/codecs/BitPacking.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/EntryLoops.h"
#include "runtime/src/cache/codecs/Hadamard.h"
#include "runtime/src/cache/codecs/HalfBytes.h"
#include "runtime/src/cache/codecs/LloydMax.h"
#include "runtime/src/cache/codecs/Qjl.h"
#include "runtime/src/cache/codecs/SplitMix64.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <cmath>
#include <cstring>

namespace kvrt::codecs {
namespace {

/// An entry's codebook levels where it lies (EntryLoops.h), its scale the
/// stored one: score() and accumulate() apply it to the sums and weights as
/// the decode path did.
template <uint32_t Bits> struct PolarEntry {
  static constexpr bool kDecodeOnce = true;
  const uint8_t *codes;
  float scale;
  Vec8 low, high;
  KVRT_INLINE Vec8 load8(uint32_t i) const {
    return throughTable(codesOf<Bits>(codes + i / 8 * Bits), low, high);
  }
  KVRT_INLINE float load(uint32_t i) const { return load8(i / 8 * 8)[i % 8]; }
};

/// What polarScores() and polarAccumulate() take: the entry's packed codes
/// and scale, the codebook's levels (16 floats, unused ones zero).
struct PolarCodes {
  const uint8_t *codes;
  float scale;
  const float *levels;
  uint32_t bits;
};

template <uint32_t Bits>
KVRT_INLINE PolarEntry<Bits> entryOf(const PolarCodes &c) {
  return {c.codes, c.scale, cpu::load8(c.levels), cpu::load8(c.levels + 8)};
}

KVRT_MULTIVERSION
void polarScores(const float *queries, int64_t heads, uint32_t stride,
                 const PolarCodes &codes, uint32_t n, float *scores) {
  switch (codes.bits) {
  case 2:
    return scoresOf(queries, heads, stride, entryOf<2>(codes), n, scores);
  case 3:
    return scoresOf(queries, heads, stride, entryOf<3>(codes), n, scores);
  default:
    return scoresOf(queries, heads, stride, entryOf<4>(codes), n, scores);
  }
}

KVRT_MULTIVERSION
void polarAccumulate(const float *weights, int64_t heads,
                     const PolarCodes &codes, uint32_t n, float *acc) {
  switch (codes.bits) {
  case 2:
    return accumulateOf(weights, heads, entryOf<2>(codes), n, acc);
  case 3:
    return accumulateOf(weights, heads, entryOf<3>(codes), n, acc);
  default:
    return accumulateOf(weights, heads, entryOf<4>(codes), n, acc);
  }
}

/// What polarScoreRun() and polarAccumulateRun() take: a run's first entry,
/// the distance between entries, where each one's scale is, the codebook's
/// levels (16 floats, unused ones zero).
struct PolarRun {
  const uint8_t *first;
  uint64_t entryBytes;
  uint32_t codeBytes;
  const float *levels;
  uint32_t bits;
};

/// Entry t of a run with its stored scale, the levels in registers.
template <uint32_t Bits> struct PolarEntries {
  const uint8_t *first;
  uint64_t entryBytes;
  uint32_t codeBytes;
  Vec8 low, high;
  KVRT_INLINE PolarEntry<Bits> operator()(int64_t t) const {
    const uint8_t *entry = first + uint64_t(t) * entryBytes;
    return {entry, loadF16(entry + codeBytes), low, high};
  }
};

template <uint32_t Bits>
KVRT_INLINE PolarEntries<Bits> entriesOf(const PolarRun &r) {
  return {r.first, r.entryBytes, r.codeBytes, cpu::load8(r.levels),
          cpu::load8(r.levels + 8)};
}

KVRT_MULTIVERSION
void polarScoreRun(const float *queries, int64_t heads, uint32_t stride,
                   const PolarRun &run, int64_t count, uint32_t n, float scale,
                   float *scores, int64_t scoreStride) {
  switch (run.bits) {
  case 2:
    return scoresOfRun(queries, heads, stride, entriesOf<2>(run), count, n,
                       scale, scores, scoreStride);
  case 3:
    return scoresOfRun(queries, heads, stride, entriesOf<3>(run), count, n,
                       scale, scores, scoreStride);
  default:
    return scoresOfRun(queries, heads, stride, entriesOf<4>(run), count, n,
                       scale, scores, scoreStride);
  }
}

KVRT_MULTIVERSION
void polarAccumulateRun(const float *weights, int64_t weightStride,
                        int64_t heads, const PolarRun &run, int64_t count,
                        uint32_t n, float *acc) {
  switch (run.bits) {
  case 2:
    return accumulateOfRun(weights, weightStride, heads, entriesOf<2>(run),
                           count, n, acc);
  case 3:
    return accumulateOfRun(weights, weightStride, heads, entriesOf<3>(run),
                           count, n, acc);
  default:
    return accumulateOfRun(weights, weightStride, heads, entriesOf<4>(run),
                           count, n, acc);
  }
}

class PolarCodec final : public Codec {
public:
  PolarCodec(uint32_t headDim, uint32_t bits, const Codebook &codebook,
             RandomizedHadamard rotation, std::unique_ptr<Qjl> qjl)
      : Codec(headDim), bits_(bits), codebook_(codebook),
        rotation_(std::move(rotation)), qjl_(std::move(qjl)) {
    for (size_t i = 0; i < codebook_.levels.size(); ++i)
      levels_[i] = float(codebook_.levels[i]);
  }

  uint64_t headBytes(uint32_t pageSize) const override {
    return uint64_t(pageSize) * entryBytes();
  }
  bool rotates() const override { return true; }
  uint32_t preparedQuerySize() const override {
    return qjl_ ? 2 * headDim() : headDim();
  }

  void encode(const float *src, int64_t, uint32_t, uint32_t slot,
              uint8_t *area) const override {
    uint8_t *entry = area + uint64_t(slot) * entryBytes();
    const uint32_t d = headDim();
    // In double, so that codes are those of the exact rotation.
    std::vector<double> rotated(src, src + d);
    double squares = 0;
    for (double x : rotated)
      squares += x * x;
    const double norm = std::sqrt(squares);
    rotation_.rotate(rotated.data());
    std::vector<uint8_t> codes(d);
    double alongLevels = 0, levelSquares = 0;
    for (uint32_t i = 0; i < d; ++i) {
      codes[i] = uint8_t(codebook_.quantize(norm > 0 ? rotated[i] / norm : 0));
      const double level = codebook_.levels[codes[i]];
      alongLevels += rotated[i] * level;
      levelSquares += level * level;
    }
    packCodes(codes.data(), d, bits_, entry);
    // The stored scale is the least-squares scale of the level vector L,
    // <Rx, L> / |L|^2, rather than |x| or |x| / |L|: measured on structured
    // keys, it gives the lowest attention error of the three at every bit
    // width (docs/kv-encodings.md).
    const double storedScale =
        storeF16(entry + codeBytes(), alongLevels / levelSquares);
    if (!qjl_)
      return;
    // The residual against what score() reconstructs.
    for (uint32_t i = 0; i < d; ++i)
      rotated[i] -= storedScale * codebook_.levels[codes[i]];
    qjl_->encode(rotated.data(), entry + codeBytes() + 2);
  }

  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    const uint8_t *entry = area + uint64_t(slot) * entryBytes();
    unpackThrough(entry, headDim(), bits_, levels_, out);
    scaleInPlace(out, levelScale(entry), headDim());
    if (qjl_)
      qjl_->addResidual(entry + codeBytes() + 2, out);
  }

  void prepareQuery(const float *q, uint32_t, float *prepared) const override {
    std::memcpy(prepared, q, headDim() * sizeof(float));
    rotation_.rotate(prepared);
    if (qjl_)
      qjl_->project(prepared, prepared + headDim());
  }

  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *scratch) const override {
    const uint8_t *entry = area + uint64_t(slot) * entryBytes();
    const uint32_t stride = preparedQuerySize();
    if (!qjl_)
      return polarScores(prepared, heads, stride, polarCodes(entry), headDim(),
                         scores);
    qjl_->estimateWeights(entry + codeBytes() + 2, scratch);
    for (int64_t h = 0; h < heads; ++h)
      scores[h] = dot(prepared + h * stride + headDim(), scratch, headDim());
    unpackThrough(entry, headDim(), bits_, levels_, scratch);
    const float n = levelScale(entry);
    for (int64_t h = 0; h < heads; ++h)
      scores[h] += n * dot(prepared + h * stride, scratch, headDim());
  }

  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *) const override {
    polarAccumulate(weights, heads,
                    polarCodes(area + uint64_t(slot) * entryBytes()), headDim(),
                    acc);
  }

  void scoreRun(const float *prepared, int64_t heads, const uint8_t *area,
                uint32_t slot, uint32_t count, const int32_t *positions,
                float scale, float *scores, int64_t scoreStride,
                float *scratch) const override {
    if (qjl_)
      return Codec::scoreRun(prepared, heads, area, slot, count, positions,
                             scale, scores, scoreStride, scratch);
    polarScoreRun(prepared, heads, preparedQuerySize(), runFrom(area, slot),
                  count, headDim(), scale, scores, scoreStride);
  }
  void accumulateRun(const float *weights, int64_t weightStride, int64_t heads,
                     const uint8_t *area, uint32_t slot, uint32_t count,
                     float *acc, float *) const override {
    polarAccumulateRun(weights, weightStride, heads, runFrom(area, slot), count,
                       headDim(), acc);
  }

  void finishOutput(float *row, uint32_t) const override {
    rotation_.unrotate(row);
  }

private:
  uint32_t codeBytes() const { return packedBytes(headDim(), bits_); }
  uint32_t entryBytes() const {
    return codeBytes() + 2 + (qjl_ ? qjl_->storedBytes() : 0);
  }
  float levelScale(const uint8_t *entry) const {
    return loadF16(entry + codeBytes());
  }
  PolarCodes polarCodes(const uint8_t *entry) const {
    return {entry, levelScale(entry), levels_, bits_};
  }
  PolarRun runFrom(const uint8_t *area, uint32_t slot) const {
    return {area + uint64_t(slot) * entryBytes(), entryBytes(), codeBytes(),
            levels_, bits_};
  }

  uint32_t bits_;
  const Codebook &codebook_;
  // The codebook's levels, zero past its 2^bits.
  float levels_[16] = {};
  RandomizedHadamard rotation_;
  std::unique_ptr<Qjl> qjl_;
};

} // namespace

CodecOr makePolarCodec(const schema::Encoding &encoding,
                       const CodecContext &context) {
  const std::string cache = describeCache(context);
  const uint32_t bits = encoding.bits(), headDim = context.headDim;
  if (bits < 2 || bits > 4)
    return Status::error(cache + " use #kv.polar with " + std::to_string(bits) +
                         " bits; this runtime stores 2, 3 or 4");
  if (encoding.rotation() != schema::ROTATION_HADAMARD)
    return Status::error(cache +
                         " use #kv.polar with a rotation this runtime "
                         "does not know (" +
                         std::to_string(int(encoding.rotation())) + ")");
  if (headDim < 8 || (headDim & (headDim - 1)) != 0)
    return Status::error(cache +
                         " use #kv.polar, whose Hadamard rotation "
                         "needs a power-of-two head_dim of at least 8, "
                         "but head_dim is " +
                         std::to_string(headDim));
  if (encoding.qjl() && context.side == CacheSide::Value)
    return Status::error(cache + " use #kv.polar with qjl, which corrects "
                                 "attention scores and so applies to keys "
                                 "only");
  const uint32_t side = context.side == CacheSide::Key ? 0 : 1;
  RandomizedHadamard rotation(
      headDim, deriveSeed(encoding.seed(), 2 * uint64_t(context.layer) + side));
  std::unique_ptr<Qjl> qjl;
  if (encoding.qjl())
    qjl = std::make_unique<Qjl>(
        headDim, deriveSeed(encoding.seed(), (1ull << 63) + context.layer));
  return std::unique_ptr<Codec>(
      new PolarCodec(headDim, bits, lloydMaxCodebook(headDim, bits),
                     std::move(rotation), std::move(qjl)));
}

} // namespace kvrt::codecs
