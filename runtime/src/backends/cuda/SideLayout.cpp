//===- SideLayout.cpp - A codec's area as the CUDA kernels read it --------===//
//
// bf16: slot s at 2 d s. fp8 per_head: the head's f32 scale at 0, slot s's
// codes at 4 + d s. fp8 dynamic: slot s's codes at (d + 4) s, its f32 scale
// right after them. polar (without QJL): slot s's packed codes at
// (d b / 8 + 2) s, its f16 scale right after them. kivi: keys in blocks of
// G slots at (d b / 8 + 4 d / G) G k (the G rows of codes, then d f16
// scales and d f16 zeros), values at (d b / 8 + 4 d / G) s (the codes, then
// an f16 scale and zero per G channels). lowrank values or keys with a bf16
// latent: slot s's rank coordinates at 2 rank s (keys: the codec stores
// them before RoPE, storedBeforeRope(), whose pairs it records). The layout is
// checked against the codec's own sizes, and polar's codebook and rotation are
// read back through the codec (decode() of an entry holding every code with a
// scale of 1; finishOutput() of e_0, which is D's signs / sqrt(d)), as is
// nvfp4's tensor scale (decode() of an entry of known codes and scales) and
// kivi's layout (decode() of known codes, scales and zeros), and a latent's
// (decode() of known coordinates: the latent, then for values its weight
// 1), so
// a codec that changes its bytes fails here rather than in a kernel.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cuda/SideLayout.h"

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/backends/cpu/Float16.h"
#include "runtime/src/backends/cpu/Kernels.h"
#include "runtime/src/cache/Codec.h"
#include "runtime/src/cache/codecs/BitPacking.h"
#include "runtime/src/cache/codecs/HalfBytes.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace kvrt::cuda {
namespace {

/// Reads polar's codebook and signs back through `codec` into `side`.
Status readPolar(const Codec &codec, DeviceSideLayout &side) {
  const uint32_t d = codec.headDim(), levels = 1u << side.bits;
  std::vector<uint8_t> codes(d), entry(side.entryBytes);
  for (uint32_t i = 0; i < d; ++i)
    codes[i] = uint8_t(i % levels);
  codecs::packCodes(codes.data(), d, side.bits, entry.data());
  codecs::storeF16(entry.data() + side.scaleOffset, 1.0);
  std::vector<float> decoded(d);
  codec.decode(entry.data(), 0, decoded.data());
  const Status unexpected =
      Status::error("the polar codec's entries or rotation are not the ones "
                    "the CUDA kernels read");
  for (uint32_t i = 0; i < d; ++i)
    if (decoded[i] != decoded[i % levels] ||
        (i && i < levels && !(decoded[i] > decoded[i - 1])))
      return unexpected;
  // Levels times 2^levelShift, the smallest positive one in [1, 2): the lo
  // halves then stay clear of f16's subnormals.
  side.levelShift = -std::ilogb(decoded[levels / 2]);
  for (uint32_t c = 0; c < levels; ++c) {
    side.levels[c] = decoded[c];
    const double level = std::ldexp(double(decoded[c]), side.levelShift);
    uint8_t hi[2], lo[2];
    const double high = codecs::storeF16(hi, level);
    codecs::storeF16(lo, level - high);
    side.levelHalves[c] =
        uint32_t(hi[0] | hi[1] << 8) | uint32_t(lo[0] | lo[1] << 8) << 16;
  }
  std::vector<float> row(d, 0.0f);
  row[0] = 1.0f;
  codec.finishOutput(row.data(), 0);
  for (uint32_t i = 0; i < d; ++i) {
    if (std::fabs(std::fabs(row[i]) * std::sqrt(float(d)) - 1.0f) > 1e-5f)
      return unexpected;
    if (row[i] < 0)
      side.rotationSigns[i / 32] |= 1u << (i % 32);
  }
  return Status::ok();
}

/// Reads nvfp4's tensor scale back through `codec` into `side`: code i % 16
/// at coordinate i, E4M3 1 + j / 8 (code 0x38 + j) as block j's scale.
Status readNvfp4(const Codec &codec, DeviceSideLayout &side) {
  static const float kE2M1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  const uint32_t d = codec.headDim();
  std::vector<uint8_t> codes(d), entry(side.entryBytes);
  for (uint32_t i = 0; i < d; ++i)
    codes[i] = uint8_t(i % 16);
  codecs::packCodes(codes.data(), d, 4, entry.data());
  for (uint32_t j = 0; j < d / 16; ++j)
    entry[side.scaleOffset + j] = uint8_t(0x38 + j);
  std::vector<float> decoded(d);
  codec.decode(entry.data(), 0, decoded.data());
  // Coordinate 2 is E2M1 1 in block 0, whose scale is 1: the tensor scale.
  side.tensorScale = decoded[2];
  for (uint32_t i = 0; i < d; ++i) {
    const float magnitude =
        kE2M1[i % 8] * ((1.0f + float(i / 16) / 8) * side.tensorScale);
    if (decoded[i] != (i % 16 < 8 ? magnitude : -magnitude))
      return Status::error("the nvfp4 codec's entries are not the ones the "
                           "CUDA kernels read");
  }
  return Status::ok();
}

/// Checks that `codec` reads KIVI entries where the kernels do: slot 1 of
/// an area holding code i % 2^bits at coordinate i, every scale 1 and
/// every zero 0.5 (keys: slot 1's codes in its block's second row).
Status readKivi(const Codec &codec, bool keys, const DeviceSideLayout &side) {
  const uint32_t d = codec.headDim(), rowBytes = d * side.bits / 8;
  std::vector<uint8_t> codes(d), area(2 * side.group * side.entryBytes);
  for (uint32_t i = 0; i < d; ++i)
    codes[i] = uint8_t(i % (1u << side.bits));
  uint8_t *row = area.data() + (keys ? rowBytes : side.entryBytes);
  codecs::packCodes(codes.data(), d, side.bits, row);
  const uint32_t pairs = keys ? d : d / side.group;
  uint8_t *metadata =
      keys ? area.data() + side.group * rowBytes : row + rowBytes;
  for (uint32_t j = 0; j < pairs; ++j) {
    // Keys: d scales, then d zeros; values: a scale and a zero per group.
    codecs::storeF16(metadata + (keys ? 2 * j : 4 * j), 1.0);
    codecs::storeF16(metadata + (keys ? 2 * (d + j) : 4 * j + 2), 0.5);
  }
  std::vector<float> decoded(d);
  codec.decode(area.data(), 1, decoded.data());
  for (uint32_t i = 0; i < d; ++i)
    if (decoded[i] != 0.5f + float(codes[i]))
      return Status::error("the kivi codec's entries are not the ones the "
                           "CUDA kernels read");
  return Status::ok();
}

/// Checks that `codec` reads a latent where the kernels do: slot 1 of an
/// area holding coordinate i as i + 1 decodes to (1, ..., rank), then for
/// values 1, the weight that the merge maps back with the mean.
Status readLatent(const Codec &codec, const DeviceSideLayout &side) {
  std::vector<uint8_t> area(2 * side.entryBytes);
  for (uint32_t i = 0; i < side.rank; ++i) {
    const uint16_t code = cpu::floatToBf16(float(i + 1));
    std::memcpy(area.data() + side.entryBytes + 2 * i, &code, 2);
  }
  std::vector<float> decoded(codec.domainSize());
  codec.decode(area.data(), 1, decoded.data());
  const bool values = side.kind == DeviceSideLayout::Kind::Latent;
  for (uint32_t i = 0; i < side.rank + (values ? 1 : 0); ++i)
    if (decoded[i] != (i < side.rank ? float(i + 1) : 1.0f))
      return Status::error("the low-rank codec's entries are not the ones "
                           "the CUDA kernels read");
  return Status::ok();
}

} // namespace

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
  case schema::ENCODING_POLAR:
    if (encoding.qjl())
      return Status::error("the CUDA backend reads polar caches without QJL");
    if (d > 128)
      return Status::error("the CUDA backend reads polar caches of head "
                           "dimensions up to 128");
    side.kind = DeviceSideLayout::Kind::Polar;
    side.bits = encoding.bits();
    side.slotScales = true;
    side.scaleOffset = d * side.bits / 8;
    side.entryBytes = side.scaleOffset + 2;
    break;
  case schema::ENCODING_NVFP4:
    if (d % 64)
      return Status::error("the CUDA backend reads nvfp4 caches of head "
                           "dimensions 64 and 128");
    side.kind = DeviceSideLayout::Kind::Nvfp4;
    side.scaleOffset = d / 2;
    side.entryBytes = d / 2 + d / 16;
    // Entries as the kernels hold them: value / tensor scale * 2^-8.
    side.levelShift = -8;
    break;
  case schema::ENCODING_INT:
    // Keys in blocks of `group` tokens (codes, then per channel a scale
    // and a zero), values per slot: both take a block's bytes per token.
    if (encoding.group() != 32 && encoding.group() != 64)
      return Status::error("the CUDA backend reads kivi caches in groups of "
                           "32 or 64, not " +
                           std::to_string(encoding.group()));
    if (pageSize % encoding.group())
      return Status::error("the CUDA backend reads kivi caches in pages of "
                           "whole groups; a page of " +
                           std::to_string(pageSize) +
                           " tokens is not a multiple of " +
                           std::to_string(encoding.group()));
    side.kind = DeviceSideLayout::Kind::Kivi;
    side.bits = encoding.bits();
    side.group = encoding.group();
    side.entryBytes = d * side.bits / 8 + 4 * d / side.group;
    break;
  case schema::ENCODING_LOWRANK:
    if (encoding.latent().kind() != schema::ENCODING_BF16)
      return Status::error("the CUDA backend reads low-rank latents stored "
                           "in bf16, not quantized ones yet");
    if (encoding.group() > 1)
      return Status::error("the CUDA backend reads low-rank latents of one "
                           "KV head each, not of groups of " +
                           std::to_string(encoding.group()));
    side.kind = codec.storedBeforeRope() ? DeviceSideLayout::Kind::LatentKey
                                         : DeviceSideLayout::Kind::Latent;
    side.rank = encoding.rank();
    side.entryBytes = 2 * side.rank;
    if (const cpu::RopeFrequencies *rope = codec.storedBeforeRope())
      side.ropeInterleaved = rope->interleaved;
    break;
  default:
    return Status::error("the CUDA backend reads bf16, fp8 e4m3, nvfp4, "
                         "polar, kivi and low-rank caches; encoding " +
                         std::to_string(int(encoding.kind())) + " is not yet");
  }
  side.headBytes = codec.headBytes(pageSize);
  side.areaStride = (side.headBytes + 15) / 16 * 16;
  if (codec.sharedBytes() != side.codesOffset ||
      side.headBytes != side.codesOffset + uint64_t(pageSize) * side.entryBytes)
    return Status::error("the codec's page area (" +
                         std::to_string(side.headBytes) +
                         " bytes) is not the layout the CUDA kernels read");
  if (side.kind == DeviceSideLayout::Kind::Polar)
    KVRT_RETURN_IF_ERROR(readPolar(codec, side));
  if (side.kind == DeviceSideLayout::Kind::Nvfp4)
    KVRT_RETURN_IF_ERROR(readNvfp4(codec, side));
  if (side.kind == DeviceSideLayout::Kind::Kivi)
    KVRT_RETURN_IF_ERROR(readKivi(codec, codec.groupTokens() > 1, side));
  if (side.kind == DeviceSideLayout::Kind::Latent ||
      side.kind == DeviceSideLayout::Kind::LatentKey)
    KVRT_RETURN_IF_ERROR(readLatent(codec, side));
  return side;
}

} // namespace kvrt::cuda
