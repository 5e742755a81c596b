//===- Exp.h - Runs of float exponentials with std::exp's bits --*- C++ -*-===//
//
// The softmax and SwiGLU take one exponential per score or activation; one
// call of glibc's expf each was 12% of a prefill (perf, 3000 tokens of the
// default model). expShifted() computes them four at a time with the bits
// std::exp gives, so that no result of the CPU backend moves.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CPU_EXP_H
#define KVRT_BACKENDS_CPU_EXP_H

#include <cstdint>

namespace kvrt::cpu {

/// out[i] = std::exp(in[i] - offset) for i < n, bit for bit with glibc's
/// expf (`in` may be `out`): four lanes of AVX2 and FMA where the host has
/// them, std::exp itself elsewhere and for inputs outside expf's fast path
/// (|x| >= 88, NaN).
void expShifted(const float *in, int64_t n, float offset, float *out);

/// Whether expShifted() runs its four-lane form on this host.
bool expShiftedIsVectorised();

} // namespace kvrt::cpu

#endif // KVRT_BACKENDS_CPU_EXP_H
