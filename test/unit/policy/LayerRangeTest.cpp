//===- LayerRangeTest.cpp - "N", "-N" and "A-B" layer ranges --------------===//
#include "compiler/policy/LayerRange.h"

#include <gtest/gtest.h>

using kvopt::policy::LayerRange;
using kvopt::policy::parseLayerRange;
using kvopt::policy::resolveLayerRange;

namespace {

/// first and last, inclusive.
using Span = std::pair<int64_t, int64_t>;

Span parsed(std::string_view text) {
  kvrt::StatusOr<LayerRange> range = parseLayerRange(text);
  EXPECT_TRUE(range) << text << ": " << range.status().message();
  return range ? Span(range->first, range->last) : Span(-99, -99);
}

std::string parseError(std::string_view text) {
  kvrt::StatusOr<LayerRange> range = parseLayerRange(text);
  EXPECT_FALSE(range) << text;
  return range ? "" : range.status().message();
}

Span resolved(std::string_view text, int64_t layers) {
  kvrt::StatusOr<LayerRange> range =
      resolveLayerRange(*parseLayerRange(text), layers);
  EXPECT_TRUE(range) << text << ": " << range.status().message();
  return range ? Span(range->first, range->last) : Span(-99, -99);
}

std::string resolveError(std::string_view text, int64_t layers) {
  kvrt::StatusOr<LayerRange> range =
      resolveLayerRange(*parseLayerRange(text), layers);
  EXPECT_FALSE(range) << text;
  return range ? "" : range.status().message();
}

TEST(LayerRange, ParsesIndicesAndRanges) {
  EXPECT_EQ(parsed("0"), Span(0, 0));
  EXPECT_EQ(parsed("-1"), Span(-1, -1));
  EXPECT_EQ(parsed("4-11"), Span(4, 11));
  EXPECT_EQ(parsed("-4--1"), Span(-4, -1));
  EXPECT_EQ(parsed("2--1"), Span(2, -1));
  EXPECT_EQ(parsed("1048576"), Span(1048576, 1048576));
}

TEST(LayerRange, RefusesOtherText) {
  for (std::string_view text :
       {"", "-", "1-", "-1-", "a", "1:3", "+1", "1-2-3", "--1", "1 - 2", " 1",
        "1048577", "99999999999999999999999", "0x10", "1.0"})
    EXPECT_NE(parseError(text).find("is not a layer range: write N, -N"),
              std::string::npos)
        << text;
  EXPECT_EQ(parseError("3-1"),
            "layer range 3-1 runs backwards; write the lower index first");
  EXPECT_EQ(parseError("-1--3"),
            "layer range -1--3 runs backwards; write the lower index first");
}

TEST(LayerRange, ResolvesAgainstTheLayerCount) {
  EXPECT_EQ(resolved("-1", 12), Span(11, 11));
  EXPECT_EQ(resolved("2--1", 12), Span(2, 11));
  EXPECT_EQ(resolved("-12-0", 12), Span(0, 0));
  EXPECT_EQ(resolved("0-11", 12), Span(0, 11));
}

TEST(LayerRange, RefusesLayersTheModelLacks) {
  EXPECT_EQ(resolveError("12", 12), "layer 12 does not exist in a model of 12 "
                                    "layers (0 to 11, or -12 to -1)");
  EXPECT_EQ(resolveError("0--13", 12), "layer -13 does not exist in a model "
                                       "of 12 layers (0 to 11, or -12 to -1)");
  EXPECT_EQ(resolveError("0", 0),
            "layer 0 does not exist in a model without layers");
  EXPECT_EQ(resolveError("10--4", 12),
            "layer range 10--4 runs backwards in a model of 12 layers (it is "
            "10-8)");
}

} // namespace
