//===- RankKey.h - The order a budgeted selection ranks entries by -*- C++
//-*-===//
//
// Header-only, and callable from CUDA kernels, so that the GPU's selection
// (backends/cuda/EvictSelect.cu) ranks by the same integers as
// evict::selectKept().
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_EVICT_RANKKEY_H
#define KVRT_EVICT_RANKKEY_H

#include "runtime/src/support/HostDevice.h"

#include <cstdint>
#include <cstring>

namespace kvrt::evict {

/// The order selectKept() ranks entries by, as one integer: higher is
/// better; the score first (NaN as -inf, -0 as +0, as the comparison of
/// floats has them), then the earlier index. Distinct indices below 2^32
/// give distinct keys, so the best k entries are those whose keys reach
/// the k-th largest.
KVRT_HOST_DEVICE inline uint64_t rankKey(float score, uint32_t index) {
  uint32_t bits;
  std::memcpy(&bits, &score, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    bits = 0xff800000u;
  else if ((bits & 0x7fffffffu) == 0)
    bits = 0;
  // Orders as the floats do: negatives reversed below the positives.
  bits = bits >> 31 ? ~bits : bits | 0x80000000u;
  return uint64_t(bits) << 32 | uint64_t(~index);
}

} // namespace kvrt::evict

#endif // KVRT_EVICT_RANKKEY_H
