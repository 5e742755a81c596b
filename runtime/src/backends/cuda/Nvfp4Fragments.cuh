//===- Nvfp4Fragments.cuh - nvfp4 keys as f16 MMA operands -----*- CUDA -*-===//
//
// An nvfp4 entry is D E2M1 codes, two a byte (low nibble first), then one
// E4M3 scale per 16 coordinates (docs/kv-encodings.md). A code with its
// sign in bit 15 of an f16 and its three magnitude bits in bits 9-11 is the
// f16 of its value times 2^-14 (E2M1 0.5 lands on f16's subnormal 2^-15);
// one f16 multiply by the block scale times 2^6 (at most 448 * 64, no
// overflow) makes it value * scale * 2^-8, exact (a multiple of 2^-18 of
// at most six significant bits), so an operand has one term. The tensor
// scale times 2^8 (kNvfp4Unscale) is applied to the sums in fp32. The dense
// GroupMma kernel (keys as A) and level 2 of sparse selection (keys as B)
// read a key's k-steps alike: lane t's coordinates 4 (t kSteps + j) .. + 3
// in k-step j, D / 64 scale blocks.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_NVFP4FRAGMENTS_CUH
#define KVRT_BACKENDS_CUDA_NVFP4FRAGMENTS_CUH

#include "runtime/src/backends/cuda/MmaFragments.cuh"

#include <cstdint>

namespace kvrt::cuda {

/// What the f16 operands' sums are multiplied by, besides the tensor scale.
inline constexpr float kNvfp4Unscale = 256.0f;

/// The E2M1 codes in bits 12-15 and 28-31 of x as an f16 pair, times 2^-14.
__device__ __forceinline__ uint32_t e2m1HighToF16x2(uint32_t x) {
  return (x & 0x80008000u) | ((x >> 3) & 0x0e000e00u);
}

__device__ __forceinline__ uint32_t mulF16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

/// Two E4M3 block scales (the first in the low byte) as f16, times 2^6.
__device__ __forceinline__ uint32_t blockScales(uint32_t pair) {
  return mulF16x2(e4m3x2ToF16x2(pair), 0x54005400u);
}

/// Byte b of x (nibbles of its high half) and of y (high half of the
/// result), each in the top nibble of its half.
__device__ __forceinline__ uint32_t byteTops(uint32_t x, uint32_t y, int b) {
  return permute(x, y, uint32_t(b | b << 4 | b << 8 | (4 + b) << 12));
}

/// k-step j of the key whose entry starts at `entry`, for lane t: r[h] holds
/// coordinates 4 (t kSteps + j) + 2h, + 2h + 1 (A's a[j][h], B's b[h]).
/// Its loads are the same for every j of a word and of a scale block, so
/// an unrolled loop over j reads each once.
template <int D>
__device__ __forceinline__ void nvfp4KeyStep(const uint8_t *entry, int j, int t,
                                             uint32_t (&r)[2]) {
  uint32_t scales;
  if constexpr (D == 128)
    scales =
        blockScales(*reinterpret_cast<const uint16_t *>(entry + D / 2 + 2 * t));
  else
    scales = blockScales(entry[D / 2 + t]);
  // Lane t's coordinates from 4 t kSteps: k-step j's lie in scale block
  // 4 j / 16 of the lane's.
  const uint32_t block = (4 * j / 16) % 2 == 0 ? permute(scales, 0u, 0x1010)
                                               : permute(scales, 0u, 0x3232);
  const uint32_t w =
      *reinterpret_cast<const uint32_t *>(entry + D / 8 * t + 4 * (j / 2));
#pragma unroll
  for (int h = 0; h < 2; ++h)
    r[h] =
        mulF16x2(e2m1HighToF16x2(byteTops(w << 4, w, 2 * (j % 2) + h)), block);
}

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_NVFP4FRAGMENTS_CUH
