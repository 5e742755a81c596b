//===- Minifloat.h - Small IEEE-style float formats -------------*- C++ -*-===//
//
// OCP FP8 (E4M3FN, E5M2), NVFP4's E2M1 values and IEEE binary16 share one
// layout: a sign bit, an exponent field with a bias, a mantissa field, and
// subnormals when the exponent field is 0. The encoder rounds to nearest,
// ties to even, and saturates to the largest finite value, so it never
// produces an infinity.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_CACHE_CODECS_MINIFLOAT_H
#define KVRT_CACHE_CODECS_MINIFLOAT_H

#include <cstdint>

namespace kvrt::codecs {

/// Which codes of the largest exponent field are not finite numbers.
enum class Specials {
  /// Every code is a number (E2M1).
  None,
  /// Only S.1111.111 is NaN (E4M3FN).
  AllOnesNaN,
  /// Infinities and NaNs as in IEEE 754 (E5M2, binary16).
  Ieee,
};

struct MinifloatFormat {
  int exponentBits;
  int mantissaBits;
  int bias;
  Specials specials;
  /// The largest finite value: what larger magnitudes saturate to.
  double maxFinite;
};

inline constexpr MinifloatFormat kE4M3{4, 3, 7, Specials::AllOnesNaN, 448.0};
inline constexpr MinifloatFormat kE5M2{5, 2, 15, Specials::Ieee, 57344.0};
inline constexpr MinifloatFormat kE2M1{2, 1, 1, Specials::None, 6.0};
inline constexpr MinifloatFormat kF16{5, 10, 15, Specials::Ieee, 65504.0};

/// `value` rounded to nearest (ties to even) in `format`, saturated to
/// +-maxFinite; the sign bit is the sign of `value` (so -0.0 keeps it). NaN
/// becomes the format's positive quiet NaN, or 0 in a format without NaN.
uint32_t encodeMinifloat(double value, const MinifloatFormat &format);

/// The value of `code` (its bits above the format's width are ignored).
double decodeMinifloat(uint32_t code, const MinifloatFormat &format);

} // namespace kvrt::codecs

#endif // KVRT_CACHE_CODECS_MINIFLOAT_H
