//===- GatherEntries.cuh - Unrolled gathers of selected entries -----------===//
//
// The sparse kernels read listed entries (page, slot) of an area, four
// entries a warp: an eight of lanes per entry, lane `part` holding D / 8 of
// its coordinates, decoded to fp32 in registers. All U entries' loads are
// issued before any is used, so a warp waits for one round trip, not U.
// The forms (SparseKernels.h's SparseEntries):
//   Bf16Rows  16-byte chunks part, part + 8, ... (Bf16Entries' channels);
//   Fp8Rows   the D / 8 codes from part * D / 8, read as 4-byte words (an
//             entry is 4-byte aligned), and the slot's or head's f32
//             scale: code * scale in fp32, as the CPU's codec decodes;
//   PolarRows the D / 8 codes of 2, 3 or 4 bits from bit part * D / 8 *
//             bits, read as 2-byte halves (an entry of D bits / 8 + 2 bytes
//             is 2-byte aligned) or bytes, and the slot's f16 scale: level
//             * scale in fp32 from the levels the CPU's codec decodes to
//             (in shared memory, loadLevels()), in the rotated domain (the
//             kernels read rotated queries);
//   Nvfp4Rows the D / 8 E2M1 codes from part * D / 16 bytes, read as
//             4-byte words, and their block's E4M3 scale byte: e2m1 *
//             (e4m3 * tensor scale) in fp32, the E2M1 values as levels.
//
// An entry names its page by a signed index: x >= 0 is an area of `near`
// (the pool, or an offloaded layer's device slots), x < 0 the page -1 - x
// of `far` (an offloaded layer's pages in host memory, read over the bus
// where the device holds no copy: docs/offload.md).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH
#define KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH

