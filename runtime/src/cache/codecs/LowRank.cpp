//===- LowRank.cpp - Keys and values as latents on calibrated bases -------===//
//
// A head's value v is stored as its latent z = B^T (v - mu) on the first
// `rank` principal axes B of the head's calibrated values (mu their mean),
// the latent itself encoded by an inner codec of `rank` coordinates. With
// `group` G > 1, a group of G consecutive KV heads stores one latent of
// their G head_dim coordinates concatenated, on the axes of their joint
// moment: each head's area holds rank / G of it (part j in head j's, the
// inner codec sees vectors of rank / G), every method reads the group's
// areas from its first (Codec::areaOf), and head h is rebuilt from the
// whole latent with its head_dim rows B_h of the basis.
// Attention stays in the latent domain: it accumulates sum_i w_i z_i and,
// in the coordinate after the latent, sum_i w_i; finishOutput() maps the
// sum back once per query row, mu * sum w + B * sum w z, so values are
// never rebuilt entry by entry. decode() returns an entry in that domain
// (z, 1, zeros), which finishOutput() maps to mu + B z.
//
// A head's key is stored before RoPE (a basis of post-RoPE keys would have
// to hold every rotation of them): encodeAt() rotates the arriving key back
// by its position, stores z = U^T (s * (k - mu)) on the first `rank` axes U
// of the query-weighted keys (s the coordinates' weights, mu the keys'
// calibrated mean or 0, docs/lowrank.md), and scoreAt() rebuilds k = (U z)
// / s + mu, rotates it by the entry's position and scores the queries
// against it: a rank x head_dim product and a rotation per entry and KV
// head.
//
// The basis tensor is [kv_heads / G][G head_dim][columns]: the axes, then
// the mean (values, rank + 1 columns) or the weight and the mean (keys,
// rank + 2).
//
// Folded values (kv-lowrank{fold=true}) arrive on their axes, v_proj and
// o_proj rewritten by the compiler: the latent is the first `rank`
// coordinates of v, and finishOutput() hands the latents' sum on with
// zeros after it, what o_proj was rewritten to read. The basis is then the
// identity's first columns (the engine builds it for backends that apply
// one); this codec skips both products.
//
//===----------------------------------------------------------------------===//
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/cache/codecs/Codecs.h"
#include "runtime/src/cache/codecs/PairRotations.h"
#include "runtime/src/cache/codecs/VectorMath.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace kvrt::codecs {
namespace {

/// What the key and value codecs share: the inner codec of the latent, and
/// per group of `group` KV heads the basis, [group headDim][columns] (the
/// axes, then `columns - rank` numbers per coordinate). A group's latent is
/// stored in equal parts of rank / group coordinates, part j in the area of the
/// group's head j: methods take the group's first area (Codec::areaOf).
class LatentCodec : public Codec {
public:
  LatentCodec(uint32_t headDim, uint32_t rank, uint32_t group, uint32_t columns,
              std::unique_ptr<Codec> latent, std::vector<float> basis)
      : Codec(headDim), rank_(rank), group_(group), part_(rank / group),
        columns_(columns), latent_(std::move(latent)),
        basis_(std::move(basis)) {}

  uint64_t headBytes(uint32_t pageSize) const override {
    return latent_->headBytes(pageSize);
  }
  uint64_t sharedBytes() const override { return latent_->sharedBytes(); }
  /// A KIVI latent's keys are encoded a group of tokens at a time.
  uint32_t groupTokens() const override { return latent_->groupTokens(); }
  uint32_t groupHeads() const override { return group_; }
  /// The latent, and for values the weights' sum after it.
  uint32_t domainSize() const override {
    return std::max(headDim(), rank_ + 1);
  }

