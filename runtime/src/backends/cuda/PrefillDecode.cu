//===- PrefillDecode.cu - Earlier tokens decoded to bf16 pages ------------===//
//
// fp8 and nvfp4: d / 16 lanes a token, each decoding two 8-coordinate
// chunks as the eviction scorers do (EvictKeyChunks.cuh, the CPU codecs'
// decodeAt()). Polar: a warp a token, lane l holding coordinates d / 32
// l .. d / 32 (l + 1) - 1: each code's level times the entry's f16 scale,
// then R^T = D H / sqrt(d) as the CPU's RandomizedHadamard::unrotate()
// does it in float (the butterflies in its order, those across lanes by
// shuffles, then 1 / sqrt(d), then the signs), so the floats are the
// CPU's. KIVI: d / 8 lanes a token, each decoding eight coordinates as
// zero + code * scale in float, as the CPU codec does (Kivi.cpp). A layer
// that keeps tokens exact (ExactTokens.h: fp8, nvfp4 and polar's sinks and
// window, KIVI's residual, whose last groups have no codes yet) then has
// those tokens' rows overwritten from its store: the sinks, and the ring's
// tokens after the codes a row reads. PrefillDecode.h.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/CudaStatus.h"
#include "runtime/src/backends/cuda/EvictKeyChunks.cuh"
#include "runtime/src/backends/cuda/ExactTokens.h"
#include "runtime/src/backends/cuda/PrefillDecode.h"
#include "runtime/src/cache/codecs/LloydMax.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

namespace kvrt::cuda {
namespace {

using Kind = DeviceSideLayout::Kind;
constexpr int kThreads = 256;

/// One side of a decode: the layer's pages, where its decoded pages go.
struct DecodeSide {
  DeviceSideLayout layout;
  const uint8_t *pages;
  __nv_bfloat16 *to;
};

struct DecodeArgs {
  DecodeSide side;
  const int32_t *pageTable;
  uint32_t before, pageSize, kvHeads, headDim;
  /// Polar: its codebook's levels as the CPU codec holds them (float).
  float levels[16];
};

/// Where token i of KV head h is stored in the layer's pages, and where
/// its decoded copy goes ([pages][kvHeads][pageSize][headDim]).
__device__ const uint8_t *storedArea(const DecodeArgs &a, uint32_t i,
                                     uint32_t h) {
  const uint32_t page = uint32_t(a.pageTable[i / a.pageSize]);
  return a.side.pages +
         (uint64_t(page) * a.kvHeads + h) * a.side.layout.areaStride;
}
__device__ __nv_bfloat16 *decodedRow(const DecodeArgs &a, uint32_t i,
                                     uint32_t h) {
  const uint32_t page = i / a.pageSize, slot = i % a.pageSize;
  return a.side.to +
         ((uint64_t(page) * a.kvHeads + h) * a.pageSize + slot) * a.headDim;
}

/// fp8 or nvfp4: blocks of kThreads / (d / 16) tokens of KV head blockIdx.y.
template <Kind K>
__global__ void __launch_bounds__(kThreads) decodeChunksKernel(DecodeArgs a) {
  const int lanes = int(a.headDim / 16), lane = int(threadIdx.x) % lanes;
  const uint32_t i =
      blockIdx.x * (kThreads / lanes) + uint32_t(threadIdx.x) / lanes;
  const uint32_t h = blockIdx.y;
  if (i >= a.before)
    return;
  const DeviceSideLayout &side = a.side.layout;
  const uint8_t *area = storedArea(a, i, h);
  evictkeys::Raw raw;
  raw.blockScales = 0;
  evictkeys::loadChunks<K>(area,
                           area + side.codesOffset +
                               uint64_t(i % a.pageSize) * side.entryBytes,
                           side, lane, lanes, int(a.headDim), raw);
  __nv_bfloat16 *row = decodedRow(a, i, h);
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    float x[8];
    evictkeys::decodeChunk<K>(raw, c, side, x);
    uint32_t packed[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const __nv_bfloat162 v = __floats2bfloat162_rn(x[2 * k], x[2 * k + 1]);
      packed[k] = *reinterpret_cast<const uint32_t *>(&v);
    }
    *reinterpret_cast<uint4 *>(row + 8 * (lane + c * lanes)) =
        make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
}

/// Polar: a warp per token of KV head blockIdx.y; E = d / 32 coordinates a
/// lane (2 or 4).
template <int E>
__global__ void __launch_bounds__(kThreads) decodePolarKernel(DecodeArgs a) {
  constexpr int kD = 32 * E;
  const uint32_t lane = threadIdx.x % 32;
  const uint32_t i = blockIdx.x * (kThreads / 32) + threadIdx.x / 32;
  const uint32_t h = blockIdx.y;
  if (i >= a.before)
    return;
  const DeviceSideLayout &side = a.side.layout;
  const uint8_t *entry = storedArea(a, i, h) + side.codesOffset +
                         uint64_t(i % a.pageSize) * side.entryBytes;
  // Eight codes in `bits` bytes, the first in the lowest bits
  // (BitPacking.h): the lane's E codes lie in one such group.
  const uint32_t bits = side.bits, first = E * lane;
  const uint8_t *group = entry + first / 8 * bits;
  uint32_t word = 0;
  for (uint32_t b = 0; b < bits; ++b)
    word |= uint32_t(group[b]) << (8 * b);
  word >>= first % 8 * bits;
  const float scale =
      __half2float(*reinterpret_cast<const __half *>(entry + side.scaleOffset));
  const uint32_t mask = (1u << bits) - 1;
  float x[E];
#pragma unroll
  for (int e = 0; e < E; ++e)
    x[e] = __fmul_rn(a.levels[word >> (e * bits) & mask], scale);
  // H x: strides below E within the lane, the others across lanes.
#pragma unroll
  for (int half = 1; half < E; half *= 2)
#pragma unroll
    for (int e = 0; e < E; ++e)
      if (!(e & half)) {
        const float p = x[e], q = x[e + half];
        x[e] = __fadd_rn(p, q);
        x[e + half] = __fsub_rn(p, q);
      }
#pragma unroll
  for (int half = E; half < kD; half *= 2) {
    const uint32_t partner = uint32_t(half / E);
    const bool upper = lane & partner;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float other = __shfl_xor_sync(0xffffffffu, x[e], partner);
      // The pair (j, j + half): the lower takes a + b, the upper a - b.
      x[e] = upper ? __fsub_rn(other, x[e]) : __fadd_rn(x[e], other);
    }
  }
  const float norm = __fdiv_rn(1.0f, __fsqrt_rn(float(kD)));
  __nv_bfloat16 *row = decodedRow(a, i, h) + first;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const uint32_t c = first + uint32_t(e);
    const float v = __fmul_rn(x[e], norm);
    row[e] = __float2bfloat16_rn(
        side.rotationSigns[c / 32] >> (c % 32) & 1 ? -v : v);
  }
}

