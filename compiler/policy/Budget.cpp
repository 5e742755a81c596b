//===- Budget.cpp - How many cache entries an eviction keeps --------------===//
#include "compiler/policy/Budget.h"

#include "compiler/import/formats/Quote.h"

#include <charconv>
#include <cmath>
#include <string>

namespace kvopt::policy {

namespace {
bool isDigit(char c) { return c >= '0' && c <= '9'; }

/// Whether `text` is decimal digits with an optional '.' and exponent, at
/// least one digit before the exponent: what from_chars may read whole.
bool isDecimal(std::string_view text) {
  size_t i = 0, digits = 0;
  for (; i < text.size() && isDigit(text[i]); ++i)
    ++digits;
  if (i < text.size() && text[i] == '.')
    for (++i; i < text.size() && isDigit(text[i]); ++i)
      ++digits;
  if (digits == 0)
    return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-'))
      ++i;
    size_t exponent = i;
    for (; i < text.size() && isDigit(text[i]); ++i)
      ;
    if (i == exponent)
      return false;
  }
  return i == text.size();
}
} // namespace

kvrt::StatusOr<Budget> parseBudget(std::string_view text) {
  if (!isDecimal(text))
    return kvrt::Status::error(
        formats::quote(text) +
        " is not a budget: write a fraction in (0, 1] of the tokens seen, "
        "with a '.' (0.25), or a whole token count (1024)");
  Budget budget;
  if (text.find_first_of(".eE") != std::string_view::npos) {
    double value = 0;
    auto [end, error] =
        std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() ||
        !std::isfinite(value) || !(value > 0 && value <= 1))
      return kvrt::Status::error(
          formats::quote(text) +
          " is a fraction (it has a '.' or an exponent) outside (0, 1]; a "
          "token count is written as a whole number (1024)");
    budget.isFraction = true;
    budget.fraction = value;
    return budget;
  }
  uint64_t count = 0;
  for (char c : text) {
    if (count > (uint64_t(INT64_MAX) - (c - '0')) / 10)
      return kvrt::Status::error(formats::quote(text) +
                                 " tokens is more than a budget can hold (" +
                                 std::to_string(INT64_MAX) + ")");
    count = count * 10 + (c - '0');
  }
  if (count == 0)
    return kvrt::Status::error("a budget of 0 tokens keeps nothing: a token "
                               "count must be at least 1");
  budget.tokens = count;
  return budget;
}

std::string pipelineNumber(std::string_view text) {
  std::string out;
  for (char c : text)
    if (c != '+')
      out += c == 'E' ? 'e' : c;
  return out;
}

} // namespace kvopt::policy