  /// The group's latent z at `slot` (rank floats), each part as its codec
  /// decodes it (rotated for polar).
  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    readLatent(area, slot, 0, false, out);
  }

protected:
  /// The basis of KV head `head`'s group, [group headDim][columns].
  const float *groupBasis(uint32_t head) const {
    return basis_.data() +
           size_t(head / group_) * group_ * headDim() * columns_;
  }
  /// KV head `head`'s rows of its group's basis, [headDim][columns].
  const float *headBasis(uint32_t head) const {
    return groupBasis(head) + size_t(head % group_) * headDim() * columns_;
  }
  /// Part `part` of the areas of a group whose first is `area`.
  template <typename Byte> Byte *partArea(Byte *area, uint32_t part) const {
    return area + uint64_t(part) * areaStride();
  }
  /// Stores head `head`'s part of z = B^T x for the groupTokens() tokens
  /// from `slot` on, in double; token t's x[i] is coordinate(t, i, after)
  /// for the group's group x headDim coordinates, `after` the numbers after
  /// the axes in the basis' row i.
  template <typename Coordinate>
  void encodeLatent(const Coordinate &coordinate, uint32_t head, uint32_t slot,
                    uint8_t *area) const {
    const float *basis = groupBasis(head);
    const uint32_t part = head % group_, size = group_ * headDim(),
                   tokens = groupTokens();
    // Encode and finishOutput run per entry and per query row: one buffer
    // per thread, not an allocation each call.
    thread_local std::vector<float> latent;
    latent.resize(size_t(tokens) * part_);
    for (uint32_t t = 0; t < tokens; ++t)
      for (uint32_t k = 0; k < part_; ++k) {
        const uint32_t j = part * part_ + k;
        double sum = 0;
        for (uint32_t i = 0; i < size; ++i) {
          const float *row = basis + i * columns_;
          sum += double(row[j]) * coordinate(t, i, row + rank_);
        }
        latent[size_t(t) * part_ + k] = float(sum);
      }
    latent_->encode(latent.data(), part_, head, slot, partArea(area, part));
  }
  /// The latent at `slot` of the group whose first area is `area` (rank
  /// floats), each part as its codec decodes it: mapped out of a rotated
  /// codec's domain when `finish` (part j is KV head `first + j`'s).
  void readLatent(const uint8_t *area, uint32_t slot, uint32_t first,
                  bool finish, float *out) const {
    for (uint32_t j = 0; j < group_; ++j) {
      float *part = out + j * part_;
      latent_->decode(partArea(area, j), slot, part);
      if (finish && latent_->rotates())
        latent_->finishOutput(part, first + j);
    }
  }

  uint32_t rank_, group_, part_, columns_;
  std::unique_ptr<Codec> latent_;
  std::vector<float> basis_;
};

class LowRankValueCodec final : public LatentCodec {
public:
  LowRankValueCodec(uint32_t headDim, uint32_t rank, uint32_t group,
                    std::unique_ptr<Codec> latent, std::vector<float> basis,
                    bool folded)
      : LatentCodec(headDim, rank, group, rank + 1, std::move(latent),
                    std::move(basis)),
        folded_(folded) {}

  bool rotates() const override { return true; }

  /// (z, 1, zeros), which finishOutput() maps to head h's mu + B_h z.
  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    readLatent(area, slot, 0, false, out);
    out[rank_] = 1.0f;
    std::fill(out + rank_ + 1, out + domainSize(), 0.0f);
  }

  /// z = B^T (v - mu); folded, v's first `rank` coordinates.
  void encode(const float *src, int64_t stride, uint32_t head, uint32_t slot,
              uint8_t *area) const override {
    if (folded_)
      return latent_->encode(src, stride, head, slot, area);
    encodeLatent(
        [src, stride](uint32_t t, uint32_t i, const float *mean) {
          return double(src[t * stride + i]) - *mean;
        },
        head, slot, area);
  }

  /// The value of head `head` rebuilt: mu + B_head z.
  void decodeAt(const uint8_t *area, uint32_t slot, uint32_t head, int32_t,
                float *out) const override {
    thread_local std::vector<float> row;
    row.resize(domainSize());
    decode(area, slot, row.data());
    finishOutput(row.data(), head);
    std::copy_n(row.data(), headDim(), out);
  }

  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *scratch) const override {
    readLatent(area, slot, 0, false, scratch);
    const uint32_t stride = domainSize();
    for (int64_t h = 0; h < heads; ++h) {
      float *row = acc + h * stride;
      for (uint32_t j = 0; j < rank_; ++j)
        row[j] += weights[h] * scratch[j];
      row[rank_] += weights[h];
    }
  }

  /// Maps a row summed by accumulate() (the latents' sum, then the
  /// weights') to head `head`'s values: mu * sum w + B_head * sum w z.
  void finishOutput(float *row, uint32_t head) const override {
    const uint32_t d = headDim();
    const float *basis = headBasis(head);
    thread_local std::vector<float> latent;
    latent.assign(row, row + rank_ + 1);
    // A polar latent was summed in its rotated domain, part by part.
    if (latent_->rotates())
      for (uint32_t j = 0; j < group_; ++j)
        latent_->finishOutput(latent.data() + j * part_,
                              head - head % group_ + j);
    if (folded_) {
      std::copy_n(latent.data(), rank_, row);
      std::fill(row + rank_, row + d, 0.0f);
      return;
    }
    for (uint32_t i = 0; i < d; ++i) {
      const float *axes = basis + i * columns_;
      // The mean, weighted by the weights' sum, then the axes.
      float value = axes[rank_] * latent[rank_];
      for (uint32_t j = 0; j < rank_; ++j)
        value += axes[j] * latent[j];
      row[i] = value;
    }
  }

