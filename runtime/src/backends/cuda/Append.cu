//===- Append.cu - Quantize-on-append into device pages -------------------===//
//
// One launch per layer: a block per (row, KV head) and side, one thread per
// coordinate, the side's encoding picked in the block (a decode step's
// appends are latency, not work, so the keys', the values' and the rope of
// the queries share one launch). Each encoding in the CPU codec's
// arithmetic so that both write the same bytes:
// - fp8: quotients in double, rounded once to e4m3 (nearest, ties to
//   even, saturating).
// - nvfp4: per 16 coordinates an e4m3 scale of absmax / 6 / tensorScale,
//   then each quotient in double rounded once to e2m1.
// - polar: the rotation in double (flipped signs, the Walsh-Hadamard
//   butterflies in the CPU's order, times 1 / sqrt(d): exact for bf16
//   inputs up to the last multiplication), codes from the Lloyd-Max
//   boundaries, the least-squares scale <Rx, L> / |L|^2 rounded once to
//   f16. The norm and the scale's sums are reduced in another order than
//   the CPU's, so a coordinate within an ulp of a boundary may take the
//   other code.
// - latent values: z_j = sum_i B_ij (v_i - mu_i) in double, over i in the
//   CPU's order with every product and sum rounded on its own (no fused
//   multiply-adds, which the CPU build does not use either), then rounded
//   to float and to bf16: the same bytes.
// - latent keys: first rotated back from the row's position, with the CPU
//   codec's tables of rotations (three of 256 steps, the rotations
//   composed in double in its order) and its arithmetic, rounded to float;
//   then z_j = sum_i B_ij (w_i u_i) as for values.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/Append.h"
#include "runtime/src/backends/cuda/RopeTurn.cuh"
#include "runtime/src/cache/codecs/LloydMax.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp4.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

namespace kvrt::cuda {
namespace {

struct AppendGeometry {
  uint64_t areaStride;
  uint64_t pageStride;
  uint32_t entryBytes;
  uint32_t codesOffset;
  uint32_t scaleOffset;
  bool slotScales;
};

/// Coordinate i of KV head h of row r in args.src, rotated by args.rope
/// where the append runs the keys' rope step.
__device__ float sourceValue(const AppendArgs &a, uint32_t r, uint32_t h,
                             uint32_t i) {
  const uint64_t stride =
      a.srcStride ? a.srcStride : uint64_t(a.kvHeads) * a.headDim;
  const float *head = a.src + r * stride + uint64_t(h) * a.headDim;
  if (!a.rope.inverse)
    return head[i];
  return ropedCoordinate(head, i, a.headDim, a.positions[r], a.rope.inverse,
                         a.rope.factor, a.rope.interleaved);
}

/// Coordinate i of KV head h of row r rounded to bf16, as the CPU
/// backend's append rounds it, and left in a.bf16Copy where there is one.
__device__ __nv_bfloat16 roundedSource(const AppendArgs &a, uint32_t r,
                                       uint32_t h, uint32_t i) {
  const __nv_bfloat16 rounded = __float2bfloat16_rn(sourceValue(a, r, h, i));
  if (a.bf16Copy)
    reinterpret_cast<__nv_bfloat16 *>(
        a.bf16Copy)[(uint64_t(r) * a.kvHeads + h) * a.headDim + i] = rounded;
  return rounded;
}

/// Where an append writes the entry of (row r, KV head h): its KV-head
/// area and entry in `pool`, and for an offloaded side whose page is
/// resident (AppendArgs::residentSlotOf) the same area in the page's
/// device slot, which every store() writes too, so that a resident page
/// stays whole.
struct EntryAt {
  uint8_t *area, *entry, *resident;