/// KIVI: blocks of kThreads / (d / 8) tokens of KV head blockIdx.y; lane l
/// decodes coordinates 8 l .. 8 l + 7, whose codes are `bits` bytes
/// (BitPacking.h: eight codes, the first in the lowest bits). Keys: a block
/// of `group` tokens holds their rows of codes, then an f16 scale per
/// channel, then an f16 zero per channel; values: each entry its row, then
/// a scale and a zero per group of channels, of which lane l's coordinates
/// lie in one.
template <bool Keys>
__global__ void __launch_bounds__(kThreads) decodeKiviKernel(DecodeArgs a) {
  const uint32_t lanes = a.headDim / 8, lane = threadIdx.x % lanes;
  const uint32_t i = blockIdx.x * (kThreads / lanes) + threadIdx.x / lanes;
  const uint32_t h = blockIdx.y;
  if (i >= a.before)
    return;
  const DeviceSideLayout &side = a.side.layout;
  const uint32_t bits = side.bits, group = side.group;
  const uint32_t rowBytes = a.headDim * bits / 8, slot = i % a.pageSize;
  const uint8_t *area = storedArea(a, i, h) + side.codesOffset;
  const uint8_t *row, *scales, *zeros;
  uint32_t metadataStride;
  if constexpr (Keys) {
    const uint8_t *block =
        area + uint64_t(slot / group) * group * side.entryBytes;
    row = block + slot % group * rowBytes;
    scales = block + group * rowBytes + 16 * lane;
    zeros = scales + 2 * a.headDim;
    metadataStride = 2;
  } else {
    row = area + uint64_t(slot) * side.entryBytes;
    scales = row + rowBytes + 4 * (8 * lane / group);
    zeros = scales + 2;
    metadataStride = 0;
  }
  const uint32_t codes =
      bits == 4 ? *reinterpret_cast<const uint32_t *>(row + 4 * lane)
                : *reinterpret_cast<const uint16_t *>(row + 2 * lane);
  const uint32_t mask = (1u << bits) - 1;
  uint32_t packed[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    float x[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const uint32_t c = uint32_t(2 * k + e);
      const float scale = __half2float(
          *reinterpret_cast<const __half *>(scales + metadataStride * c));
      const float zero = __half2float(
          *reinterpret_cast<const __half *>(zeros + metadataStride * c));
      x[e] =
          __fadd_rn(zero, __fmul_rn(float(codes >> (c * bits) & mask), scale));
    }
    const __nv_bfloat162 v = __floats2bfloat162_rn(x[0], x[1]);
    packed[k] = *reinterpret_cast<const uint32_t *>(&v);
  }
  *reinterpret_cast<uint4 *>(decodedRow(a, i, h) + 8 * lane) =
      make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

/// The exact tokens of the sequence in table row `tableRow`, from the
/// layer's store into the decoded pages: block x is the first sinkCount
/// tokens, then those from ringFirst on; block y the KV head.
__global__ void overlayExactKernel(ExactTokensView exact, uint32_t tableRow,
                                   uint32_t sinkCount, uint32_t ringFirst,
                                   uint32_t kvHeads, uint32_t headDim,
                                   uint32_t pageSize, uint4 *keys,
                                   uint4 *values) {
  const uint32_t j = blockIdx.x, h = blockIdx.y;
  const uint32_t i = j < sinkCount ? j : ringFirst + (j - sinkCount);
  const uint32_t entry = i < exact.sinks ? i : exact.sinks + i % exact.window;
  const uint64_t slot = uint64_t(exact.calls[3 * tableRow]);
  const uint32_t chunks = headDim / 8;
  const uint64_t from =
      ((slot * kvHeads + h) * exact.entries() + entry) * chunks;
  const uint64_t to =
      ((uint64_t(i / pageSize) * kvHeads + h) * pageSize + i % pageSize) *
      chunks;
  for (uint32_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    keys[to + c] = reinterpret_cast<const uint4 *>(exact.keys)[from + c];
    values[to + c] = reinterpret_cast<const uint4 *>(exact.values)[from + c];
  }
}

__global__ void identityKernel(int32_t *table, uint32_t count) {
  const uint32_t p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p < count)
    table[p] = int32_t(p);
}