private:
  bool folded_;
};

class LowRankKeyCodec final : public LatentCodec {
public:
  LowRankKeyCodec(uint32_t headDim, uint32_t rank, uint32_t group,
                  std::unique_ptr<Codec> latent, std::vector<float> basis,
                  const cpu::RopeFrequencies &rope)
      : LatentCodec(headDim, rank, group, rank + 2, std::move(latent),
                    std::move(basis)),
        rope_(rope), rotations_(rope) {}

  const cpu::RopeFrequencies *storedBeforeRope() const override {
    return &rope_;
  }

  /// z = B^T (s * (k - mu)) for the group's keys `src` before RoPE.
  void encode(const float *src, int64_t stride, uint32_t head, uint32_t slot,
              uint8_t *area) const override {
    encodeLatent(
        [src, stride](uint32_t t, uint32_t i, const float *weightAndMean) {
          return double(weightAndMean[0]) *
                 (double(src[t * stride + i]) - weightAndMean[1]);
        },
        head, slot, area);
  }

  void encodeAt(const float *src, int64_t stride, uint32_t head, uint32_t slot,
                const int32_t *positions, uint8_t *area) const override {
    const uint32_t d = headDim(), size = group_ * d, tokens = groupTokens();
    thread_local std::vector<float> unrotated;
    unrotated.resize(size_t(tokens) * size);
    // Each token's group of keys arrived together, at one position.
    for (uint32_t t = 0; t < tokens; ++t)
      for (uint32_t j = 0; j < group_; ++j)
        rotations_.rotate(src + t * stride + j * d, positions[t], true,
                          unrotated.data() + size_t(t) * size + j * d);
    encode(unrotated.data(), size, head, slot, area);
  }

  /// The query, then its KV head (which the key's rebuild needs).
  uint32_t preparedQuerySize() const override { return headDim() + 1; }
  void prepareQuery(const float *q, uint32_t head,
                    float *prepared) const override {
    std::copy(q, q + headDim(), prepared);
    prepared[headDim()] = float(head);
  }

  void score(const float *prepared, int64_t heads, const uint8_t *area,
             uint32_t slot, float *scores, float *scratch) const override {
    scoreAt(prepared, heads, area, slot, 0, scores, scratch);
  }

  void scoreAt(const float *prepared, int64_t heads, const uint8_t *area,
               uint32_t slot, int32_t position, float *scores,
               float *scratch) const override {
    const uint32_t d = headDim(), stride = d + 1;
    decodeAt(area, slot, uint32_t(prepared[d]), position, scratch);
    for (int64_t h = 0; h < heads; ++h)
      scores[h] = dot(prepared + h * stride, scratch, d);
  }

  /// Head `head`'s key rebuilt, (B_head z) / s + mu, and rotated by
  /// `position`.
  void decodeAt(const uint8_t *area, uint32_t slot, uint32_t head,
                int32_t position, float *out) const override {
    const uint32_t d = headDim();
    const float *basis = headBasis(head);
    thread_local std::vector<float> latent, key;
    latent.resize(rank_);
    key.resize(d);
    readLatent(area, slot, head - head % group_, true, latent.data());
    for (uint32_t i = 0; i < d; ++i) {
      const float *row = basis + i * columns_;
      key[i] = dot(row, latent.data(), rank_) / row[rank_] + row[rank_ + 1];
    }
    rotations_.rotate(key.data(), position, false, out);
  }

private:
  cpu::RopeFrequencies rope_;
  PairRotations rotations_;
};

} // namespace
} // namespace kvrt::codecs

