//===- Minifloat.cpp ------------------------------------------------------===//
#include "runtime/src/cache/codecs/Minifloat.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvrt::codecs {
namespace {

/// The unsigned code nearest to `magnitude` (finite, >= 0), ties to even,
/// before saturation: it may exceed the largest finite code.
uint32_t roundMagnitude(double magnitude, const MinifloatFormat &format) {
  const int mantissaBits = format.mantissaBits;
  const int minExponent = 1 - format.bias;
  int exponent;
  std::frexp(magnitude, &exponent); // magnitude = f * 2^exponent, f in [.5, 1)
  exponent = std::max(exponent - 1, minExponent);
  // Steps of the binade's spacing; exact, since that spacing is a power of
  // two. nearbyint rounds ties to even in the default rounding mode.
  double steps =
      std::nearbyint(magnitude / std::ldexp(1.0, exponent - mantissaBits));
  uint32_t s = uint32_t(steps);
  const uint32_t implicitOne = 1u << mantissaBits;
  if (s < implicitOne) // a subnormal or zero
    return s;
  if (s == 2 * implicitOne) { // rounded up into the next binade
    ++exponent;
    s = implicitOne;
  }
  return (uint32_t(exponent + format.bias) << mantissaBits) | (s - implicitOne);
}

} // namespace

uint32_t encodeMinifloat(double value, const MinifloatFormat &format) {
  const uint32_t signBit = 1u << (format.exponentBits + format.mantissaBits);
  if (std::isnan(value)) {
    switch (format.specials) {
    case Specials::None:
      return 0;
    case Specials::AllOnesNaN:
      return signBit - 1;
    case Specials::Ieee: // exponent all ones, top mantissa bit set
      return ((1u << format.exponentBits) - 1) << format.mantissaBits |
             1u << (format.mantissaBits - 1);
    }
  }
  const uint32_t maxCode = roundMagnitude(format.maxFinite, format);
  double magnitude = std::fabs(value);
  uint32_t code = magnitude >= format.maxFinite
                      ? maxCode
                      : std::min(roundMagnitude(magnitude, format), maxCode);
  return std::signbit(value) ? code | signBit : code;
}

double decodeMinifloat(uint32_t code, const MinifloatFormat &format) {
  const int mantissaBits = format.mantissaBits;
  const uint32_t signBit = 1u << (format.exponentBits + mantissaBits);
  const uint32_t maxExponentField = (1u << format.exponentBits) - 1;
  uint32_t magnitude = code & (signBit - 1);
  uint32_t exponentField = magnitude >> mantissaBits;
  uint32_t mantissa = magnitude & ((1u << mantissaBits) - 1);
  double value;
  if (format.specials == Specials::AllOnesNaN && magnitude == signBit - 1)
    value = std::numeric_limits<double>::quiet_NaN();
  else if (format.specials == Specials::Ieee &&
           exponentField == maxExponentField)
    value = mantissa ? std::numeric_limits<double>::quiet_NaN()
                     : std::numeric_limits<double>::infinity();
  else if (exponentField == 0)
    value = std::ldexp(double(mantissa), 1 - format.bias - mantissaBits);
  else
    value = std::ldexp(double(mantissa | (1u << mantissaBits)),
                       int(exponentField) - format.bias - mantissaBits);
  return code & signBit ? -value : value;
}

} // namespace kvrt::codecs
