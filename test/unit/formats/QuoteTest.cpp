//===- QuoteTest.cpp - Names from a file in messages ----------------------===//
#include "compiler/import/formats/Quote.h"

#include <gtest/gtest.h>

using kvopt::formats::quote;

namespace {

TEST(Quote, KeepsPrintableUtf8) {
  EXPECT_EQ(quote("blk.0.attn_q.weight"), "'blk.0.attn_q.weight'");
  EXPECT_EQ(quote(""), "''");
  EXPECT_EQ(quote("\xC4\xA0t\xC3\xA9"), "'\xC4\xA0t\xC3\xA9'");
}

TEST(Quote, EscapesControlAndBrokenBytes) {
  EXPECT_EQ(quote("a\nb"), "'a\\x0ab'");
  EXPECT_EQ(quote(std::string_view("a\0b", 3)), "'a\\x00b'");
  EXPECT_EQ(quote("\x1b[31m"), "'\\x1b[31m'");
  EXPECT_EQ(quote("\xFF\xC3"), "'\\xff\\xc3'");
  EXPECT_EQ(quote("\xE2\x82"), "'\\xe2\\x82'");
}

TEST(Quote, CutsLongNames) {
  std::string q = quote(std::string(10000, 'x'));
  EXPECT_LT(q.size(), 160u);
  EXPECT_NE(q.find("...' (10000 bytes)"), std::string::npos) << q;
}

} // namespace
