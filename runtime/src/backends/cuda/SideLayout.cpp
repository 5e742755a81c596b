//===- SideLayout.cpp - A codec's area as the CUDA kernels read it --------===//
//
// bf16: slot s at 2 d s. fp8 per_head: the head's f32 scale at 0, slot s's
// codes at 4 + d s. fp8 dynamic: slot s's codes at (d + 4) s, its f32 scale
// right after them. The layout is checked against the codec's own sizes, so
// a codec that changes its bytes fails here rather than in a kernel.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SideLayout.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/Codec.h"

#include <string>

namespace kvrt::cuda {

StatusOr<DeviceSideLayout> deviceSideLayout(const schema::Encoding &encoding,
                                            const Codec &codec,
                                            uint32_t pageSize) {
  const uint32_t d = codec.headDim();
  DeviceSideLayout side;
  switch (encoding.kind()) {
  case schema::ENCODING_BF16:
    side.kind = DeviceSideLayout::Kind::Bf16;
    side.entryBytes = 2 * d;
    break;
  case schema::ENCODING_FP8:
    if (encoding.fp8_format() != schema::FP8_FORMAT_E4M3)
      return Status::error("the CUDA backend reads fp8 e4m3 caches, not e5m2");
    side.kind = DeviceSideLayout::Kind::Fp8E4M3;
    side.slotScales = encoding.scale_mode() == schema::SCALE_MODE_DYNAMIC;
    side.entryBytes = side.slotScales ? d + 4 : d;
    side.codesOffset = side.slotScales ? 0 : 4;
    side.scaleOffset = side.slotScales ? d : 0;
    break;
  default:
    return Status::error("the CUDA backend reads bf16 and fp8 e4m3 caches; "
                         "encoding " +
                         std::to_string(int(encoding.kind())) + " is not yet");
  }
  side.headBytes = codec.headBytes(pageSize);
  side.areaStride = (side.headBytes + 15) / 16 * 16;
  if (codec.sharedBytes() != side.codesOffset ||
      side.headBytes != side.codesOffset + uint64_t(pageSize) * side.entryBytes)
    return Status::error("the codec's page area (" +
                         std::to_string(side.headBytes) +
                         " bytes) is not the layout the CUDA kernels read");
  return side;
}

} // namespace kvrt::cuda