#include "runtime/src/backends/cuda/EntryDecode.cuh"
#include "runtime/src/backends/cuda/SparseKernels.h"

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace kvrt::cuda {

/// One KV head's areas of one side, as gatherEntries() reads them.
struct EntryAreas {
  const uint8_t *near = nullptr;
  uint64_t nearStride = 0;
  const uint8_t *far = nullptr;
  uint64_t farStride = 0;
};

/// The areas of KV head `head` of a pool whose pages are `pageStride`
/// bytes apart, its heads' areas `areaStride` apart; with `slots` (an
/// offloaded layer) the device slots, one head's area each, come first.
__device__ __forceinline__ EntryAreas entryAreas(const uint8_t *pool,
                                                 const uint8_t *slots,
                                                 uint64_t pageStride,
                                                 uint64_t areaStride,
                                                 int head) {
  const uint8_t *area = pool + head * areaStride;
  if (slots)
    return {slots, areaStride, area, pageStride};
  return {area, pageStride, nullptr, 0};
}

/// The signed index gatherEntries() reads `page` of KV head `head` at:
/// the page itself, or with `slotOf` ([pages][kvHeads], -1 where not
/// resident) its device slot or -1 - page.
__device__ __forceinline__ int entryPage(const int32_t *slotOf, int page,
                                         int kvHeads, int head) {
  if (!slotOf)
    return page;
  const int slot = slotOf[size_t(page) * kvHeads + head];
  return slot >= 0 ? slot : -1 - page;
}

/// The KV-head area that entryPage()'s signed index `at` names.
__device__ __forceinline__ const uint8_t *areaAt(const EntryAreas &areas,
                                                 int at) {
  return at >= 0 ? areas.near + size_t(at) * areas.nearStride
                 : areas.far + size_t(-1 - at) * areas.farStride;
}

template <int D> struct Bf16Rows {
  static constexpr int kDims = D / 8;
  static constexpr bool kReadsLevels = false, kScaled = false;
  struct Raw {
    uint4 chunk[D / 64];
  };

  /// Coordinate of the lane's i-th value.
  __device__ __forceinline__ static int dim(int part, int i) {
    return Bf16Entries<D>::dim(part, i);
  }
  /// Slot `slot` of the area whose codes start at `codes`.
  __device__ __forceinline__ static void load(const uint8_t *codes, int slot,
                                              const EntryForm &form, int part,
                                              Raw &raw) {
    const uint8_t *entry = codes + size_t(slot) * form.entryBytes;
#pragma unroll
    for (int c = 0; c < D / 64; ++c)
      raw.chunk[c] =
          *reinterpret_cast<const uint4 *>(entry + (part + 8 * c) * 16);
  }
  __device__ __forceinline__ static void decode(const Raw &raw, const float *,
                                                float (&x)[kDims]) {
#pragma unroll
    for (int c = 0; c < D / 64; ++c) {
      const uint32_t w[4] = {raw.chunk[c].x, raw.chunk[c].y, raw.chunk[c].z,
                             raw.chunk[c].w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        x[8 * c + 2 * k] = __uint_as_float(w[k] << 16);
        x[8 * c + 2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
      }
    }
  }
};

/// What the forms of codes and a scale share: the lane's D / 8
/// consecutive coordinates as `Words` 4-byte words of codes, and the scale.
/// `Form::decodeUnscaled()` gives the codes' values; decode() applies the
/// scale (the attention applies it to an entry's weights instead, once an
/// entry rather than once a coordinate).
template <int D, int Words, typename Form> struct ScaledCodes {
  static constexpr int kDims = D / 8, kWords = Words;
  static constexpr bool kReadsLevels = false, kScaled = true;
  struct Raw {
    uint32_t word[Words];
    float scale;
  };

  __device__ __forceinline__ static void
  decode(const Raw &raw, const float *levels, float (&x)[kDims]) {
    Form::decodeUnscaled(raw, levels, x);
#pragma unroll
    for (int e = 0; e < kDims; ++e)
      x[e] *= raw.scale;
  }

  __device__ __forceinline__ static int dim(int part, int i) {
    return part * kDims + i;
  }
  /// Slot `slot`'s codes in the area whose codes start at `codes`.
  __device__ __forceinline__ static const uint8_t *
  entry(const uint8_t *codes, int slot, const EntryForm &form) {
    return codes + size_t(slot) * form.entryBytes;
  }
};

template <int D> struct Fp8Rows : ScaledCodes<D, D / 32, Fp8Rows<D>> {
  using Base = ScaledCodes<D, D / 32, Fp8Rows<D>>;
  using Base::kDims, Base::kWords;
  using typename Base::Raw;

  __device__ __forceinline__ static void load(const uint8_t *codes, int slot,
                                              const EntryForm &form, int part,
                                              Raw &raw) {
    const uint8_t *entry = Base::entry(codes, slot, form);
#pragma unroll
    for (int j = 0; j < kWords; ++j)
      raw.word[j] =
          *reinterpret_cast<const uint32_t *>(entry + part * kDims + 4 * j);
    raw.scale = *reinterpret_cast<const float *>(
        (form.slotScales ? entry : codes) + form.scaleOffset);
  }
  __device__ __forceinline__ static void
  decodeUnscaled(const Raw &raw, const float *, float (&x)[kDims]) {
#pragma unroll
    for (int j = 0; j < kWords; ++j) {
      const float2 lo = decodeE4M3x2(raw.word[j]);
      const float2 hi = decodeE4M3x2(raw.word[j] >> 16);
      x[4 * j] = lo.x;
      x[4 * j + 1] = lo.y;
      x[4 * j + 2] = hi.x;
      x[4 * j + 3] = hi.y;
    }
  }
};

/// What the forms of codes that index levels share (polar, nvfp4): the
/// lane's D / 8 codes of Bits bits, code e at bits Bits e to Bits e + Bits
/// - 1 of its words (at most 64 bits: D is 64 or 128).
template <int D, int Bits, typename Form>
struct LevelCodes : ScaledCodes<D, (D / 8 * Bits + 31) / 32, Form> {
  using Base = ScaledCodes<D, (D / 8 * Bits + 31) / 32, Form>;
  using typename Base::Raw;
  static constexpr bool kReadsLevels = true;
  static_assert(Base::kWords <= 2, "a lane's codes fit 64 bits");

  __device__ __forceinline__ static void
  decodeUnscaled(const Raw &raw, const float *levels, float (&x)[Base::kDims]) {
    uint64_t bits = 0;
#pragma unroll
    for (int w = 0; w < Base::kWords; ++w)
      bits |= uint64_t(raw.word[w]) << (32 * w);
#pragma unroll
    for (int e = 0; e < Base::kDims; ++e)
      x[e] = levels[(bits >> (Bits * e)) & ((1u << Bits) - 1)];
  }
};

/// Polar codes of Bits bits: the lane's D / 8 codes are D / 8 * Bits
/// consecutive bits of the entry, code e at bits Bits e to Bits e + Bits -
/// 1 of them, as codecs::packCodes packs (eight codes per Bits bytes, the
/// first lowest). Read as 2-byte halves where a lane's share is a whole
/// number of them (entries of D Bits / 8 + 2 bytes are 2-byte aligned),
/// else byte by byte (D = 64, 3 bits: 3 bytes a lane).
template <int D, int Bits>
struct PolarRows : LevelCodes<D, Bits, PolarRows<D, Bits>> {
  using Base = LevelCodes<D, Bits, PolarRows<D, Bits>>;
  using typename Base::Raw;
  static constexpr int kLaneBytes = D / 8 * Bits / 8;

  __device__ __forceinline__ static void load(const uint8_t *codes, int slot,
                                              const EntryForm &form, int part,
                                              Raw &raw) {
    const uint8_t *entry = Base::entry(codes, slot, form);
    const uint8_t *mine = entry + part * kLaneBytes;
    uint64_t bits = 0;
    if constexpr (kLaneBytes % 2 == 0) {
      const uint16_t *halves = reinterpret_cast<const uint16_t *>(mine);
#pragma unroll
      for (int j = 0; j < kLaneBytes / 2; ++j)
        bits |= uint64_t(halves[j]) << (16 * j);
    } else {
#pragma unroll
      for (int j = 0; j < kLaneBytes; ++j)
        bits |= uint64_t(mine[j]) << (8 * j);
    }
#pragma unroll
    for (int w = 0; w < Base::kWords; ++w)
      raw.word[w] = uint32_t(bits >> (32 * w));
    raw.scale = __half2float(
        *reinterpret_cast<const __half *>(entry + form.scaleOffset));
  }
};

/// nvfp4: the lane's D / 8 E2M1 codes (two a byte, the even coordinate in
/// the low nibble) as D / 64 4-byte words (an entry of D / 2 + D / 16 bytes
/// is 4-byte aligned), and its block's E4M3 scale byte (a block is 16
/// coordinates: the lane's at D = 128, half of them at D = 64): e2m1 *
/// (e4m3 * tensor scale) in fp32, as the CPU's codec decodes, the E2M1
/// values held as levels (EntryForm::levels).
template <int D> struct Nvfp4Rows : LevelCodes<D, 4, Nvfp4Rows<D>> {
  using Base = LevelCodes<D, 4, Nvfp4Rows<D>>;
  using typename Base::Raw;
  static_assert(Base::kWords == D / 64, "two codes a byte");

  __device__ __forceinline__ static void load(const uint8_t *codes, int slot,
                                              const EntryForm &form, int part,
                                              Raw &raw) {
    const uint8_t *entry = Base::entry(codes, slot, form);
#pragma unroll
    for (int j = 0; j < Base::kWords; ++j)
      raw.word[j] = *reinterpret_cast<const uint32_t *>(
          entry + part * Base::kWords * 4 + 4 * j);
    raw.scale =
        decodeE4M3x2(entry[form.scaleOffset + part * Base::kDims / 16]).x *
        form.tensorScale;
  }
};

/// Each side's levels ([0] keys, [1] values: polar's codebook, nvfp4's
/// E2M1 values) into shared memory, for Rows::decode(); every thread of
/// the block calls it before the first
/// decode (forms that read no levels skip it). Each is read from the
/// kernel's parameters at a fixed index, so the parameters stay where they
/// are.
template <typename Rows>
__device__ __forceinline__ void loadLevels(const SparseKernelParams &p,
                                           float (&levels)[2][16]) {
  if constexpr (!Rows::kReadsLevels)
    return;
  if (threadIdx.x < 32) {
    const int side = threadIdx.x / 16, i = threadIdx.x % 16;
    float level = 0.0f;
#pragma unroll
    for (int c = 0; c < 16; ++c)
      if (c == i)
        level = side ? p.valueForm.levels[c] : p.keyForm.levels[c];
    levels[side][i] = level;
  }
  __syncthreads();
}

/// Entries rows[base + 4u + item] for u < U of `areas` into raw[u]; past
/// `n` the last entry is read again (the caller drops it).
template <typename Rows, int U>
__device__ __forceinline__ void
gatherEntries(const EntryAreas &areas, const EntryForm &form, const int2 *rows,
              int base, int item, int part, int n,
              typename Rows::Raw (&raw)[U]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int2 at = rows[min(base + 4 * u + item, n - 1)];
    Rows::load(areaAt(areas, at.x), at.y, form, part, raw[u]);
  }
}

/// fn(rows) for `rows` the form of `entries` at head dimension D: a
/// Bf16Rows<D>, an Fp8Rows<D>, a PolarRows<D, Bits> or an Nvfp4Rows<D>.
template <int D, typename Fn>
decltype(auto) withForm(SparseEntries entries, const Fn &fn) {
  switch (entries) {
  case SparseEntries::Fp8E4M3:
    return fn(Fp8Rows<D>{});
  case SparseEntries::Polar2:
    return fn(PolarRows<D, 2>{});
  case SparseEntries::Polar3:
    return fn(PolarRows<D, 3>{});
  case SparseEntries::Polar4:
    return fn(PolarRows<D, 4>{});
  case SparseEntries::Nvfp4:
    return fn(Nvfp4Rows<D>{});
  case SparseEntries::Bf16:
    break;
  }
  return fn(Bf16Rows<D>{});
}

/// kernelInstance() for the form of `entries`: pick(rows, D, G), rows as
/// withForm() passes it.
template <typename Pick>
const void *rowsInstance(SparseEntries entries, uint32_t headDim,
                         uint32_t groupCapacity, const Pick &pick) {
  return kernelInstance(headDim, groupCapacity, [&](auto d, auto g) {
    constexpr int D = decltype(d)::value;
    return withForm<D>(entries, [&](auto rows) {
      return reinterpret_cast<const void *>(pick(rows, d, g));
    });
  });
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_GATHERENTRIES_CUH
