//===- StatisticsJsonTest.cpp - The calibration file, read and written ----===//
#include "compiler/calibrate/StatisticsJson.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>

using kvopt::calibrate::LayerStatistics;
using kvopt::calibrate::Statistics;
using kvopt::calibrate::statisticsFromJson;
using kvopt::calibrate::statisticsToJson;

namespace {

Statistics sample() {
  Statistics s;
  s.source = {"pride \"and\"\tprejudice.txt", 0xfedcba9876543210ull, 4096,
              1024};
  s.kvHeads = 3;
  s.headDim = 64;
  // Values whose shortest decimal forms differ from their f32 values, and
  // the extremes of the range.
  s.layers.push_back({{0.1f, 1.0f / 3.0f, FLT_MAX}, {0.0f, FLT_MIN, 7e-45f}});
  s.layers.push_back({{448.0f, 16.4144211f, 1e-30f}, {3.0f, 2.5f, 1e30f}});
  return s;
}

/// The sample with pre-RoPE statistics of 6 query heads: values of both
/// signs, with decimal forms that differ from their f32 values.
Statistics withPreRope() {
  Statistics s = sample();
  s.heads = 6;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    LayerStatistics &layer = s.layers[l];
    auto fill = [&](std::vector<float> &out, size_t n, bool sign) {
      for (size_t i = 0; i < n; ++i)
        out.push_back((sign && i % 3 == 0 ? -1.0f : 1.0f) *
                      float(i + 7 * l + 1) / 3.0f);
    };
    fill(layer.queryCenter, 6 * 32 * 2, true);
    fill(layer.queryMagnitude, 6 * 32, false);
    fill(layer.keyCenter, 3 * 32 * 2, true);
    fill(layer.keyMagnitude, 3 * 32, false);
  }
  return s;
}

std::string error(const std::string &text) {
  kvrt::StatusOr<Statistics> stats = statisticsFromJson(text, "stats.json");
  EXPECT_FALSE(stats) << text;
  return stats ? "" : stats.status().message();
}

