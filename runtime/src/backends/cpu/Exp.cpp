//===- Exp.cpp - Runs of float exponentials with std::exp's bits ----------===//
//
// glibc's expf (since 2.27, from Arm's optimized-routines) computes e^x for
// |x| < 88 in double: k = round(x * 32 / ln 2), r = x * 32 / ln 2 - k,
// 2^(k/32) from a table of 32 entries and k's exponent bits, 2^(r/32) as a
// cubic, one rounding to float at the end. The four-lane form below makes
// the same operations in the same order as its FMA build (read off that
// build's instructions) and gives expf's bits for every one of the 2^32
// floats (checked exhaustively, 2026-12-07); with all its products unfused
// it still does, so which build a host's glibc picks does not matter.
// ExpShifted.MatchesStdExpBitForBit (KernelTest.cpp) samples the check,
// kvrt-exp-check (ExpExhaustiveCheck.cpp) repeats it whole.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Exp.h"

#include <cmath>
#include <cstring>

// The four-lane form needs AVX2 and FMA and reproduces glibc's expf.
#if defined(__x86_64__) && defined(__GLIBC__)
#define KVRT_FUSED_EXPF 1
#include <immintrin.h>
#endif

namespace kvrt::cpu {
namespace {

#ifdef KVRT_FUSED_EXPF
/// 2^(i/32) for i < 32 as double bits, less i/32 in the exponent field
/// (i << 47), which k's own bits put back.
alignas(32) constexpr uint64_t kPowersOfTwo[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f,
    0x3fef9301d0125b51, 0x3fef72b83c7d517b, 0x3fef54873168b9aa,
    0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74,
    0x3feea11473eb0187, 0x3feea589994cce13, 0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c,
    0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
constexpr double kInvLn2Times32 = 0x1.71547652b82fep+5;
/// 1.5 * 2^52: added, it rounds to an integer held in the low bits.
constexpr double kRoundingShift = 0x1.8p+52;
/// The cubic's coefficients, for r scaled by 32.
constexpr double kCubic[3] = {0x1.c6af84b912394p-20, 0x1.ebfce50fac4f3p-13,
                              0x1.62e42ff0c52d6p-6};
/// Inputs of |x| at or above 88 (as bits, sign cleared) leave the fast
/// path: overflow, underflow, infinities and NaN.
constexpr int32_t kFastPathBits = 0x42b00000;

#define KVRT_FMA_TARGET __attribute__((target("avx2,fma")))

/// e^x in four lanes as glibc's FMA build computes it, for |x| < 88.
KVRT_FMA_TARGET inline __m128 expFused4(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  const __m256d invLn2 = _mm256_set1_pd(kInvLn2Times32);
  const __m256d shift = _mm256_set1_pd(kRoundingShift);
  const __m256d shifted = _mm256_fmadd_pd(invLn2, xd, shift);
  const __m256i k = _mm256_castpd_si256(shifted);
  const __m256d r = _mm256_fmsub_pd(invLn2, xd, _mm256_sub_pd(shifted, shift));
  const __m256i entry =
      _mm256_i64gather_epi64(reinterpret_cast<const long long *>(kPowersOfTwo),
                             _mm256_and_si256(k, _mm256_set1_epi64x(31)), 8);
  const __m256d scale =
      _mm256_castsi256_pd(_mm256_add_epi64(entry, _mm256_slli_epi64(k, 47)));
  const __m256d high =
      _mm256_fmadd_pd(r, _mm256_set1_pd(kCubic[0]), _mm256_set1_pd(kCubic[1]));
  const __m256d low =
      _mm256_fmadd_pd(r, _mm256_set1_pd(kCubic[2]), _mm256_set1_pd(1.0));
  const __m256d cubic = _mm256_fmadd_pd(high, _mm256_mul_pd(r, r), low);
  return _mm256_cvtpd_ps(_mm256_mul_pd(cubic, scale));
}

KVRT_FMA_TARGET void expShiftedFused(const float *in, int64_t n, float offset,
                                     float *out) {
  const __m128 subtrahend = _mm_set1_ps(offset);
  const __m128i magnitude = _mm_set1_epi32(0x7fffffff);
  const __m128i lastFast = _mm_set1_epi32(kFastPathBits - 1);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128 x = _mm_sub_ps(_mm_loadu_ps(in + i), subtrahend);
    const __m128i outside = _mm_cmpgt_epi32(
        _mm_and_si128(_mm_castps_si128(x), magnitude), lastFast);
    float lanes[4];
    _mm_storeu_ps(lanes, expFused4(x));
    if (int slow = _mm_movemask_ps(_mm_castsi128_ps(outside))) {
      float xs[4];
      _mm_storeu_ps(xs, x);
      for (int j = 0; j < 4; ++j)
        if (slow & (1 << j))
          lanes[j] = std::exp(xs[j]);
    }
    std::memcpy(out + i, lanes, sizeof lanes);
  }
  for (; i < n; ++i)
    out[i] = std::exp(in[i] - offset);
}

/// Whether the host runs the four-lane form's instructions.
bool hostRunsFusedExpf() {
  static const bool fused =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return fused;
}
#endif

} // namespace

bool expShiftedIsVectorised() {
#ifdef KVRT_FUSED_EXPF
  return hostRunsFusedExpf();
#else
  return false;
#endif
}

void expShifted(const float *in, int64_t n, float offset, float *out) {
#ifdef KVRT_FUSED_EXPF
  if (hostRunsFusedExpf())
    return expShiftedFused(in, n, offset, out);
#endif
  for (int64_t i = 0; i < n; ++i)
    out[i] = std::exp(in[i] - offset);
}

} // namespace kvrt::cpu