bool decodes(const DeviceSideLayout &side) {
  return side.kind == Kind::Fp8E4M3 || side.kind == Kind::Nvfp4 ||
         (side.kind == Kind::Polar && side.bits >= 2 && side.bits <= 4) ||
         (side.kind == Kind::Kivi && (side.bits == 2 || side.bits == 4));
}

/// One decoded side's pages and the table after them.
struct DecodedLayout {
  uint64_t areaStride, sideBytes, pages;
};
DecodedLayout decodedLayout(const PagedKvView &view, uint32_t before) {
  DecodedLayout l;
  l.areaStride = uint64_t(view.pageSize) * view.headDim * 2;
  l.pages = (before + view.pageSize - 1) / view.pageSize;
  l.sideBytes = l.pages * view.kvHeads * l.areaStride;
  return l;
}

/// Decodes one side, the keys if `keys`.
Status launchSide(const DecodeArgs &a, bool keys, cudaStream_t stream) {
  const Kind kind = a.side.layout.kind;
  if (kind == Kind::Polar) {
    const dim3 grid((a.before + kThreads / 32 - 1) / (kThreads / 32),
                    a.kvHeads);
    if (a.headDim == 128)
      decodePolarKernel<4><<<grid, kThreads, 0, stream>>>(a);
    else
      decodePolarKernel<2><<<grid, kThreads, 0, stream>>>(a);
  } else if (kind == Kind::Kivi) {
    const uint32_t perBlock = kThreads / (a.headDim / 8);
    const dim3 grid((a.before + perBlock - 1) / perBlock, a.kvHeads);
    if (keys)
      decodeKiviKernel<true><<<grid, kThreads, 0, stream>>>(a);
    else
      decodeKiviKernel<false><<<grid, kThreads, 0, stream>>>(a);
  } else {
    const uint32_t perBlock = kThreads / (a.headDim / 16);
    const dim3 grid((a.before + perBlock - 1) / perBlock, a.kvHeads);
    if (kind == Kind::Fp8E4M3)
      decodeChunksKernel<Kind::Fp8E4M3><<<grid, kThreads, 0, stream>>>(a);
    else
      decodeChunksKernel<Kind::Nvfp4><<<grid, kThreads, 0, stream>>>(a);
  }
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the decode of a prefill's earlier tokens", e);
  return Status::ok();
}

} // namespace

