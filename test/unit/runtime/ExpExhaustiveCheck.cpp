//===- ExpExhaustiveCheck.cpp - expShifted() against std::exp, every float ===//
//
// ExpShifted.MatchesStdExpBitForBit samples every 251st float; this runs
// all 2^32 of them (about 40 s on one core), for a new host or C library:
//   build/test/unit/runtime/kvrt-exp-check
// It prints the first mismatches and exits non-zero if there is one.
//
//===----------------------------------------------------------------------===//
#include "runtime/src/backends/cpu/Exp.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

int main() {
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<float> in(kChunk), out(kChunk);
  uint64_t mismatches = 0;
  for (uint64_t first = 0; first < (uint64_t(1) << 32); first += kChunk) {
    for (uint64_t i = 0; i < kChunk; ++i) {
      const uint32_t bits = uint32_t(first + i);
      std::memcpy(&in[i], &bits, sizeof bits);
    }
    kvrt::cpu::expShifted(in.data(), int64_t(kChunk), 0.0f, out.data());
    for (uint64_t i = 0; i < kChunk; ++i) {
      const float expected = std::exp(in[i]);
      if (std::memcmp(&expected, &out[i], sizeof expected) == 0)
        continue;
      if (mismatches++ < 10)
        std::printf("e^%a: %a, std::exp gives %a\n", double(in[i]),
                    double(out[i]), double(expected));
    }
  }
  std::printf("%s form: %llu of 2^32 floats differ from std::exp\n",
              kvrt::cpu::expShiftedIsVectorised() ? "four-lane" : "scalar",
              static_cast<unsigned long long>(mismatches));
  return mismatches ? 1 : 0;
}
