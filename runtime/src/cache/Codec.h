//===- Codec.h - How one side of a layer's cache is stored ------*- C++ -*-===//
//
// A codec encodes the keys (or the values) of one cache layer into pages and
// lets attention work on them without a general decode: it scores queries
// against stored keys and accumulates weighted values in its own domain.
// Per KV head, a page holds one contiguous area of headBytes(pageSize)
// bytes for each side; the codec owns that area's layout, which
// docs/kv-encodings.md documents byte by byte.
//
// A low-rank codec may store one latent for a group of consecutive KV heads
// (groupHeads() > 1): each head's area holds an equal part of it, and every
// method is given the group's first area (areaOf()) and reaches the
// others `areaStride()` bytes apart.
//
// Rotated codecs (polar) work in a rotated basis: attention maps each query
// into the key codec's domain once per step (prepareQuery), and maps the
// accumulated output out of the value codec's domain once (finishOutput),
// never rotating a stored entry back.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODEC_H
#define KVRT_CACHE_CODEC_H

#include "kvrt/Status.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace kvrt {
namespace schema {
class Encoding;
}
namespace cpu {
struct RopeFrequencies;
}

/// Which side of the cache a codec stores; KIVI groups keys along tokens
/// and values along channels.
enum class CacheSide { Key, Value };

/// A codec's attention sums split by columns, for codecs that read entries
/// where they lie (f32 and bf16), whose rows' columns then cost nothing
/// more apart than together.
class ColumnSums {
public:
  /// Codec::accumulateRun() for the columns [begin, end) of the domain
  /// alone (begin a multiple of eight, end too or domainSize(); acc's rows
  /// still domainSize() apart), each with the bits accumulateRun() gives it.
  virtual void accumulateRunColumns(const float *weights, int64_t weightStride,
                                    int64_t heads, const uint8_t *area,
                                    uint32_t slot, uint32_t count,
                                    uint32_t begin, uint32_t end,
                                    float *acc) const = 0;

protected:
  ~ColumnSums() = default;
};

class Codec {
public:
  virtual ~Codec() = default;

  uint32_t headDim() const { return headDim_; }

  /// Bytes of one KV head's area in a page of `pageSize` tokens, data and
  /// metadata together.
  virtual uint64_t headBytes(uint32_t pageSize) const = 0;
  /// Bytes at the start of every area that belong to no single slot (fp8's
  /// calibrated head scale); entries of per-token codecs follow them, one
  /// every (headBytes - sharedBytes) / pageSize bytes.
  virtual uint64_t sharedBytes() const { return 0; }
  /// Tokens encoded together (KIVI keys: the group); pages hold a multiple
  /// of it and encode() is always given exactly this many tokens.
  virtual uint32_t groupTokens() const { return 1; }
  /// KV heads whose vectors one stored latent holds together (kv-lowrank's
  /// group); 1 for every other codec.
  virtual uint32_t groupHeads() const { return 1; }
  /// Bytes from one KV head's area to the next in a page: a codec whose
  /// latent spans a group of heads reads and writes the group's areas at
  /// that distance. The backend sets it once it knows the page size.
  void setAreaStride(uint64_t stride) { areaStride_ = stride; }
  uint64_t areaStride() const { return areaStride_; }
  /// The area the methods below take for KV head `head` of one side of a
  /// page whose areas start at `areas`, `stride` bytes apart: the head's
  /// own, or its group's first.
  template <typename Byte>
  Byte *areaOf(Byte *areas, uint32_t head, uint64_t stride) const {
    return areas + uint64_t(head - head % groupHeads()) * stride;
  }
  /// Floats of one row of the value domain (what accumulate() sums and
  /// finishOutput() maps back) and of the scratch the methods take:
  /// headDim() unless the codec's domain is larger (a group's latent).
  virtual uint32_t domainSize() const { return headDim_; }
  /// Bits per coordinate in a page of `pageSize` tokens, metadata included.
  double bitsPerCoordinate(uint32_t pageSize) const {
    return 8.0 * double(headBytes(pageSize)) / (double(pageSize) * headDim_);
  }

  /// Encodes groupTokens() tokens of KV head `head` into `area` (that
  /// head's area of a page, areaOf()) at slots `slot`, `slot + 1`, ...;
  /// token t's headDim() values are at `src + t * stride` (for a codec of
  /// groupHeads() > 1, the group's vectors one after another). `slot` is a
  /// multiple of groupTokens().
  virtual void encode(const float *src, int64_t stride, uint32_t head,
                      uint32_t slot, uint8_t *area) const = 0;
  /// The stored entry at `slot`, in the codec's domain (rotated for polar,
  /// the latent for low-rank): for tests and for callers off the attention
  /// path.
  virtual void decode(const uint8_t *area, uint32_t slot, float *out) const = 0;

