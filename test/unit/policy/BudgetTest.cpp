//===- BudgetTest.cpp - "0.25" and "1024" eviction budgets
//-----------------===//
#include "compiler/policy/Budget.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

using kvopt::policy::Budget;
using kvopt::policy::parseBudget;

namespace {

double fraction(std::string_view text) {
  kvrt::StatusOr<Budget> budget = parseBudget(text);
  EXPECT_TRUE(budget && budget->isFraction)
      << text << ": " << (budget ? "a count" : budget.status().message());
  return budget && budget->isFraction ? budget->fraction : -1;
}

uint64_t tokens(std::string_view text) {
  kvrt::StatusOr<Budget> budget = parseBudget(text);
  EXPECT_TRUE(budget && !budget->isFraction)
      << text << ": " << (budget ? "a fraction" : budget.status().message());
  return budget && !budget->isFraction ? budget->tokens : 0;
}

std::string error(std::string_view text) {
  kvrt::StatusOr<Budget> budget = parseBudget(text);
  EXPECT_FALSE(budget) << text;
  return budget ? "" : budget.status().message();
}

TEST(Budget, AFractionHasADotOrAnExponent) {
  EXPECT_EQ(fraction("0.25"), 0.25);
  EXPECT_EQ(fraction(".5"), 0.5);
  EXPECT_EQ(fraction("1."), 1.0);
  EXPECT_EQ(fraction("1.0"), 1.0);
  EXPECT_EQ(fraction("1e-1"), 0.1);
  EXPECT_EQ(fraction("25E-2"), 0.25);
  EXPECT_EQ(fraction("1e0"), 1.0);
  EXPECT_EQ(fraction("0.5e+0"), 0.5);
}

TEST(Budget, ACountIsAWholeNumber) {
  EXPECT_EQ(tokens("1"), 1u);
  EXPECT_EQ(tokens("1024"), 1024u);
  EXPECT_EQ(tokens("0001"), 1u);
  EXPECT_EQ(tokens("9223372036854775807"), uint64_t(INT64_MAX));
}

TEST(Budget, RefusesWhatIsNeither) {
  std::string notABudget = " is not a budget: write a fraction in (0, 1] of "
                           "the tokens seen, with a '.' (0.25), or a whole "
                           "token count (1024)";
  for (std::string_view text :
       {"", ".", "e5", "1e", "1e+", "-1", "+1", "0x10", "inf", "nan", "1/4",
        "25%", " 1", "1 ", "1,5", "1.2.3"})
    EXPECT_EQ(error(text), "'" + std::string(text) + "'" + notABudget);
  std::string outside = " is a fraction (it has a '.' or an exponent) outside "
                        "(0, 1]; a token count is written as a whole number "
                        "(1024)";
  for (std::string_view text : {"0.0", "0e0", "1.5", "1e3", "1e400", "1e-400"})
    EXPECT_EQ(error(text), "'" + std::string(text) + "'" + outside);
  EXPECT_EQ(error("0"), "a budget of 0 tokens keeps nothing: a token count "
                        "must be at least 1");
  EXPECT_EQ(error("9223372036854775808"),
            "'9223372036854775808' tokens is more than a budget can hold "
            "(9223372036854775807)");
}

} // namespace