  /// Stores `value` `offset` bytes from the entry (or from the area).
  template <typename T>
  __device__ void store(uint32_t offset, T value, bool fromArea = false) const {
    uint8_t *at = (fromArea ? area : entry) + offset;
    *reinterpret_cast<T *>(at) = value;
    if (resident)
      *reinterpret_cast<T *>(resident + (at - area)) = value;
  }
};

__device__ EntryAt entryAt(const AppendArgs &a, const AppendGeometry &g,
                           uint32_t r, uint32_t h) {
  const int32_t slot = a.slots[r];
  const uint64_t page = uint64_t(slot / int32_t(a.pageSize));
  EntryAt at;
  at.area = a.pool + page * g.pageStride + h * g.areaStride;
  at.entry = at.area + g.codesOffset +
             uint64_t(slot % int32_t(a.pageSize)) * g.entryBytes;
  at.resident = nullptr;
  if (a.residentSlotOf) {
    const int32_t resident = a.residentSlotOf[page * a.kvHeads + h];
    if (resident >= 0)
      at.resident = a.residentAreas + uint64_t(resident) * a.residentAreaStride;
  }
  return at;
}

/// The largest finite e4m3 and e2m1 values.
constexpr double kE4M3Max = 448.0;
constexpr double kE2M1Max = 6.0;

/// Polar's codebook (LloydMax.h) and rotation signs as the kernel reads
/// them.
struct PolarCode {
  double levels[16];
  double boundaries[15];
  uint32_t signs[4];
  uint32_t bits;
};

/// The sum over the block's threads (at most 4 warps) of `x`.
__device__ double blockSum(double x, double *partial) {
  for (int offset = 16; offset; offset /= 2)
    x += __shfl_xor_sync(~0u, x, offset);
  __syncthreads();
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = x;
  __syncthreads();
  double sum = 0;
  for (uint32_t w = 0; w < blockDim.x / 32; ++w)
    sum += partial[w];
  return sum;
}

__device__ void appendPolar(const AppendArgs &a, const AppendGeometry &g,
                            const PolarCode &code) {
  __shared__ double x[128];
  __shared__ double partial[4];
  __shared__ uint8_t codes[128];
  const uint32_t r = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
  const uint32_t d = a.headDim;
  const EntryAt at = entryAt(a, g, r, h);
  const __nv_bfloat16 rounded = roundedSource(a, r, h, i);
  const double value = __bfloat162float(rounded);
  const double norm = sqrt(blockSum(value * value, partial));
  const bool flip = code.signs[i / 32] >> (i % 32) & 1;
  x[i] = flip ? -value : value;
  for (uint32_t half = 1; half < d; half *= 2) {
    __syncthreads();
    double mine = x[i], other = x[i ^ half];
    __syncthreads();
    x[i] = i & half ? other - mine : mine + other;
  }
  const double rotated = x[i] * (1.0 / sqrt(double(d)));
  const double unit = norm > 0 ? rotated / norm : 0.0;
  uint32_t c = 0;
  for (uint32_t b = 0; b < (1u << code.bits) - 1; ++b)
    c += unit > code.boundaries[b];
  codes[i] = uint8_t(c);
  const double level = code.levels[c];
  const double along = blockSum(rotated * level, partial);
  const double squares = blockSum(level * level, partial);
  // Eight codes per `bits` bytes, the first in the lowest bits.
  if (i < d / 8) {
    uint32_t word = 0;
    for (uint32_t j = 0; j < 8; ++j)
      word |= uint32_t(codes[8 * i + j]) << (j * code.bits);
    for (uint32_t b = 0; b < code.bits; ++b)
      at.store(i * code.bits + b, uint8_t(word >> (8 * b)));
  }
  if (i == 0)
    at.store(g.scaleOffset, __double2half(along / squares));
}

/// One block per (row, KV head), one thread per coordinate; blocks of 16
/// coordinates are half-warps.
__device__ void appendNvfp4(const AppendArgs &a, const AppendGeometry &g,
                            double tensorScale) {
  const uint32_t r = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
  const EntryAt at = entryAt(a, g, r, h);
  const __nv_bfloat16 rounded = roundedSource(a, r, h, i);
  const float x = __bfloat162float(rounded);
  float absMax = fabsf(x);
  for (int offset = 8; offset; offset /= 2)
    absMax = fmaxf(absMax, __shfl_xor_sync(~0u, absMax, offset));
  const __nv_fp8_storage_t scaleCode = __nv_cvt_double_to_fp8(
      double(absMax) / kE2M1Max / tensorScale, __NV_SATFINITE, __NV_E4M3);
  const double scale =
      double(
          __half2float(__half(__nv_cvt_fp8_to_halfraw(scaleCode, __NV_E4M3)))) *
      tensorScale;
  const uint32_t nibble =
      scale > 0 ? uint32_t(__nv_cvt_double_to_fp4(double(x) / scale, __NV_E2M1,
                                                  cudaRoundNearest)) &
                      0xf
                : 0;
  // Two codes a byte, the even coordinate in the low nibble.
  const uint32_t partner = __shfl_xor_sync(~0u, nibble, 1);
  if (i % 2 == 0)
    at.store(i / 2, uint8_t(nibble | partner << 4));
  if (i % 16 == 0)
    at.store(g.scaleOffset + i / 16, uint8_t(scaleCode));
}

/// One block per (row, KV head), one thread per coordinate; threads below
/// the rank each compute one of the latent's coordinates.
__device__ void appendLatent(const AppendArgs &a, const AppendGeometry &g,
                             uint32_t rank) {
  __shared__ double centred[128];
  const uint32_t r = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
  const uint32_t d = a.headDim;
  __nv_bfloat16 *entry =
      reinterpret_cast<__nv_bfloat16 *>(entryAt(a, g, r, h).entry);
  const __nv_bfloat16 rounded = roundedSource(a, r, h, i);
  // Head h's basis: coordinate i's row holds its axes, then its mean.
  const float *basis = a.basis + uint64_t(h) * d * (rank + 1);
  centred[i] = __dsub_rn(double(__bfloat162float(rounded)),
                         double(basis[i * (rank + 1) + rank]));
  __syncthreads();
  if (i >= rank)
    return;
  double sum = 0;
  for (uint32_t k = 0; k < d; ++k)
    sum = __dadd_rn(sum,
                    __dmul_rn(double(basis[k * (rank + 1) + i]), centred[k]));
  entry[i] = __float2bfloat16_rn(__double2float_rn(sum));
}

/// One block per (row, KV head), one thread per coordinate: threads below
/// half the head rotate a pair each back from the row's position, threads
/// below the rank then each compute one of the latent's coordinates.
__device__ void appendLatentKey(const AppendArgs &a, const AppendGeometry &g,
                                uint32_t rank, bool interleaved) {
  __shared__ float key[128], unrotated[128];
  const uint32_t r = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
  const uint32_t d = a.headDim, half = d / 2;
  __nv_bfloat16 *entry =
      reinterpret_cast<__nv_bfloat16 *>(entryAt(a, g, r, h).entry);
  const __nv_bfloat16 rounded = roundedSource(a, r, h, i);
  key[i] = __bfloat162float(rounded);
  __syncthreads();
  if (i < half) {
    // The CPU codec's PairRotations::rotate(..., inverse = true).
    const int32_t position = a.positions[r];
    double c = 1, s = 0;
    if (position >= 0 && position < (1 << 24)) {
      for (uint32_t level = 0; level < 3; ++level) {
        const uint32_t step = (uint32_t(position) >> (8 * level)) & 255;
        const double *table =
            a.rotations + ((level * 256 + step) * half + i) * 2;
        const double rotated =
            __dsub_rn(__dmul_rn(c, table[0]), __dmul_rn(s, table[1]));
        s = __dadd_rn(__dmul_rn(c, table[1]), __dmul_rn(s, table[0]));
        c = rotated;
      }
    } else {
      sincos(double(position) * a.ropeInverse[i], &s, &c);
    }
    s = -s;
    const uint32_t first = interleaved ? 2 * i : i;
    const uint32_t second = interleaved ? first + 1 : first + half;
    const double x1 = key[first], x2 = key[second];
    unrotated[first] = __double2float_rn(__dmul_rn(
        __dsub_rn(__dmul_rn(x1, c), __dmul_rn(x2, s)), a.rotationScale));
    unrotated[second] = __double2float_rn(__dmul_rn(
        __dadd_rn(__dmul_rn(x2, c), __dmul_rn(x1, s)), a.rotationScale));
  }
  __syncthreads();
  if (i >= rank)
    return;
  // Head h's basis: coordinate k's row holds its axes, then its weight and
  // mean.
  const float *basis = a.basis + uint64_t(h) * d * (rank + 2);
  double sum = 0;
  for (uint32_t k = 0; k < d; ++k) {
    const float *row = basis + k * (rank + 2);
    const double centred =
        __dsub_rn(double(unrotated[k]), double(row[rank + 1]));
    sum = __dadd_rn(
        sum, __dmul_rn(double(row[i]), __dmul_rn(double(row[rank]), centred)));
  }
  entry[i] = __float2bfloat16_rn(__double2float_rn(sum));
}

template <DeviceSideLayout::Kind Kind>
__device__ void appendEntry(const AppendArgs &a, const AppendGeometry &g) {
  const uint32_t r = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
  const EntryAt at = entryAt(a, g, r, h);
  const __nv_bfloat16 rounded = roundedSource(a, r, h, i);
  if constexpr (Kind == DeviceSideLayout::Kind::Kivi) {
    // Encoded a group at a time as it leaves the window (KiviFlush.cu).
    (void)at;
  } else if constexpr (Kind == DeviceSideLayout::Kind::Bf16) {
    at.store(2 * i, rounded);
  } else {
    const float x = __bfloat162float(rounded);
    float scale;
    if (g.slotScales) {
      // The vector's absolute maximum over the block's warps.
      __shared__ float warpMax[4];
      float m = fabsf(x);
      for (int offset = 16; offset; offset /= 2)
        m = fmaxf(m, __shfl_xor_sync(~0u, m, offset));
      if (i % 32 == 0)
        warpMax[i / 32] = m;
      __syncthreads();
      m = 0;
      for (uint32_t w = 0; w < a.headDim / 32; ++w)
        m = fmaxf(m, warpMax[w]);
      scale = float(double(m) / kE4M3Max);
      if (i == 0)
        at.store(g.scaleOffset, scale);
    } else {
      scale = a.headScales[h];
      if (i == 0)
        at.store(g.scaleOffset, scale, true);
    }
    at.store(i, scale > 0
                    ? uint8_t(__nv_cvt_double_to_fp8(double(x) / double(scale),
                                                     __NV_SATFINITE, __NV_E4M3))
                    : uint8_t(0));
  }
}

/// One side's append as the kernel reads it: the encoding's operands
/// beside the side's arguments.
struct SideLaunch {
  AppendArgs args;
  AppendGeometry geometry;
  DeviceSideLayout::Kind kind;
  /// Latent values and keys.
  uint32_t rank;
  bool interleaved;
  /// nvfp4.
  double tensorScale;
  PolarCode polar;
};

/// A launch's sides (keys, then values) and its rope of queries.
struct AppendLaunch {
  SideLaunch sides[2];
  uint32_t sideCount;
  QueryRope queries;
  RopeRotation queryRope;
};

__device__ void appendSide(const SideLaunch &s) {
  using Kind = DeviceSideLayout::Kind;
  switch (s.kind) {
  case Kind::Bf16:
    appendEntry<Kind::Bf16>(s.args, s.geometry);
    break;
  case Kind::Fp8E4M3:
    appendEntry<Kind::Fp8E4M3>(s.args, s.geometry);
    break;
  case Kind::Kivi:
    appendEntry<Kind::Kivi>(s.args, s.geometry);
    break;
  case Kind::Polar:
    appendPolar(s.args, s.geometry, s.polar);
    break;
  case Kind::Nvfp4:
    appendNvfp4(s.args, s.geometry, s.tensorScale);
    break;
  case Kind::Latent:
    appendLatent(s.args, s.geometry, s.rank);
    break;
  case Kind::LatentKey:
    appendLatentKey(s.args, s.geometry, s.rank, s.interleaved);
    break;
  }
}

/// Grid (rows, KV heads, sides + query groups), a thread per coordinate:
/// blocks of z below sideCount append their side's entry of (row, KV
/// head); the others rotate query head (z - sideCount) * KV heads + y of
/// their row.
__global__ void appendKernel(const __grid_constant__ AppendLaunch l) {
  if (blockIdx.z < l.sideCount) {
    appendSide(l.sides[blockIdx.z]);
    return;
  }
  const uint32_t head = (blockIdx.z - l.sideCount) * gridDim.y + blockIdx.y;
  const QueryRope &q = l.queries;
  if (head >= q.heads)
    return;
  const uint32_t r = blockIdx.x, i = threadIdx.x, d = blockDim.x;
  const float *from = q.src + r * q.srcStride + uint64_t(head) * d;
  q.out[(uint64_t(r) * q.heads + head) * d + i] = ropedCoordinate(
      from, i, d, l.sides[0].args.positions[r], l.queryRope.inverse,
      l.queryRope.factor, l.queryRope.interleaved);
}

__global__ void storePositionsKernel(const int32_t *slots,
                                     const int32_t *values, uint32_t rows,
                                     int32_t *positions) {
  const uint32_t r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows)
    positions[slots[r]] = values[r];
}

Status launched(const char *what) {
  cudaError_t error = cudaGetLastError();
  if (error == cudaSuccess)
    return Status::ok();
  return Status::error(std::string(what) +
                       "'s launch failed: " + cudaGetErrorString(error));
}

} // namespace