  /// encode() and score() of entries that arrive, and are scored, after
  /// RoPE at `positions[t]` (`position`). Codecs that work before RoPE
  /// (low-rank keys: their basis is of pre-RoPE keys) rotate back and
  /// forth, so that encode() and score() are those of a key at position 0;
  /// the others ignore the positions. The CPU backend calls these.
  virtual void encodeAt(const float *src, int64_t stride, uint32_t head,
                        uint32_t slot, const int32_t *positions,
                        uint8_t *area) const {
    (void)positions;
    encode(src, stride, head, slot, area);
  }
  /// Entry `slot` of KV head `head`, stored at `position`, as it arrived
  /// (in the model's basis, after RoPE): decode() then, for rotated codecs,
  /// finishOutput(); low-rank keys rebuild the key and rotate it. For
  /// callers off the attention path (TriAttention's scores).
  virtual void decodeAt(const uint8_t *area, uint32_t slot, uint32_t head,
                        int32_t position, float *out) const {
    (void)position;
    decode(area, slot, out);
    if (rotates())
      finishOutput(out, head);
  }
  virtual void scoreAt(const float *prepared, int64_t heads,
                       const uint8_t *area, uint32_t slot, int32_t position,
                       float *scores, float *scratch) const {
    (void)position;
    score(prepared, heads, area, slot, scores, scratch);
  }

  /// The RoPE of the keys this codec stores as they were before it
  /// (low-rank keys: encodeAt() rotates back, decodeAt() forth), or null.
  virtual const cpu::RopeFrequencies *storedBeforeRope() const {
    return nullptr;
  }

  /// Whether the codec works in a basis other than the model's (polar):
  /// then scores need prepareQuery() and sums need finishOutput().
  virtual bool rotates() const { return false; }

  /// Floats of a prepared query (headDim() unless the codec keeps more,
  /// e.g. QJL's projected query).
  virtual uint32_t preparedQuerySize() const { return headDim_; }
  /// Maps a query of KV head `head` into the key domain; key codecs only.
  virtual void prepareQuery(const float *q, uint32_t head,
                            float *prepared) const;
  /// scores[h] = q_h . k_slot for `heads` prepared queries, laid out every
  /// preparedQuerySize() floats. `scratch` holds headDim() floats.
  virtual void score(const float *prepared, int64_t heads, const uint8_t *area,
                     uint32_t slot, float *scores, float *scratch) const;
  /// acc[h * domainSize() + d] += weights[h] * v_slot[d] for `heads` rows,
  /// in the value domain. `scratch` holds domainSize() floats.
  virtual void accumulate(const float *weights, int64_t heads,
                          const uint8_t *area, uint32_t slot, float *acc,
                          float *scratch) const;
  /// scoreAt() of the `count` entries from `slot` on, stored at
  /// positions[0 .. count) (null for a codec that ignores them:
  /// storedBeforeRope() null), each scaled after: scores[h * scoreStride +
  /// t] = the score of slot + t for query h times `scale`, with the bits of
  /// scoreAt() entry by entry. Codecs that read entries where they lie
  /// score several together.
  virtual void scoreRun(const float *prepared, int64_t heads,
                        const uint8_t *area, uint32_t slot, uint32_t count,
                        const int32_t *positions, float scale, float *scores,
                        int64_t scoreStride, float *scratch) const;
  /// accumulate() of the `count` entries from `slot` on, in order, entry
  /// slot + t weighted by weights[h * weightStride + t] for row h, with the
  /// bits of accumulate() entry by entry.
  virtual void accumulateRun(const float *weights, int64_t weightStride,
                             int64_t heads, const uint8_t *area, uint32_t slot,
                             uint32_t count, float *acc, float *scratch) const;
  /// Its sums by ranges of columns, where the codec has them (ColumnSums).
  virtual const ColumnSums *columnSums() const { return nullptr; }
  /// Maps one row of KV head `head` out of the codec's domain (in place):
  /// attention's accumulated values, or a decoded entry that a caller off
  /// the attention path needs in the model's basis.
  virtual void finishOutput(float *row, uint32_t head) const;

protected:
  explicit Codec(uint32_t headDim) : headDim_(headDim) {}

private:
  uint32_t headDim_;
  uint64_t areaStride_ = 0;
};

/// What makeCodec() needs besides the encoding.
struct CodecContext {
  uint32_t layer = 0;
  CacheSide side = CacheSide::Key;
  uint32_t kvHeads = 0;
  uint32_t headDim = 0;
  /// fp8 per_head: one scale per KV head (value = code * scale); nvfp4: one
  /// per-tensor scale. Empty when the artifact has none.
  std::vector<float> scales;
  /// lowrank: [kvHeads][headDim][columns], each head's principal axes and
  /// then its mean (values, rank + 1 columns) or its coordinates' weights
  /// and mean (keys, rank + 2) (codecs/LowRank.cpp).
  std::vector<float> basis;
  /// lowrank keys: the RoPE that rotated them (the codec keeps a copy).
  const cpu::RopeFrequencies *rope = nullptr;
};

/// The codec of `encoding` for one side of one layer, or one sentence on
/// why this runtime cannot store it (e.g. a head dimension the encoding
/// does not divide).
StatusOr<std::unique_ptr<Codec>> makeCodec(const schema::Encoding &encoding,
                                           const CodecContext &context);

/// Whether this runtime stores a #kv.lowrank latent in `latent`: bf16, f32,
/// fp8 with dynamic scales, nvfp4, KIVI int without a residual window or
/// polar without QJL (codecs/LowRank.cpp).
bool lowRankLatentSupported(const schema::Encoding &latent);

/// Tokens per page of a layer stored by `key` and `value` when `requested`
/// are asked for: rounded up to whole groups of both (CacheSize.cpp).
uint32_t pageSizeFor(const Codec &key, const Codec &value, uint32_t requested);

} // namespace kvrt

#endif // KVRT_CACHE_CODEC_H
