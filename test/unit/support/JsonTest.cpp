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

TEST(Json, RejectsTrailingData) {
  EXPECT_NE(errorOf("{} {}").find("unexpected data after the top-level value"),
            std::string::npos);
  EXPECT_NE(errorOf("1 2").find("byte 2"), std::string::npos);
  // Whitespace around the document is fine.
  EXPECT_TRUE(parse(" \t\r\n[] \n", "x.json").isOk());
}

TEST(Json, DecodesSurrogatePairs) {
  auto v = parse(R"("\ud834\udd1e\u0041\u00e9\u20ac")", "x.json");
  ASSERT_TRUE(v.isOk()) << v.status().message();
  EXPECT_EQ(v->asString(), "\xF0\x9D\x84\x9E"
                           "A"
                           "\xC3\xA9"
                           "\xE2\x82\xAC");
  // A high surrogate followed by another high surrogate, or by nothing.
  EXPECT_NE(errorOf(R"("\ud800\ud800")").find("unpaired"), std::string::npos);
  EXPECT_NE(errorOf(R"("\ud800")").find("unpaired"), std::string::npos);
}

TEST(Json, IntegerLimits) {
  auto v = parse("[9223372036854775807, -9223372036854775808, "
                 "9223372036854775808, -0, 1e2, 2.0]",
                 "x.json");
  ASSERT_TRUE(v.isOk()) << v.status().message();
  const auto &items = v->items();
  EXPECT_EQ(*items[0].asInt(), INT64_MAX);
  EXPECT_EQ(*items[1].asInt(), INT64_MIN);
  EXPECT_FALSE(items[2].asInt().has_value());
  EXPECT_EQ(*items[3].asInt(), 0);
  // Written with an exponent or a fraction: not an exact integer.
  EXPECT_FALSE(items[4].asInt().has_value());
  EXPECT_EQ(items[4].asDouble(), 100.0);
  EXPECT_FALSE(items[5].asInt().has_value());
}

TEST(Json, ErrorMessagesStayPrintable) {
  // A stray byte is described, not copied into the message.
  std::string message = errorOf("[\xFF]");
  EXPECT_NE(message.find("unexpected byte 0xff"), std::string::npos) << message;
  EXPECT_TRUE(kvrt::json::isValidUtf8(message));
  message = errorOf("\"\\\x01\"");
  EXPECT_NE(message.find("byte 0x01"), std::string::npos) << message;
}

TEST(Json, KeysInMessagesStayOnOneLine) {
  std::string message = errorOf("{\"a\\nb\": 1, \"a\\nb\": 2}");
  EXPECT_NE(message.find("duplicate key \"a\\u000ab\""), std::string::npos)
      << message;
  std::string longKey(500, 'k');
  message = errorOf("{\"" + longKey + "\" 1}");
  EXPECT_NE(message.find("expected ':' after key \"kkk"), std::string::npos);
  EXPECT_NE(message.find("...\""), std::string::npos) << message;
  EXPECT_LT(message.size(), 200u);
}

TEST(Json, ValidatesUtf8Boundaries) {
  using kvrt::json::isValidUtf8;
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF"));
  EXPECT_TRUE(isValidUtf8("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF")); // U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xF4\x90\x80\x80"));                // > U+10FFFF
  EXPECT_FALSE(isValidUtf8("\x80")); // Lone continuation byte.
  EXPECT_FALSE(isValidUtf8("\xC3")); // Truncated sequence.
  EXPECT_FALSE(isValidUtf8("\xE2\x82"));
  EXPECT_FALSE(isValidUtf8("\xE0\x80\x80"));         // Overlong.
  EXPECT_FALSE(isValidUtf8("\xF8\x88\x80\x80\x80")); // 5-byte form.
  EXPECT_FALSE(isValidUtf8(std::string_view("\xC3\0", 2)));
}

TEST(Json, FindsMembersAndKinds) {
  auto v = parse(R"({"s": "x", "n": null, "o": {}})", "x.json");
  ASSERT_TRUE(v.isOk());
  EXPECT_TRUE(v->find("n")->isNull());
  EXPECT_TRUE(v->find("o")->isObject());
  EXPECT_EQ(v->find("s")->find("anything"), nullptr);
  EXPECT_STREQ(Value::kindName(Value::Kind::Array), "array");
}

} // namespace