namespace kvrt {

bool lowRankLatentSupported(const schema::Encoding &latent) {
  switch (latent.kind()) {
  case schema::ENCODING_BF16:
  case schema::ENCODING_F32:
  case schema::ENCODING_NVFP4:
    return true;
  case schema::ENCODING_FP8:
    return latent.scale_mode() == schema::SCALE_MODE_DYNAMIC;
  case schema::ENCODING_INT:
    return latent.residual() == 0;
  case schema::ENCODING_POLAR:
    return !latent.qjl();
  default:
    return false;
  }
}

} // namespace kvrt

namespace kvrt::codecs {

CodecOr makeLowRankCodec(const schema::Encoding &encoding,
                         const CodecContext &context) {
  const std::string cache = describeCache(context);
  const bool keys = context.side == CacheSide::Key;
  if (keys && !context.rope)
    return Status::error(cache + " use #kv.lowrank, but no rope call rotates "
                                 "the layer's keys; low-rank keys are stored "
                                 "before RoPE");
  if (encoding.folded() && (keys || encoding.group() > 1))
    return Status::error(cache + " use #kv.lowrank folded into the "
                                 "projections, which only values of one KV "
                                 "head a latent can be");
  const uint32_t rank = encoding.rank(), d = context.headDim;
  const uint32_t group = std::max<uint32_t>(encoding.group(), 1);
  if (context.kvHeads % group)
    return Status::error(cache + " use #kv.lowrank shared by groups of " +
                         std::to_string(group) +
                         " KV heads, which do not "
                         "divide their " +
                         std::to_string(context.kvHeads));
  const uint64_t size = uint64_t(group) * d;
  if (rank == 0 || rank >= size || rank % group)
    return Status::error(
        cache + " use #kv.lowrank of rank " + std::to_string(rank) +
        "; it must be " +
        (group > 1 ? "a multiple of the group (" + std::to_string(group) + ") "
                   : std::string()) +
        "from 1 to " + std::to_string(size - 1) + " for " +
        (group > 1 ? "groups of " + std::to_string(group) + " heads of "
                   : std::string("heads of ")) +
        std::to_string(d));
  // [kvHeads / group][group d][columns]: kvHeads d columns values; a key
  // row ends with its weight and mean, a value row with its mean.
  const uint32_t columns = keys ? rank + 2 : rank + 1;
  const uint64_t expected = uint64_t(context.kvHeads) * d * columns;
  if (context.basis.size() != expected)
    return Status::error(cache + " use #kv.lowrank of rank " +
                         std::to_string(rank) + ", but the artifact has " +
                         std::to_string(context.basis.size()) +
                         " basis values for " + std::to_string(expected));
  const schema::Encoding &latent = encoding.latent();
  if (!lowRankLatentSupported(latent))
    return Status::error(cache + " use #kv.lowrank with a latent this "
                                 "runtime does not store; it takes bf16, "
                                 "f32, fp8 with dynamic scales, nvfp4, KIVI "
                                 "int without a residual or polar without "
                                 "QJL");
  CodecContext inner = context;
  inner.headDim = rank / group;
  inner.basis.clear();
  inner.scales.clear();
  if (keys)
    for (uint32_t h = 0; h < context.kvHeads; ++h)
      for (uint32_t i = 0; i < d; ++i) {
        // Head h's coordinate i is row (h % group) d + i of its group's.
        const float *row = &context.basis[(size_t(h) * d + i) * columns];
        if (!(row[rank] > 0) || !std::isfinite(row[rank]))
          return Status::error(cache + " use #kv.lowrank keys whose weight " +
                               std::to_string(i) + " of head " +
                               std::to_string(h) +
                               " is not positive and finite");
        if (!std::isfinite(row[rank + 1]))
          return Status::error(cache + " use #kv.lowrank keys whose mean " +
                               std::to_string(i) + " of head " +
                               std::to_string(h) + " is not finite");
      }
  CodecOr made = makeCodec(latent, inner);
  if (!made)
    return made.status();
  if (keys)
    return std::unique_ptr<Codec>(new LowRankKeyCodec(
        d, rank, group, std::move(*made), context.basis, *context.rope));
  return std::unique_ptr<Codec>(new LowRankValueCodec(
      d, rank, group, std::move(*made), context.basis, encoding.folded()));
}

} // namespace kvrt::codecs