/// `text` with `from` replaced by `to` (once).
std::string replacedOnce(std::string text, const std::string &from,
                         const std::string &to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

/// The sample's document with `from` replaced by `to` (once).
std::string edited(const std::string &from, const std::string &to) {
  std::string text = statisticsToJson(sample());
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(StatisticsJson, RoundTripsEveryBit) {
  Statistics s = sample();
  kvrt::StatusOr<Statistics> read =
      statisticsFromJson(statisticsToJson(s), "stats.json");
  ASSERT_TRUE(read) << read.status().message();
  EXPECT_EQ(read->source.file, s.source.file);
  EXPECT_EQ(read->source.xxh64, s.source.xxh64);
  EXPECT_EQ(read->source.tokens, s.source.tokens);
  EXPECT_EQ(read->source.window, s.source.window);
  EXPECT_EQ(read->kvHeads, s.kvHeads);
  EXPECT_EQ(read->headDim, s.headDim);
  ASSERT_EQ(read->layers.size(), s.layers.size());
  for (size_t i = 0; i < s.layers.size(); ++i) {
    EXPECT_TRUE(sameBits(read->layers[i].keyAbsMax, s.layers[i].keyAbsMax));
    EXPECT_TRUE(sameBits(read->layers[i].valueAbsMax, s.layers[i].valueAbsMax));
  }
}

TEST(StatisticsJson, RoundTripsPreRopeStatistics) {
  Statistics s = withPreRope();
  std::string text = statisticsToJson(s);
  EXPECT_NE(text.find("\"heads\": 6"), std::string::npos);
  EXPECT_NE(text.find("\"query_center\": [[[-0.333333343, 0.666666687], "
                      "[1, -1.33333337]"),
            std::string::npos)
      << text.substr(0, 600);
  kvrt::StatusOr<Statistics> read = statisticsFromJson(text, "stats.json");
  ASSERT_TRUE(read) << read.status().message();
  EXPECT_EQ(read->heads, 6);
  for (size_t i = 0; i < s.layers.size(); ++i) {
    EXPECT_TRUE(sameBits(read->layers[i].queryCenter, s.layers[i].queryCenter));
    EXPECT_TRUE(
        sameBits(read->layers[i].queryMagnitude, s.layers[i].queryMagnitude));
    EXPECT_TRUE(sameBits(read->layers[i].keyCenter, s.layers[i].keyCenter));
    EXPECT_TRUE(
        sameBits(read->layers[i].keyMagnitude, s.layers[i].keyMagnitude));
  }
  // A file without model.heads (an older kvopt's) has none, and its
  // layers need none.
  kvrt::StatusOr<Statistics> old =
      statisticsFromJson(statisticsToJson(sample()), "stats.json");
  ASSERT_TRUE(old) << old.status().message();
  EXPECT_EQ(old->heads, 0);
  EXPECT_TRUE(old->layers[0].queryCenter.empty());
}

/// The pre-RoPE sample's document with `from` replaced by `to` (once).
std::string editedPreRope(const std::string &from, const std::string &to) {
  std::string text = statisticsToJson(withPreRope());
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(StatisticsJson, NamesThePreRopeFieldAtFault) {
  EXPECT_EQ(error(editedPreRope("\"heads\": 6", "\"heads\": 4")),
            "stats.json: model.heads must be a multiple of model.kv_heads");
  EXPECT_EQ(error(editedPreRope("\"heads\": 6", "\"heads\": 3")),
            "stats.json: layers[0].query_center has 6 heads; model.heads "
            "says 3");
  EXPECT_EQ(error(editedPreRope("\"key_magnitude\"", "\"key_magnitudes\"")),
            "stats.json: layers[0].key_magnitude is missing");
  EXPECT_EQ(error(editedPreRope("\"query_center\": [[[-0.333333343, "
                                "0.666666687], ",
                                "\"query_center\": [[")),
            "stats.json: layers[0].query_center[0] must be an array of 32 "
            "entries, one per RoPE frequency pair");
  EXPECT_EQ(
      error(editedPreRope("[[[-0.333333343, 0.666666687]", "[[[-0.333333343]")),
      "stats.json: layers[0].query_center[0][0] must be a [real, "
      "imaginary] pair of numbers");
  EXPECT_EQ(error(editedPreRope("[[[-0.333333343, 0.666666687]",
                                "[[[-0.333333343, 1e39]")),
            "stats.json: layers[0].query_center[0][0][1] must be a finite "
            "f32");
  EXPECT_EQ(error(editedPreRope("\"query_magnitude\": [[0.333333343",
                                "\"query_magnitude\": [[-0.333333343")),
            "stats.json: layers[0].query_magnitude[0][0] must be a finite, "
            "non-negative f32");
  EXPECT_EQ(
      error(editedPreRope("\"key_center\": [[[", "\"key_center\": [[[0, ")),
      "stats.json: layers[0].key_center[0][0] must be a [real, "
      "imaginary] pair of numbers");
}

/// The sample (3 KV heads of 64) with key and value moments of both signs
/// whose decimal forms need all seventeen digits.
Statistics withMoments() {
  Statistics s = sample();
  for (size_t l = 0; l < s.layers.size(); ++l) {
    LayerStatistics &layer = s.layers[l];
    for (size_t i = 0; i < 3 * 64; ++i) {
      layer.keyMean.push_back((i % 2 ? -1.0 : 1.0) * double(i + l) / 7.0);
      layer.valueMean.push_back(double(i + 1) / 3.0);
    }
    for (size_t h = 0; h < 3; ++h)
      for (size_t i = 0; i < 64; ++i)
        for (size_t j = 0; j < 64; ++j) {
          double c = i == j ? 1.0 + double(i + h + l) / 11.0
                            : 0.1 / double(1 + i + j) * (h % 2 ? -1 : 1);
          layer.keyCovariance.push_back(c);
          layer.valueCovariance.push_back(c / 3.0);
        }
  }
  return s;
}

/// The moments sample with an attention-weighted value moment in every
/// layer, recorded outside 4 sinks and a window of 64.
Statistics withAttentionMoment() {
  Statistics s = withMoments();
  s.attentionSinks = 4;
  s.attentionWindow = 64;
  for (LayerStatistics &layer : s.layers)
    for (double c : layer.valueCovariance)
      layer.valueAttentionMoment.push_back(c / 7.0);
  return s;
}

TEST(StatisticsJson, RoundTripsMomentsToTheBit) {
  Statistics s = withAttentionMoment();
  std::string text = statisticsToJson(s);
  // The covariance is written as its upper triangle: 64 * 65 / 2 numbers.
  EXPECT_NE(text.find("\"key_covariance\": [[1, 0.050000000000000003, "),
            std::string::npos);
  EXPECT_NE(text.find("\"attention_sinks\": 4, \"attention_window\": 64}"),
            std::string::npos);
  kvrt::StatusOr<Statistics> read = statisticsFromJson(text, "stats.json");
  ASSERT_TRUE(read) << read.status().message();
  ASSERT_TRUE(read->hasMoments());
  ASSERT_TRUE(read->hasAttentionMoment());
  EXPECT_EQ(read->attentionSinks, 4);
  EXPECT_EQ(read->attentionWindow, 64);
  for (size_t i = 0; i < s.layers.size(); ++i) {
    EXPECT_EQ(read->layers[i].keyMean, s.layers[i].keyMean);
    EXPECT_EQ(read->layers[i].keyCovariance, s.layers[i].keyCovariance);
    EXPECT_EQ(read->layers[i].valueMean, s.layers[i].valueMean);
    EXPECT_EQ(read->layers[i].valueCovariance, s.layers[i].valueCovariance);
    EXPECT_EQ(read->layers[i].valueAttentionMoment,
              s.layers[i].valueAttentionMoment);
  }
  // Files without them (older kvopts') read, without them.
  kvrt::StatusOr<Statistics> old =
      statisticsFromJson(statisticsToJson(sample()), "stats.json");
  ASSERT_TRUE(old) << old.status().message();
  EXPECT_FALSE(old->hasMoments());
  kvrt::StatusOr<Statistics> older =
      statisticsFromJson(statisticsToJson(withMoments()), "stats.json");
  ASSERT_TRUE(older) << older.status().message();
  EXPECT_TRUE(older->hasMoments());
  EXPECT_FALSE(older->hasAttentionMoment());
  EXPECT_EQ(older->attentionWindow, 0);
}

/// The moments sample's document with `from` replaced by `to` (once).
std::string editedMoments(const std::string &from, const std::string &to) {
  std::string text = statisticsToJson(withMoments());
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

/// The document of `with` whose layer 0 is that of `without` (layer 1
/// starts with the key absmax 448 in both).
std::string layer0Without(const Statistics &with, const Statistics &without) {
  std::string text = statisticsToJson(with);
  std::string first = statisticsToJson(without);
  size_t second = text.find("{\"key_absmax\": [448");
  size_t cut = first.find("{\"key_absmax\": [448");
  EXPECT_NE(second, std::string::npos);
  EXPECT_NE(cut, std::string::npos);
  return first.substr(0, cut) + text.substr(second);
}

TEST(StatisticsJson, NamesTheMomentFieldAtFault) {
  EXPECT_EQ(error(editedMoments("\"value_covariance\"", "\"value_cov\"")),
            "stats.json: layers[0].value_covariance is missing");
  EXPECT_EQ(error(editedMoments("\"key_covariance\": [[1, ",
                                "\"key_covariance\": [[")),
            "stats.json: layers[0].key_covariance must hold, per KV head, an "
            "array of 2080 numbers (the upper triangle of a model.head_dim "
            "square matrix)");
  EXPECT_EQ(error(editedMoments("\"key_mean\": [[0, ", "\"key_mean\": [[")),
            "stats.json: layers[0].key_mean must hold, per KV head, an array "
            "of 64 numbers (model.head_dim)");
  EXPECT_EQ(error(editedMoments("\"key_covariance\": [[1, ",
                                "\"key_covariance\": [[-1, ")),
            "stats.json: layers[0].key_covariance[0][0] must be a finite, "
            "non-negative number (a variance)");
  EXPECT_EQ(error(editedMoments("\"key_covariance\": [[1, 0.05",
                                "\"key_covariance\": [[1, 1e999")),
            "stats.json: layers[0].key_covariance[0][1] must be a finite "
            "number");
  EXPECT_EQ(
      error(editedMoments("\"key_mean\": [[0, ", "\"key_mean\": [[0], [0, ")),
      "stats.json: layers[0].key_mean has 4 heads; model.kv_heads says "
      "3");
  // In every layer or in none.
  EXPECT_EQ(error(layer0Without(withMoments(), sample())),
            "stats.json: layers[1].key_covariance is present but layers[0] "
            "has none; the covariances must be in every layer or in none");
}

TEST(StatisticsJson, NamesTheAttentionMomentFieldAtFault) {
  std::string text = statisticsToJson(withAttentionMoment());
  auto edited = [&](const std::string &from, const std::string &to) {
    std::string copy = text;
    size_t at = copy.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? copy : copy.replace(at, from.size(), to);
  };
  EXPECT_EQ(error(edited("\"attention_window\"", "\"window_attention\"")),
            "stats.json: source.attention_window is missing");
  EXPECT_EQ(error(edited("\"value_attention_moment\": [[",
                         "\"value_attention_moment\": [[-")),
            "stats.json: layers[0].value_attention_moment[0][0] must be a "
            "finite, non-negative number (a variance)");
  // In every layer or in none.
  EXPECT_EQ(error(layer0Without(withAttentionMoment(), withMoments())),
            "stats.json: layers[1].value_attention_moment is present but "
            "layers[0] has none; it must be in every layer or in none");
}

TEST(StatisticsJson, RoundTripsAndChecksTheEvictionLoss) {
  Statistics s = sample();
  s.layers[0].evictLoss = {0.75f, 1.0f / 3.0f, 0.1f, 0.0f};
  s.layers[1].evictLoss = {0.2f, 0.2f, 7e-45f, 0.0f};
  std::string text = statisticsToJson(s);
  kvrt::StatusOr<Statistics> read = statisticsFromJson(text, "stats.json");
  ASSERT_TRUE(read) << read.status().message();
  for (size_t i = 0; i < s.layers.size(); ++i)
    EXPECT_TRUE(sameBits(read->layers[i].evictLoss, s.layers[i].evictLoss));
  auto edited = [&](const std::string &from, const std::string &to) {
    return replacedOnce(text, from, to);
  };
  EXPECT_EQ(error(edited("\"evict_loss\": [0.75, 0.333333343",
                         "\"evict_loss\": [0.75, 0.8")),
            "stats.json: layers[0].evict_loss[1] must be in [0, 1] and not "
            "above the value before it");
  EXPECT_EQ(error(edited(
                "\"evict_loss\": [0.200000003, 0.200000003, 7.00649232e-45, 0]",
                "\"evict_loss\": [0.2, 0]")),
            "stats.json: layers[1].evict_loss has 2 values but layers[0] has "
            "4");
  EXPECT_EQ(error(edited("\"evict_loss\": [0.75", "\"evict_lost\": [0.75")),
            "stats.json: layers[1].evict_loss is present but layers[0] has "
            "none; it must be in every layer or in none");
}

TEST(StatisticsJson, RefusesOtherDocuments) {
  EXPECT_EQ(error("[1, 2]"), "stats.json: not a kvopt calibration file: it "
                             "holds a JSON array, not an object");
  EXPECT_EQ(error("{\"format\": \"kvopt-policy\"}"),
            "stats.json: not a kvopt calibration file: its format member "
            "is not \"kvopt-calibration\"");
  EXPECT_EQ(error(edited("\"version\": 1", "\"version\": 2")),
            "stats.json: version is 2; this kvopt reads version 1");
  EXPECT_NE(error("{\"format\": \"kvopt-calibration\",").find("stats.json"),
            std::string::npos);
}

TEST(StatisticsJson, NamesTheFieldAtFault) {
  EXPECT_EQ(error(edited("\"source\"", "\"origin\"")),
            "stats.json: source is missing");
  EXPECT_EQ(error(edited("\"tokens\": 4096", "\"tokens\": \"4096\"")),
            "stats.json: source.tokens must be number, not string");
  EXPECT_EQ(error(edited("\"window\": 1024", "\"window\": 5000")),
            "stats.json: source.window must be an integer in [1, 4096]");
  EXPECT_EQ(error(edited("fedcba9876543210", "FEDCBA9876543210")),
            "stats.json: source.xxh64 must be 16 lowercase hexadecimal "
            "digits");
  EXPECT_EQ(error(edited("\"file\": \"pride", "\"file\": \"\", \"x\": \"")),
            "stats.json: source.file is empty");
  EXPECT_EQ(error(edited("\"kv_heads\": 3", "\"kv_heads\": 0")),
            "stats.json: model.kv_heads must be an integer in [1, "
            "2147483647]");
  EXPECT_EQ(error(edited("\"layers\": 2", "\"layers\": 3")),
            "stats.json: layers has 2 entries; model.layers says 3");
  EXPECT_EQ(error(edited("[448,", "[")),
            "stats.json: layers[1].key_absmax has 2 values; model.kv_heads "
            "says 3");
  EXPECT_EQ(error(edited("[448,", "[-448,")),
            "stats.json: layers[1].key_absmax[0] must be a finite, "
            "non-negative f32");
  // Beyond f32, and beyond double (strtod gives infinity).
  EXPECT_EQ(error(edited("[448,", "[1e39,")),
            "stats.json: layers[1].key_absmax[0] must be a finite, "
            "non-negative f32");
  EXPECT_EQ(error(edited("[448,", "[1e999,")),
            "stats.json: layers[1].key_absmax[0] must be a finite, "
            "non-negative f32");
  EXPECT_EQ(error(edited("[448,", "[null,")),
            "stats.json: layers[1].key_absmax[0] must be a finite, "
            "non-negative f32");
  EXPECT_EQ(error(edited("\"value_absmax\": [3", "\"value_absmx\": [3")),
            "stats.json: layers[1].value_absmax is missing");
}

} // namespace
