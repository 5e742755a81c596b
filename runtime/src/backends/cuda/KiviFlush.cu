//===- KiviFlush.cu - KIVI's groups encoded as they leave the window ------===//
//
// One block per (row, KV head) of the call, one thread per coordinate;
// only the rows whose token completes a group beyond the window work
// (Append.h). Each encodes its group's G tokens in the CPU codec's
// arithmetic (runtime/src/cache/codecs/Kivi.cpp), so both write the same
// bytes: per key channel over the G tokens, or per value token over each
// G channels, the minimum and maximum in fp32, scale = f16((max - min) /
// (2^bits - 1)) and zero = f16(min) from doubles (rounded to nearest even,
// saturated at 65504), then code = clamp(rint((x - zero) / scale), 0,
// 2^bits - 1) in double with the stored scale and zero (0 when the scale
// is not positive). Codes gather in shared memory and are packed a byte
// per thread.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/Append.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

namespace kvrt::cuda {
namespace {

constexpr int kMaxHeadDim = 128;

/// `value` as the f16 the CPU's storeF16() stores, read back.
__device__ double storeF16(uint8_t *at, double value) {
  const double saturated = value > 65504.0    ? 65504.0
                           : value < -65504.0 ? -65504.0
                                              : value;
  const __half half = __double2half(saturated);
  *reinterpret_cast<__half *>(at) = half;
  return double(__half2float(half));
}

/// The CPU's Affine::quantize() with the stored scale and zero.
__device__ uint8_t quantize(float x, double scale, double zero,
                            uint32_t maxCode) {
  if (!(scale > 0))
    return 0;
  const double code = rint((double(x) - zero) / scale);
  return code > 0 ? uint8_t(fmin(code, double(maxCode))) : 0;
}

/// Packs `rows` rows of `d` codes from `codes` into `out`, a byte a thread:
/// coordinate i of a row at bits [i bits, (i + 1) bits) of the row.
__device__ void packRows(const uint8_t *codes, int rows, int d, int bits,
                         uint8_t *out, int rowStride) {
  const int rowBytes = d * bits / 8, perByte = 8 / bits;
  for (int i = threadIdx.x; i < rows * rowBytes; i += blockDim.x) {
    const int row = i / rowBytes, byte = i % rowBytes;
    uint32_t packed = 0;
    for (int k = 0; k < perByte; ++k)
      packed |= uint32_t(codes[row * d + byte * perByte + k]) << (k * bits);
    out[row * rowStride + byte] = uint8_t(packed);
  }
}

template <int G> __global__ void kiviFlushKernel(const KiviFlushArgs a) {
  __shared__ uint8_t codes[G * kMaxHeadDim];
  __shared__ float lows[kMaxHeadDim / 32], highs[kMaxHeadDim / 32];
  const PagedKvView &v = a.view;
  const ExactTokensView &e = v.exact;
  const int r = blockIdx.x, h = blockIdx.y, c = threadIdx.x;
  const int d = int(v.headDim), kvHeads = int(v.kvHeads);
  const int x = v.lengths[r] - 1;
  const int first = leavingGroup(x, int(e.recent), G);
  if (first < 0)
    return;
  const int tableRow = v.tableRows ? v.tableRows[r] : r;
  const int sequenceSlot = e.calls[3 * tableRow];
  const int before = e.calls[3 * tableRow + 1];
  // Token y's coordinate c, from the call's bf16 copy or the store.
  auto token = [&](const uint16_t *own, const uint16_t *store, int y) {
    const size_t at =
        y >= before ? (size_t(int(e.firstRow) + r - (x - y)) * kvHeads + h) * d
                    : ((size_t(sequenceSlot) * kvHeads + h) * e.entries() +
                       e.sinks + y % int(e.window)) *
                          d;
    return __uint_as_float(uint32_t((y >= before ? own : store)[at + c]) << 16);
  };
  const int32_t *table = v.pageTables + size_t(tableRow) * v.pageTableStride;
  const int pageSize = int(v.pageSize);
  auto area = [&](uint8_t *pool, const DeviceSideLayout &side, int y) {
    return pool + uint64_t(table[y / pageSize]) * side.areaStride * kvHeads +
           uint64_t(h) * side.areaStride;
  };
  const uint32_t bits = v.key.bits, maxCode = (1u << bits) - 1;
  const int rowBytes = d * int(bits) / 8;

  // Keys: one block of G tokens, a scale and a zero per channel.
  {
    float k[G];
    float low = INFINITY, high = -INFINITY;
#pragma unroll
    for (int t = 0; t < G; ++t) {
      k[t] = token(e.ownKeys, e.keys, first + t);
      low = t ? fminf(low, k[t]) : k[t];
      high = t ? fmaxf(high, k[t]) : k[t];
    }
    uint8_t *block = area(a.keys, v.key, first) +
                     uint64_t(first % pageSize) * v.key.entryBytes;
    uint8_t *scales = block + G * rowBytes;
    const double scale =
        storeF16(scales + 2 * c, (double(high) - double(low)) / maxCode);
    const double zero = storeF16(scales + 2 * (d + c), low);
#pragma unroll
    for (int t = 0; t < G; ++t)
      codes[t * d + c] = quantize(k[t], scale, zero, maxCode);
    __syncthreads();
    packRows(codes, G, d, int(bits), block, rowBytes);
    __syncthreads();
  }

  // Values: per token, a scale and a zero per G channels (one or two
  // warps).
  const int warp = c / 32, warps = G / 32;
  for (int t = 0; t < G; ++t) {
    const float value = token(e.ownValues, e.values, first + t);
    float low = value, high = value;
    for (int offset = 16; offset; offset /= 2) {
      low = fminf(low, __shfl_xor_sync(~0u, low, offset));
      high = fmaxf(high, __shfl_xor_sync(~0u, high, offset));
    }
    if (c % 32 == 0) {
      lows[warp] = low;
      highs[warp] = high;
    }
    __syncthreads();
    const int lead = warp / warps * warps;
    for (int w = lead; w < lead + warps; ++w) {
      low = fminf(low, lows[w]);
      high = fmaxf(high, highs[w]);
    }
    uint8_t *entry = area(a.values, v.value, first + t) +
                     uint64_t((first + t) % pageSize) * v.value.entryBytes;
    uint8_t *pair = entry + rowBytes + 4 * (c / G);
    // Every thread of the group computes the same scale and zero; one
    // stores them.
    uint8_t ignored[4];
    uint8_t *stored = c % G == 0 ? pair : ignored;
    const double scale =
        storeF16(stored, (double(high) - double(low)) / maxCode);
    const double zero = storeF16(stored + 2, low);
    codes[c] = quantize(value, scale, zero, maxCode);
    __syncthreads();
    packRows(codes, 1, d, int(bits), entry, rowBytes);
    __syncthreads();
  }
}

} // namespace

Status launchKiviFlush(const KiviFlushArgs &args, cudaStream_t stream) {
  const PagedKvView &v = args.view;
  if (args.rows == 0)
    return Status::ok();
  if (v.key.kind != DeviceSideLayout::Kind::Kivi ||
      v.value.kind != DeviceSideLayout::Kind::Kivi ||
      v.key.group != v.value.group || v.key.bits != v.value.bits ||
      !v.exact.active() || v.exact.flushGroup != v.key.group ||
      (v.headDim != 64 && v.headDim != 128))
    return Status::error("encoding kivi groups on the GPU needs kivi keys and "
                         "values of one width and group, head dimension 64 "
                         "or 128, and their window in the exact-token store");
  const dim3 grid(args.rows, v.kvHeads);
  if (v.key.group == 32)
    kiviFlushKernel<32><<<grid, v.headDim, 0, stream>>>(args);
  else if (v.key.group == 64)
    kiviFlushKernel<64><<<grid, v.headDim, 0, stream>>>(args);
  else
    return Status::error("encoding kivi groups on the GPU takes groups of 32 "
                         "or 64 tokens, not " +
                         std::to_string(v.key.group));
  if (cudaError_t error = cudaGetLastError())
    return Status::error(std::string("encoding kivi groups failed: ") +
                         cudaGetErrorString(error));
  return Status::ok();
}

} // namespace kvrt::cuda
