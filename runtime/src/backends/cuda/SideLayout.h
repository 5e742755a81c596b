//===- SideLayout.h - A codec's area as the kernels read it -----*- C++ -*-===//
#ifndef KVRT_BACKENDS_CUDA_SIDELAYOUT_H
#define KVRT_BACKENDS_CUDA_SIDELAYOUT_H

#include "runtime/src/backends/cuda/DecodeAttention.h"

namespace kvrt {
class Codec;
namespace schema {
class Encoding;
}
} // namespace kvrt

namespace kvrt::cuda {

/// Where the codes and scales of `codec` (made for `encoding`) sit in a
/// head's area of a page of `pageSize` tokens (docs/kv-encodings.md), or
/// why the CUDA kernels cannot read that encoding yet.
StatusOr<DeviceSideLayout> deviceSideLayout(const schema::Encoding &encoding,
                                            const Codec &codec,
                                            uint32_t pageSize);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_SIDELAYOUT_H