bool prefillDecodes(const PagedKvView &view) {
  return decodes(view.key) && decodes(view.value) &&
         (view.headDim == 64 || view.headDim == 128) && view.pageSize > 0;
}

size_t decodedTokensBytes(const PagedKvView &view, uint32_t before) {
  const DecodedLayout l = decodedLayout(view, before);
  return size_t(2 * l.sideBytes + l.pages * sizeof(int32_t));
}

StatusOr<PagedKvView> decodeEarlierTokens(const PagedKvView &view,
                                          const int32_t *pageTable,
                                          uint32_t tableRow, uint32_t before,
                                          void *out, const int32_t **table,
                                          cudaStream_t stream) {
  if (!prefillDecodes(view))
    return Status::error("the GPU decodes a prefill's earlier tokens from "
                         "fp8, nvfp4, polar (at most 4 bits) or kivi pages "
                         "of head dimension 64 or 128");
  const DecodedLayout l = decodedLayout(view, before);
  auto *bytes = static_cast<uint8_t *>(out);
  DecodeArgs a{};
  a.pageTable = pageTable;
  a.before = before;
  a.pageSize = view.pageSize;
  a.kvHeads = view.kvHeads;
  a.headDim = view.headDim;
  PagedKvView decoded = view;
  for (int s = 0; s < 2; ++s) {
    const DeviceSideLayout &side = s ? view.value : view.key;
    a.side = {side, s ? view.values : view.keys,
              reinterpret_cast<__nv_bfloat16 *>(bytes + s * l.sideBytes)};
    if (side.kind == Kind::Polar) {
      const codecs::Codebook &book =
          codecs::lloydMaxCodebook(view.headDim, side.bits);
      for (size_t c = 0; c < book.levels.size() && c < 16; ++c)
        a.levels[c] = float(book.levels[c]);
    }
    KVRT_RETURN_IF_ERROR(launchSide(a, s == 0, stream));
    DeviceSideLayout &bf16 = s ? decoded.value : decoded.key;
    bf16 = DeviceSideLayout();
    bf16.kind = Kind::Bf16;
    bf16.entryBytes = view.headDim * 2;
    bf16.headBytes = bf16.areaStride = l.areaStride;
  }
  decoded.keys = bytes;
  decoded.values = bytes + l.sideBytes;
  decoded.exact = ExactTokensView();
  const ExactTokensView &exact = view.exact;
  if (exact.active()) {
    // What a row reads exact (ExactTokens.h): the sinks below `before`,
    // and the ring's tokens from the first whose codes are not read.
    const uint32_t sinkCount = std::min(exact.sinks, before);
    const uint32_t ringFirst =
        std::max(sinkCount, uint32_t(codedTokens(int(before), int(exact.recent),
                                                 int(exact.flushGroup))));
    const uint32_t count = sinkCount + (before - ringFirst);
    if (count > 0) {
      overlayExactKernel<<<dim3(count, view.kvHeads), view.headDim / 8, 0,
                           stream>>>(
          exact, tableRow, sinkCount, ringFirst, view.kvHeads, view.headDim,
          view.pageSize, reinterpret_cast<uint4 *>(bytes),
          reinterpret_cast<uint4 *>(bytes + l.sideBytes));
      if (cudaError_t e = cudaGetLastError())
        return cudaFailed("launching the copy of a prefill's exact tokens", e);
    }
  }
  auto *identity = reinterpret_cast<int32_t *>(bytes + 2 * l.sideBytes);
  identityKernel<<<uint32_t((l.pages + 255) / 256), 256, 0, stream>>>(
      identity, uint32_t(l.pages));
  if (cudaError_t e = cudaGetLastError())
    return cudaFailed("launching the decoded pages' table", e);
  *table = identity;
  return decoded;
}

} // namespace kvrt::cuda
