//===- FuzzCheck.h - What every fuzzer asserts about errors -----*- C++ -*-===//
#ifndef KVOPT_TEST_FUZZ_FUZZCHECK_H
#define KVOPT_TEST_FUZZ_FUZZCHECK_H

#include "kvrt/Json.h"
#include "kvrt/Status.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kvopt::fuzz {

/// Aborts (a finding for libFuzzer) when `condition` is false.
inline void require(bool condition, const char *what,
                    const std::string &detail = "") {
  if (condition)
    return;
  std::fprintf(stderr, "fuzz check failed: %s %s\n", what, detail.c_str());
  std::abort();
}

/// A refusal must be one printable UTF-8 sentence that names the input, as
/// "name: ..." or, for text formats, "name:LINE:COLUMN: ...".
inline void checkRefusal(const kvrt::Status &status, const std::string &name) {
  const std::string &m = status.message();
  size_t at = name.size() + 1;
  bool located = m.rfind(name + ":", 0) == 0 && at < m.size() &&
                 std::isdigit(static_cast<unsigned char>(m[at]));
  if (located) {
    for (int number = 0; number < 2; ++number) {
      while (at < m.size() && std::isdigit(static_cast<unsigned char>(m[at])))
        ++at;
      located = located && at < m.size() && m[at] == ':';
      ++at;
    }
    located = located && at < m.size() && m[at] == ' ';
  }
  require(located || m.rfind(name + ": ", 0) == 0,
          "message does not name the input:", m);
  require(kvrt::json::isValidUtf8(m), "message is not UTF-8");
  require(m.find('\n') == std::string::npos, "message spans lines:", m);
}

} // namespace kvopt::fuzz

#endif // KVOPT_TEST_FUZZ_FUZZCHECK_H
