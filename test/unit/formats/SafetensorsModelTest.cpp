//===- SafetensorsModelTest.cpp - Sharded Hugging Face folders ------------===//
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "FormatBuilders.h"

using namespace kvopt::formats;
using namespace kvopt::formats::testing;

namespace {

/// A shard holding one F32 tensor of two elements per name.
std::vector<uint8_t> shard(std::initializer_list<std::string> names) {
  std::string header = "{";
  uint64_t offset = 0;
  for (const std::string &name : names) {
    if (offset)
      header += ", ";
    header += "\"" + name +
              "\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [" +
              std::to_string(offset) + ", " + std::to_string(offset + 8) + "]}";
    offset += 8;
  }
  return safetensors(header + "}", std::vector<uint8_t>(offset));
}

std::vector<uint8_t> text(const std::string &s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

class SafetensorsModelTest : public ::testing::Test {
protected:
  void writeIndex(const std::string &weightMap) {
    dir.write("model.safetensors.index.json",
              text("{\"metadata\": {}, \"weight_map\": " + weightMap + "}"));
  }
  /// Opens the folder; a refusal must name a file in it.
  kvrt::Status openStatus() {
    auto model = SafetensorsModel::open(dir.path(""));
    if (model)
      return kvrt::Status::ok();
    EXPECT_EQ(model.status().message().rfind(dir.path(""), 0), 0u)
        << model.status().message();
    return model.status();
  }

  TempDir dir;
};

TEST_F(SafetensorsModelTest, ReadsSingleFile) {
  dir.write("model.safetensors", shard({"a", "b"}));
  auto model = SafetensorsModel::open(dir.path(""));
  ASSERT_TRUE(model.isOk()) << model.status().message();
  ASSERT_EQ(model->tensors().size(), 2u);
  auto found = model->find("b");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->info->name, "b");
  EXPECT_EQ(found->file->find("b"), found->info);
  EXPECT_FALSE(model->find("c").has_value());
}

TEST_F(SafetensorsModelTest, ReadsShardsFromIndex) {
  dir.write("model-00001-of-00002.safetensors", shard({"a", "b"}));
  dir.write("model-00002-of-00002.safetensors", shard({"c"}));
  writeIndex("{\"a\": \"model-00001-of-00002.safetensors\", \"c\": "
             "\"model-00002-of-00002.safetensors\", \"b\": "
             "\"model-00001-of-00002.safetensors\"}");
  auto opened = SafetensorsModel::open(dir.path(""));
  ASSERT_TRUE(opened.isOk()) << opened.status().message();
  // Moving the model keeps the pointers it hands out valid.
  SafetensorsModel model = std::move(*opened);
  ASSERT_EQ(model.tensors().size(), 3u);
  auto c = model.find("c");
  ASSERT_TRUE(c.has_value());
  EXPECT_NE(c->file->path().find("model-00002-of-00002"), std::string::npos);
  EXPECT_EQ(model.find("a")->file, model.find("b")->file);
}

TEST_F(SafetensorsModelTest, RejectsShardNamesOutsideTheFolder) {
  for (std::string name : {"../model.safetensors", "/etc/passwd",
                           "sub/model.safetensors", "", "a..b"}) {
    writeIndex("{\"a\": \"" + name + "\"}");
    expectError(
        openStatus(),
        {"model.safetensors.index.json: weight_map['a'] names '" + name + "'",
         "not a plain file name inside the model folder"});
  }
  writeIndex("{\"a\": \"x\\u0000.safetensors\"}");
  expectError(openStatus(), {"not a plain file name"});
}

TEST_F(SafetensorsModelTest, RejectsBadIndex) {
  writeIndex("[]");
  expectError(openStatus(), {"index.json: field 'weight_map' must be an "
                             "object"});
  writeIndex("{}");
  expectError(openStatus(), {"index.json: weight_map names no tensors"});
  writeIndex("{\"a\": 7}");
  expectError(openStatus(),
              {"index.json: weight_map['a'] must be a file name, got number"});
  dir.write("model.safetensors.index.json", text("{\"weight_map\": {"));
  expectError(openStatus(), {"index.json: invalid JSON"});
}

TEST_F(SafetensorsModelTest, RejectsMissingAndMisplacedTensors) {
  dir.write("one.safetensors", shard({"a"}));
  dir.write("two.safetensors", shard({"b"}));
  writeIndex("{\"a\": \"one.safetensors\", \"b\": \"one.safetensors\"}");
  expectError(openStatus(), {"index.json: weight_map puts tensor 'b' in "
                             "'one.safetensors', which does not hold it"});
  writeIndex("{\"a\": \"one.safetensors\", \"z\": \"missing.safetensors\"}");
  expectError(openStatus(), {"index.json: weight_map names shard "
                             "'missing.safetensors', which is not in the "
                             "folder"});
}

TEST_F(SafetensorsModelTest, RejectsDuplicatesAcrossShards) {
  dir.write("one.safetensors", shard({"a", "b"}));
  dir.write("two.safetensors", shard({"b"}));
  writeIndex("{\"a\": \"one.safetensors\", \"b\": \"two.safetensors\"}");
  expectError(openStatus(),
              {"two.safetensors: tensor 'b' is also in", "one.safetensors"});
}

TEST_F(SafetensorsModelTest, ReportsEmptyFolderAndBadShard) {
  expectError(openStatus(), {"no model.safetensors or "
                             "model.safetensors.index.json"});
  dir.write("model.safetensors", {1, 2});
  expectError(openStatus(), {"model.safetensors: header length"});
}

} // namespace
