//===- CodecReference.h - Float64 models of the KV-cache codecs -*- C++ -*-===//
//
// Test code: what docs/kv-encodings.md specifies, written independently of
// runtime/src/cache/codecs: nearest values of small float formats by
// search, a dense float64 randomized Hadamard matrix, readers of the
// documented page layouts.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_TEST_CODECREFERENCE_H
#define KVRT_TEST_CODECREFERENCE_H

#include "runtime/schema/kvpkg.pb.h"
#include "runtime/src/cache/Codec.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace kvrt::test {

/// A small float format by its definition: sign, exponent, mantissa.
struct ReferenceFormat {
  int exponentBits, mantissaBits, bias;
  /// Which codes are not finite: none (E2M1), S.1111.111 (E4M3FN), or the
  /// top exponent as in IEEE 754 (E5M2, binary16).
  enum { AllFinite, AllOnesNaN, Ieee } specials;
};
inline constexpr ReferenceFormat kRefE4M3{4, 3, 7, ReferenceFormat::AllOnesNaN};
inline constexpr ReferenceFormat kRefE5M2{5, 2, 15, ReferenceFormat::Ieee};
inline constexpr ReferenceFormat kRefE2M1{2, 1, 1, ReferenceFormat::AllFinite};
inline constexpr ReferenceFormat kRefF16{5, 10, 15, ReferenceFormat::Ieee};
inline constexpr ReferenceFormat kRefBf16{8, 7, 127, ReferenceFormat::Ieee};

/// The format's finite non-negative values, searchable by magnitude.
class FormatValues {
public:
  explicit FormatValues(const ReferenceFormat &format);
  /// The value of a finite code (sign bit included).
  double value(uint32_t code) const;
  bool isFinite(uint32_t code) const;
  /// The code nearest to x by search, ties to the even code, beyond the
  /// largest finite value saturating to it; the sign bit is x's sign.
  uint32_t nearest(double x) const;
  uint32_t signBit() const { return signBit_; }

private:
  ReferenceFormat format_;
  uint32_t signBit_;
  /// (value, code) of the finite non-negative codes, ascending.
  std::vector<std::pair<double, uint32_t>> sorted_;
};
const FormatValues &e4m3();
const FormatValues &e5m2();
const FormatValues &e2m1();
const FormatValues &f16();
const FormatValues &bf16();

/// R = H D / sqrt(d), row-major, with D's signs drawn as the document says
/// for polar's rotation of `side` in `layer`.
std::vector<double> polarRotation(uint32_t dimension, uint64_t seed,
                                  uint32_t layer, CacheSide side);
/// QJL's d x d matrix S of `layer`, row-major, drawn as the document says
/// (float32 entries).
std::vector<double> qjlMatrix(uint32_t dimension, uint64_t seed,
                              uint32_t layer);
/// y = M x for a square row-major M; transposed: y = M^T x.
std::vector<double> multiply(const std::vector<double> &matrix,
                             const std::vector<double> &x,
                             bool transposed = false);

/// Bits [offset, offset + bits) of the LSB-first bit stream at `bytes`.
uint32_t readBits(const uint8_t *bytes, uint64_t offset, uint32_t bits);
double readF16(const uint8_t *bytes);
float readF32(const uint8_t *bytes);

/// Seeded standard normals, scaled per column by `scales` and shifted by
/// `means` when given (columns = scales.size()).
std::vector<float> randomRows(uint32_t rows, uint32_t columns, uint32_t seed,
                              const std::vector<float> &scales = {},
                              const std::vector<float> &means = {});

schema::Encoding encodingOf(schema::EncodingKind kind, uint32_t bits = 0,
                            uint32_t group = 0);
schema::Encoding fp8Encoding(schema::Fp8Format format, schema::ScaleMode mode);
schema::Encoding polarEncoding(uint32_t bits, uint64_t seed, bool qjl = false);

/// makeCodec() that the test expects to succeed.
std::unique_ptr<Codec> makeCodecOrDie(const schema::Encoding &encoding,
                                      const CodecContext &context);

} // namespace kvrt::test

#endif // KVRT_TEST_CODECREFERENCE_H
