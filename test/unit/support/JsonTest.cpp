//===- JsonTest.cpp - The bounded JSON reader -----------------------------===//
#include "kvrt/Json.h"

#include <gtest/gtest.h>

using kvrt::json::parse;
using kvrt::json::Value;

namespace {

std::string errorOf(std::string_view text) {
  auto v = parse(text, "x.json");
  EXPECT_FALSE(v.isOk()) << "accepted: " << text;
  return v.isOk() ? "" : v.status().message();
}

TEST(Json, ParsesNestedDocument) {
  auto v = parse(R"({"a": [1, -2.5e3, true, null, "h\u00e9\ud83d\ude00"],
                     "b": {"c": 9007199254740993}})",
                 "x.json");
  ASSERT_TRUE(v.isOk()) << v.status().message();
  const Value *a = v->find("a");
  ASSERT_TRUE(a && a->isArray());
  ASSERT_EQ(a->items().size(), 5u);
  EXPECT_EQ(*a->items()[0].asInt(), 1);
  EXPECT_EQ(a->items()[1].asDouble(), -2500.0);
  EXPECT_FALSE(a->items()[1].asInt().has_value());
  EXPECT_TRUE(a->items()[2].asBool());
  EXPECT_TRUE(a->items()[3].isNull());
  EXPECT_EQ(a->items()[4].asString(), "h\xC3\xA9\xF0\x9F\x98\x80");
  // Integers keep full 64-bit precision, beyond what a double holds.
  EXPECT_EQ(*v->find("b")->find("c")->asInt(), 9007199254740993LL);
  EXPECT_EQ(v->find("missing"), nullptr);
}

TEST(Json, KeepsMemberOrder) {
  auto v = parse(R"({"z": 1, "a": 2, "m": 3})", "x.json");
  ASSERT_TRUE(v.isOk());
  ASSERT_EQ(v->members().size(), 3u);
  EXPECT_EQ(v->members()[0].first, "z");
  EXPECT_EQ(v->members()[2].first, "m");
}

TEST(Json, RejectsDuplicateKeys) {
  EXPECT_NE(errorOf(R"({"a": 1, "a": 2})").find("duplicate key \"a\""),
            std::string::npos);
}

TEST(Json, RejectsDeepNesting) {
  std::string deep(kvrt::json::kMaxDepth + 1, '[');
  deep += std::string(kvrt::json::kMaxDepth + 1, ']');
  EXPECT_NE(errorOf(deep).find("nesting deeper than"), std::string::npos);
  std::string ok(kvrt::json::kMaxDepth, '[');
  ok += std::string(kvrt::json::kMaxDepth, ']');
  EXPECT_TRUE(parse(ok, "x.json").isOk());
}

TEST(Json, RejectsInvalidUtf8) {
  EXPECT_NE(errorOf("{\"\xFF\": 1}").find("not valid UTF-8"),
            std::string::npos);
  // An overlong encoding of '/' and an encoded surrogate.
  EXPECT_FALSE(parse("\"\xC0\xAF\"", "x.json").isOk());
  EXPECT_FALSE(parse("\"\xED\xA0\x80\"", "x.json").isOk());
}

TEST(Json, RejectsBadEscapesAndSurrogates) {
  EXPECT_NE(errorOf(R"("\q")").find("unknown escape"), std::string::npos);
  EXPECT_NE(errorOf(R"("\ud800x")").find("unpaired"), std::string::npos);
  EXPECT_NE(errorOf(R"("\udc00")").find("unpaired"), std::string::npos);
  EXPECT_NE(errorOf(R"("\u12")").find("\\u escape"), std::string::npos);
}

TEST(Json, RejectsMalformedDocuments) {
  for (std::string_view bad :
       {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "{} x",
        "[1 2]", "\"a\nb\"", "{1: 2}"})
    EXPECT_FALSE(parse(bad, "x.json").isOk()) << bad;
}

TEST(Json, ErrorNamesSourceAndOffset) {
  std::string message = errorOf("{\"a\": [1, 2,, 3]}");
  EXPECT_EQ(message.rfind("x.json: invalid JSON at byte 12", 0), 0u) << message;
}

TEST(Json, HugeIntegersAreNotExact) {
  auto v = parse("123456789012345678901234567890", "x.json");
  ASSERT_TRUE(v.isOk());
  EXPECT_FALSE(v->asInt().has_value());
  EXPECT_GT(v->asDouble(), 1e29);
}

} // namespace
