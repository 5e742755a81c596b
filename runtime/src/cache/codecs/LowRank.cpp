//===- LowRank.cpp - Values as a latent on a calibrated PCA basis ---------===//
//
// A head's value v is stored as its latent z = B^T (v - mu) on the first
// `rank` principal axes B of the head's calibrated values (mu their mean),
// the latent itself encoded by an inner codec of `rank` coordinates.
// Attention stays in the latent domain: it accumulates sum_i w_i z_i and,
// in the coordinate after the latent, sum_i w_i; finishOutput() maps the
// sum back once per query row, mu * sum w + B * sum w z, so values are
// never rebuilt entry by entry. decode() returns an entry in that domain
// (z, 1, zeros), which finishOutput() maps to mu + B z.
//
// The basis tensor is [kv_heads][head_dim][rank + 1]: the axes, then the
// mean. Keys are refused: a basis of keys needs them before RoPE, which
// this runtime's cache does not hold.
//
//===----------------------------------------------------------------------===//
#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/codecs/Codecs.h"

#include <algorithm>
#include <string>
#include <vector>

namespace kvrt::codecs {
namespace {

class LowRankCodec final : public Codec {
public:
  LowRankCodec(uint32_t headDim, uint32_t rank, std::unique_ptr<Codec> latent,
               std::vector<float> basis)
      : Codec(headDim), rank_(rank), latent_(std::move(latent)),
        basis_(std::move(basis)) {}

  uint64_t headBytes(uint32_t pageSize) const override {
    return latent_->headBytes(pageSize);
  }
  uint64_t sharedBytes() const override { return latent_->sharedBytes(); }
  bool rotates() const override { return true; }

  void encode(const float *src, int64_t, uint32_t head, uint32_t slot,
              uint8_t *area) const override {
    const uint32_t d = headDim();
    const float *basis = headBasis(head);
    // Encode and finishOutput run per entry and per query row: one buffer
    // per thread, not an allocation each call.
    thread_local std::vector<float> latent;
    latent.resize(rank_);
    for (uint32_t j = 0; j < rank_; ++j) {
      double sum = 0;
      for (uint32_t i = 0; i < d; ++i)
        sum += double(basis[i * (rank_ + 1) + j]) *
               (double(src[i]) - basis[i * (rank_ + 1) + rank_]);
      latent[j] = float(sum);
    }
    latent_->encode(latent.data(), rank_, head, slot, area);
  }

  void decode(const uint8_t *area, uint32_t slot, float *out) const override {
    latent_->decode(area, slot, out);
    out[rank_] = 1.0f;
    std::fill(out + rank_ + 1, out + headDim(), 0.0f);
  }

  void accumulate(const float *weights, int64_t heads, const uint8_t *area,
                  uint32_t slot, float *acc, float *scratch) const override {
    latent_->decode(area, slot, scratch);
    for (int64_t h = 0; h < heads; ++h) {
      float *row = acc + h * headDim();
      for (uint32_t j = 0; j < rank_; ++j)
        row[j] += weights[h] * scratch[j];
      row[rank_] += weights[h];
    }
  }

  void finishOutput(float *row, uint32_t head) const override {
    const uint32_t d = headDim();
    const float *basis = headBasis(head);
    thread_local std::vector<float> latent;
    latent.assign(row, row + rank_ + 1);
    for (uint32_t i = 0; i < d; ++i) {
      const float *axes = basis + i * (rank_ + 1);
      // The mean, weighted by the weights' sum, then the axes.
      float value = axes[rank_] * latent[rank_];
      for (uint32_t j = 0; j < rank_; ++j)
        value += axes[j] * latent[j];
      row[i] = value;
    }
  }

private:
  const float *headBasis(uint32_t head) const {
    return basis_.data() + size_t(head) * headDim() * (rank_ + 1);
  }

  uint32_t rank_;
  std::unique_ptr<Codec> latent_;
  std::vector<float> basis_;
};

} // namespace

CodecOr makeLowRankCodec(const schema::Encoding &encoding,
                         const CodecContext &context) {
  const std::string cache = describeCache(context);
  if (context.side == CacheSide::Key)
    return Status::error(cache + " use #kv.lowrank, which this runtime "
                                 "stores for values only (a basis of keys "
                                 "needs them before RoPE)");
  const uint32_t rank = encoding.rank(), d = context.headDim;
  if (rank == 0 || rank >= d)
    return Status::error(cache + " use #kv.lowrank of rank " +
                         std::to_string(rank) + "; it must be from 1 to " +
                         std::to_string(d - 1) + " for heads of " +
                         std::to_string(d));
  const uint64_t expected = uint64_t(context.kvHeads) * d * (rank + 1);
  if (context.basis.size() != expected)
    return Status::error(cache + " use #kv.lowrank of rank " +
                         std::to_string(rank) + ", but the artifact has " +
                         std::to_string(context.basis.size()) +
                         " basis values for " + std::to_string(expected));
  const schema::Encoding &latent = encoding.latent();
  if (latent.kind() != schema::ENCODING_BF16 &&
      latent.kind() != schema::ENCODING_F32 &&
      !(latent.kind() == schema::ENCODING_FP8 &&
        latent.scale_mode() == schema::SCALE_MODE_DYNAMIC))
    return Status::error(cache + " use #kv.lowrank with a latent this "
                                 "runtime does not store; it takes bf16, "
                                 "f32 or fp8 with dynamic scales");
  CodecContext inner = context;
  inner.headDim = rank;
  inner.basis.clear();
  inner.scales.clear();
  CodecOr made = makeCodec(latent, inner);
  if (!made)
    return made.status();
  return std::unique_ptr<Codec>(
      new LowRankCodec(d, rank, std::move(*made), context.basis));
}

} // namespace kvrt::codecs
