//===- BitPacking.h - Codes of 2, 3 or 4 bits, packed LSB first -*- C++ -*-===//
//
// Code i of a run occupies bits [i * bits, (i + 1) * bits) of the run's bit
// stream, and stream bit k is bit k % 8 (0 = least significant) of byte
// k / 8. So 4-bit codes put code 2j in the low nibble of byte j, and a 3-bit
// code may straddle two bytes: 8 codes fill 3 bytes exactly. Runs hold a
// multiple of 8 codes, i.e. `bits` whole bytes per 8 codes.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_BITPACKING_H
#define KVRT_CACHE_CODECS_BITPACKING_H

#include <cassert>
#include <cstdint>

namespace kvrt::codecs {

/// Bytes of a run of `count` codes of `bits` bits.
constexpr uint32_t packedBytes(uint32_t count, uint32_t bits) {
  return count / 8 * bits;
}

/// Packs `count` codes (each < 2^bits; count a multiple of 8) into `out`.
inline void packCodes(const uint8_t *codes, uint32_t count, uint32_t bits,
                      uint8_t *out) {
  assert(count % 8 == 0 && bits >= 1 && bits <= 4);
  for (uint32_t i = 0; i < count; i += 8, out += bits) {
    uint32_t word = 0;
    for (uint32_t j = 0; j < 8; ++j)
      word |= uint32_t(codes[i + j]) << (j * bits);
    for (uint32_t b = 0; b < bits; ++b)
      out[b] = uint8_t(word >> (8 * b));
  }
}

/// out[i] = table[code i] for the `count` codes packed at `packed`.
template <uint32_t Bits>
inline void unpackThrough(const uint8_t *packed, uint32_t count,
                          const float *table, float *out) {
  constexpr uint32_t mask = (1u << Bits) - 1;
  for (uint32_t i = 0; i < count; i += 8, packed += Bits) {
    uint32_t word = 0;
    for (uint32_t b = 0; b < Bits; ++b)
      word |= uint32_t(packed[b]) << (8 * b);
    for (uint32_t j = 0; j < 8; ++j)
      out[i + j] = table[(word >> (j * Bits)) & mask];
  }
}

inline void unpackThrough(const uint8_t *packed, uint32_t count, uint32_t bits,
                          const float *table, float *out) {
  assert(count % 8 == 0);
  switch (bits) {
  case 2:
    return unpackThrough<2>(packed, count, table, out);
  case 3:
    return unpackThrough<3>(packed, count, table, out);
  case 4:
    return unpackThrough<4>(packed, count, table, out);
  }
  assert(false && "codes of 2, 3 or 4 bits");
}

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_BITPACKING_H
