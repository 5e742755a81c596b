//===- Budget.h - How many cache entries an eviction keeps ------*- C++ -*-===//
//
// kv-evict's `budget=` option and the policy file's `budget:` key share one
// spelling: a fraction of the tokens a sequence has seen, in (0, 1] and
// written with a '.' or an exponent ("0.25", "1.0", "5e-1"), or a whole
// token count of at least 1 ("1024").
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_POLICY_BUDGET_H
#define KVOPT_COMPILER_POLICY_BUDGET_H

#include "kvrt/Status.h"

#include <cstdint>
#include <string_view>

namespace kvopt::policy {

/// A budget as written: a fraction or a token count.
struct Budget {
  bool isFraction = false;
  /// The fraction, when isFraction.
  double fraction = 0;
  /// The token count, otherwise: 1 to INT64_MAX.
  uint64_t tokens = 0;
};

/// Parses a budget. The error says what is allowed; the caller adds where
/// the text came from.
kvrt::StatusOr<Budget> parseBudget(std::string_view text);

/// A number parseBudget() read, as pipeline text writes it: its exponent's
/// 'E' lowercase and a '+' after it dropped (the same value), so that it
/// holds digits, '.', 'e' and '-' only, the characters of a pass option.
std::string pipelineNumber(std::string_view text);

} // namespace kvopt::policy

#endif // KVOPT_COMPILER_POLICY_BUDGET_H