bool appendWrites(const DeviceSideLayout &side) {
  return side.kind != DeviceSideLayout::Kind::Polar || side.bits <= 4;
}

namespace {

/// `args` and `side` as the kernel reads them, or why it cannot.
StatusOr<SideLaunch> sideLaunch(const AppendArgs &args,
                                const DeviceSideLayout &side) {
  if (!appendWrites(side))
    return Status::error("appending to polar caches of more than 4 bits on "
                         "the GPU is not written; the cpu backend runs them");
  SideLaunch s{};
  s.args = args;
  s.geometry = {side.areaStride,  side.areaStride * args.kvHeads,
                side.entryBytes,  side.codesOffset,
                side.scaleOffset, side.slotScales};
  s.kind = side.kind;
  s.rank = side.rank;
  s.interleaved = side.ropeInterleaved;
  s.tensorScale = double(side.tensorScale);
  switch (side.kind) {
  case DeviceSideLayout::Kind::Polar: {
    const codecs::Codebook &book =
        codecs::lloydMaxCodebook(args.headDim, side.bits);
    std::copy(book.levels.begin(), book.levels.end(), s.polar.levels);
    std::copy(book.boundaries.begin(), book.boundaries.end(),
              s.polar.boundaries);
    std::copy(std::begin(side.rotationSigns), std::end(side.rotationSigns),
              s.polar.signs);
    s.polar.bits = side.bits;
    break;
  }
  case DeviceSideLayout::Kind::Latent:
    if (!args.basis || args.headDim > 128 || side.rank >= args.headDim)
      return Status::error("appending latent values on the GPU needs their "
                           "basis on the device and a rank below a head "
                           "dimension of at most 128");
    break;
  case DeviceSideLayout::Kind::LatentKey:
    if (!args.basis || !args.positions || !args.rotations ||
        !args.ropeInverse || args.headDim > 128 || args.headDim % 2 ||
        side.rank >= args.headDim)
      return Status::error("appending low-rank keys on the GPU needs their "
                           "basis, positions and RoPE's rotations on the "
                           "device and a rank below an even head dimension "
                           "of at most 128");
    break;
  case DeviceSideLayout::Kind::Kivi:
    if (!args.bf16Copy)
      return Status::error("appending to a kivi cache on the GPU keeps the "
                           "tokens in bf16 until their group is encoded, "
                           "and the append was given no place for them");
    break;
  default:
    break;
  }
  if (args.rope.inverse && !args.positions)
    return Status::error("an append that rotates its keys needs their "
                         "positions on the device");
  return s;
}

} // namespace

