//===- StopStringsTest.cpp - Text cut at the first stop string ------------===//
#include "tools/kvopt/serve/StopStrings.h"

#include <gtest/gtest.h>

using namespace kvopt::serve;

namespace {

/// Pushes `pieces` and returns what was sent, the held text at the end
/// included unless a stop string ended it.
std::string stream(StopStringFilter &filter,
                   const std::vector<std::string> &pieces) {
  std::string sent;
  for (const std::string &piece : pieces)
    sent += filter.push(piece);
  return sent + filter.finish();
}

TEST(StopStrings, CutsBeforeAStopStringSplitAcrossPieces) {
  StopStringFilter filter({"\n\n"});
  EXPECT_EQ(filter.push("one\n"), "one");
  EXPECT_FALSE(filter.stopped());
  EXPECT_EQ(filter.push("\ntwo"), "");
  EXPECT_TRUE(filter.stopped());
  EXPECT_EQ(filter.push("three"), "");
  EXPECT_EQ(filter.finish(), "");
}

TEST(StopStrings, HoldsBackOnlyWhatCouldBeginAStopString) {
  StopStringFilter filter({"END", "xyz"});
  EXPECT_EQ(filter.push("abcE"), "abc");
  EXPECT_EQ(filter.push("N"), "");
  EXPECT_EQ(filter.push("q"), "ENq");
  EXPECT_EQ(filter.push("axy"), "a");
  EXPECT_FALSE(filter.stopped());
  EXPECT_EQ(filter.finish(), "xy");
}

TEST(StopStrings, TheEarliestStopStringWins) {
  StopStringFilter filter({"cd", "b"});
  EXPECT_EQ(stream(filter, {"abcd"}), "a");
  EXPECT_TRUE(filter.stopped());
}

TEST(StopStrings, PassesTextThroughWithoutStopStrings) {
  StopStringFilter filter({});
  EXPECT_EQ(filter.push("all of it"), "all of it");
  EXPECT_EQ(filter.finish(), "");
}

TEST(StopStrings, GivesBackHeldTextWhenGenerationEnds) {
  StopStringFilter filter({"###"});
  EXPECT_EQ(stream(filter, {"a#", "#"}), "a##");
  EXPECT_FALSE(filter.stopped());
}

TEST(StopStrings, FindsAStopStringInsideOnePiece) {
  for (size_t split = 0; split <= 9; ++split) {
    StopStringFilter filter({"<|end|>"});
    std::string text = "hi<|end|>bye";
    EXPECT_EQ(stream(filter, {text.substr(0, split), text.substr(split)}), "hi")
        << split;
  }
}

} // namespace