Status launchAppend(const AppendArgs &args, const DeviceSideLayout &side,
                    cudaStream_t stream) {
  if (args.rows == 0)
    return Status::ok();
  StatusOr<SideLaunch> keys = sideLaunch(args, side);
  if (!keys)
    return keys.status();
  AppendLaunch l{};
  l.sides[0] = *keys;
  l.sideCount = 1;
  appendKernel<<<dim3(args.rows, args.kvHeads, 1), args.headDim, 0, stream>>>(
      l);
  return launched("the cache append");
}

Status launchAppends(const AppendArgs &keys, const DeviceSideLayout &keySide,
                     const AppendArgs &values,
                     const DeviceSideLayout &valueSide,
                     const QueryRope *queries, cudaStream_t stream) {
  if (keys.rows == 0)
    return Status::ok();
  if (values.rows != keys.rows || values.kvHeads != keys.kvHeads ||
      values.headDim != keys.headDim || values.slots != keys.slots)
    return Status::error("a layer's key and value appends in one launch "
                         "must share their rows, heads and slots");
  StatusOr<SideLaunch> keyLaunch = sideLaunch(keys, keySide);
  if (!keyLaunch)
    return keyLaunch.status();
  StatusOr<SideLaunch> valueLaunch = sideLaunch(values, valueSide);
  if (!valueLaunch)
    return valueLaunch.status();
  AppendLaunch l{};
  l.sides[0] = *keyLaunch;
  l.sides[1] = *valueLaunch;
  l.sideCount = 2;
  uint32_t queryGroups = 0;
  if (queries && queries->heads) {
    if (!keys.rope.inverse)
      return Status::error("an append rotates queries only beside keys it "
                           "rotates itself");
    l.queries = *queries;
    l.queryRope = keys.rope;
    queryGroups = (queries->heads + keys.kvHeads - 1) / keys.kvHeads;
  }
  appendKernel<<<dim3(keys.rows, keys.kvHeads, 2 + queryGroups), keys.headDim,
                 0, stream>>>(l);
  return launched("the cache append");
}

Status launchStorePositions(const int32_t *slots, const int32_t *values,
                            uint32_t rows, int32_t *positions,
                            cudaStream_t stream) {
  if (rows == 0)
    return Status::ok();
  storePositionsKernel<<<(rows + 255) / 256, 256, 0, stream>>>(slots, values,
                                                               rows, positions);
  return launched("storing positions");
}

} // namespace kvrt::cuda
