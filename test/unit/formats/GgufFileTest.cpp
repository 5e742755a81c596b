//===- GgufFileTest.cpp - The GGUF reader on valid and bad input ----------===//
#include "compiler/import/gguf/GgufFile.h"

#include "FormatBuilders.h"

using namespace kvopt::formats;
using namespace kvopt::formats::testing;

namespace {

class GgufFileTest : public ::testing::Test {
protected:
  kvrt::StatusOr<GgufFile> open(const std::vector<uint8_t> &bytes) {
    return openBothWays<GgufFile>(dir, "m.gguf", bytes);
  }
  kvrt::Status check(const GgufBuilder &b) {
    auto file = open(b.build());
    return file ? kvrt::Status::ok() : file.status();
  }

  TempDir dir;
};

/// A file with one metadata pair of every kind and one tensor per type.
GgufBuilder everyKind() {
  GgufBuilder b;
  b.key("general.architecture", kString).str("llama");
  b.key("u8", kU8).u8(200);
  b.key("i8", kI8).put(int8_t(-100));
  b.key("u16", kU16).u16(60000);
  b.key("i16", kI16).put(int16_t(-30000));
  b.key("llama.block_count", kU32).u32(30);
  b.key("i32", kI32).put(int32_t(-7));
  b.key("f32", kF32).put(1e-5f);
  b.key("flag", kBool).u8(1);
  b.key("u64", kU64).u64(~uint64_t(0));
  b.key("i64", kI64).put(int64_t(INT64_MIN));
  b.key("f64", kF64).put(0.25);
  b.key("tokens", kArray).u32(kString).u64(3).str("a").str("").str("\xC3\xA9");
  b.key("types", kArray).u32(kI32).u64(2).put(int32_t(1)).put(int32_t(-3));
  b.key("scores", kArray).u32(kF32).u64(2).put(0.5f).put(-1.5f);
  b.key("nested", kArray).u32(kArray).u64(2);
  b.metadata.u32(kU8).u64(2).u8(1).u8(2); // [[1, 2], ["x"]]
  b.metadata.u32(kString).u64(1).str("x");
  // Offsets: F32 [2, 3] = 24 bytes at 0; Q8_0 [1, 32] = 34 at 32; Q4_0 and
  // Q4_1 [32] at 96 and 128; BF16, F16 [2] at 160, 192; an empty tensor.
  b.tensor("f32", {3, 2}, kGgmlF32, 0);
  b.tensor("q8", {32, 1}, kGgmlQ8_0, 32);
  b.tensor("q4_0", {32}, kGgmlQ4_0, 96);
  b.tensor("q4_1", {32}, kGgmlQ4_1, 128);
  b.tensor("bf16", {2}, kGgmlBF16, 160);
  b.tensor("f16", {2}, kGgmlF16, 192);
  b.tensor("empty", {0, 4}, kGgmlF32, 224);
  b.data.bytes.resize(224);
  for (int i = 0; i < 6; ++i) {
    float v = float(i) - 2.5f;
    std::memcpy(&b.data.bytes[4 * i], &v, 4);
  }
  return b;
}

TEST_F(GgufFileTest, ReadsMetadataOfEveryType) {
  auto file = open(everyKind().build());
  ASSERT_TRUE(file.isOk()) << file.status().message();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->metadata().size(), 16u);
  EXPECT_EQ(file->metadata()[0].first, "general.architecture"); // File order.
  EXPECT_EQ(*file->getString("general.architecture"), "llama");
  EXPECT_EQ(*file->getUInt("u8"), 200u);
  EXPECT_EQ(*file->getInt("i8"), -100);
  EXPECT_EQ(*file->getInt("u16"), 60000);
  EXPECT_EQ(*file->getInt("i16"), -30000);
  EXPECT_EQ(*file->getPositiveInt("llama.block_count"), 30);
  EXPECT_EQ(*file->getInt("i32"), -7);
  EXPECT_EQ(*file->getFloat("f32"), double(1e-5f));
  EXPECT_TRUE(*file->getBool("flag"));
  EXPECT_EQ(*file->getUInt("u64"), ~uint64_t(0));
  EXPECT_EQ(*file->getInt("i64"), INT64_MIN);
  EXPECT_EQ(*file->getFloat("f64"), 0.25);
  EXPECT_EQ(*file->getFloat("llama.block_count"), 30.0);
  EXPECT_EQ(*file->getStringArray("tokens"),
            (std::vector<std::string>{"a", "", "\xC3\xA9"}));
  EXPECT_EQ(*file->getInt32Array("types"), (std::vector<int32_t>{1, -3}));
  EXPECT_EQ(*file->getFloatArray("scores"), (std::vector<float>{0.5f, -1.5f}));
  const GgufValue *nested = file->get("nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->typeName(), "array of array");
  ASSERT_EQ(nested->size(), 2u);
  EXPECT_EQ(nested->element(0).typeName(), "array of uint8");
  EXPECT_EQ(*nested->element(0).element(1).asUInt(), 2u);
  EXPECT_EQ(*nested->element(1).element(0).asString(), "x");
  EXPECT_FALSE(file->has("missing"));
}

TEST_F(GgufFileTest, ReadsTensors) {
  std::vector<uint8_t> bytes = everyKind().build();
  auto file = open(bytes);
  ASSERT_TRUE(file.isOk()) << file.status().message();
  ASSERT_EQ(file->tensors().size(), 7u);
  EXPECT_EQ(file->dataOffset() % 32, 0u);
  EXPECT_EQ(file->dataOffset() + 224, bytes.size());
  const TensorInfo *f32 = file->find("f32");
  ASSERT_NE(f32, nullptr);
  // ne = {3, 2}: two rows of three.
  EXPECT_EQ(f32->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f32->offset, file->dataOffset());
  EXPECT_EQ(f32->byteSize, 24u);
  float values[6];
  ASSERT_TRUE(dequantizeToF32(f32->dtype, file->data(*f32), 6, values));
  EXPECT_EQ(values[5], 2.5f);
  const TensorInfo *q8 = file->find("q8");
  EXPECT_EQ(q8->dtype, DType::Q8_0);
  EXPECT_EQ(q8->shape, (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(q8->byteSize, 34u);
  EXPECT_EQ(q8->offset, file->dataOffset() + 32);
  EXPECT_EQ(file->find("q4_0")->byteSize, 18u);
  EXPECT_EQ(file->find("q4_1")->byteSize, 20u);
  EXPECT_EQ(file->find("bf16")->dtype, DType::BF16);
  EXPECT_EQ(file->find("f16")->dtype, DType::F16);
  EXPECT_EQ(file->find("empty")->numElements(), 0u);
  EXPECT_EQ(file->find("missing"), nullptr);
}

TEST_F(GgufFileTest, AcceptsVersion2ScalarsAndCustomAlignment) {
  GgufBuilder b;
  b.version = 2;
  b.alignment = 64;
  b.key("general.alignment", kU32).u32(64);
  b.tensor("scalar", {}, kGgmlF32, 0);
  b.tensor("next", {1}, kGgmlF32, 64);
  b.data.bytes.resize(68);
  auto file = open(b.build());
  ASSERT_TRUE(file.isOk()) << file.status().message();
  EXPECT_EQ(file->version(), 2u);
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->dataOffset() % 64, 0u);
  EXPECT_TRUE(file->find("scalar")->shape.empty());
  EXPECT_EQ(file->find("scalar")->numElements(), 1u);
}

TEST_F(GgufFileTest, TypedGettersExplainMismatches) {
  auto file = open(everyKind().build());
  ASSERT_TRUE(file.isOk());
  std::string m = "m.gguf: metadata ";
  expectError(file->getUInt("general.architecture").status(),
              {m + "'general.architecture' must be an unsigned integer, got "
                   "string"});
  expectError(file->getUInt("i8").status(),
              {m + "'i8' must be an unsigned integer, got int8 -100"});
  expectError(file->getInt("u64").status(),
              {m + "'u64' must be an integer that fits in int64, got uint64 "
                   "18446744073709551615"});
  expectError(
      file->getPositiveInt("i32").status(),
      {m + "'i32' must be a positive integer below 2^31, got int32 -7"});
  expectError(file->getString("u8").status(),
              {m + "'u8' must be a string, got uint8 200"});
  expectError(file->getBool("u8").status(), {m + "'u8' must be a bool"});
  expectError(file->getFloat("tokens").status(),
              {m + "'tokens' must be a finite number, got array of string"});
  expectError(file->getStringArray("types").status(),
              {m + "'types' must be an array of string, got array of int32"});
  expectError(file->getFloatArray("tokens").status(),
              {m + "'tokens' must be an array of float32"});
  expectError(file->getInt32Array("scores").status(),
              {m + "'scores' must be an array of int32, got array of float32"});
  expectError(file->getString("llama.missing").status(),
              {m + "'llama.missing' is missing"});
}

TEST_F(GgufFileTest, Int32ArraysMustFit) {
  GgufBuilder b;
  b.key("ids", kArray).u32(kU32).u64(2).u32(5).u32(3000000000u);
  auto file = open(b.build());
  ASSERT_TRUE(file.isOk()) << file.status().message();
  expectError(file->getInt32Array("ids").status(),
              {"m.gguf: metadata 'ids' element 1 is uint32 3000000000, which "
               "does not fit in int32"});
}

TEST_F(GgufFileTest, RejectsBadMagicAndVersion) {
  expectError(open({'G', 'G'}).status(),
              {"m.gguf: header: the file is 2 bytes, too short"});
  std::vector<uint8_t> bytes = everyKind().build();
  bytes[3] = 'X';
  expectError(open(bytes).status(),
              {"m.gguf: header: magic bytes are 47 47 55 58, not 'GGUF'"});
  for (uint32_t version : {1u, 4u, 0xFFFFFFFFu}) {
    GgufBuilder b;
    b.version = version;
    expectError(check(b), {"m.gguf: header: version " +
                           std::to_string(version) + " is not supported"});
  }
  GgufBuilder b;
  b.version = 0x03000000;
  expectError(check(b), {"big-endian GGUF files are not supported"});
}

TEST_F(GgufFileTest, RejectsCountsTheFileCannotHold) {
  GgufBuilder b;
  b.pairCount = ~uint64_t(0);
  expectError(check(b), {"m.gguf: header: metadata count 18446744073709551615 "
                         "cannot fit in the",
                         "bytes left in the file"});
  b = GgufBuilder();
  b.tensorCount = uint64_t(1) << 60;
  b.data.bytes.resize(1000);
  expectError(check(b), {"m.gguf: header: tensor count 1152921504606846976 "
                         "cannot fit"});
}

TEST_F(GgufFileTest, RejectsStringLengthPastEnd) {
  GgufBuilder b;
  b.key("general.name", kString).u64(1000).raw("short");
  expectError(check(b), {"m.gguf: metadata 'general.name': string of 1000 "
                         "bytes at byte",
                         "extends past the end of the file"});
  b = GgufBuilder();
  b.metadata.u64(uint64_t(1) << 63).raw("k");
  b.pairs = 1;
  b.data.bytes.resize(64); // Room for one pair, so that the count passes.
  expectError(check(b), {"m.gguf: metadata key #0: key of "
                         "9223372036854775808 bytes at byte 24 extends past"});
}

TEST_F(GgufFileTest, RejectsArrayCountPastEnd) {
  GgufBuilder b;
  b.key("tokens", kArray).u32(kString).u64(uint64_t(1) << 62).str("a");
  expectError(check(b), {"m.gguf: metadata 'tokens': array of "
                         "4611686018427387904 string at byte",
                         "cannot fit in the"});
  b = GgufBuilder();
  b.alignment = 1; // No padding after the metadata.
  b.key("ids", kArray).u32(kU64).u64(3).u64(1).u64(2);
  expectError(check(b), {"metadata 'ids': array of 3 uint64", "cannot fit"});
  b = GgufBuilder();
  b.key("x", kArray).u32(kArray).u64(~uint64_t(0));
  expectError(check(b), {"metadata 'x': array of 18446744073709551615 array"});
}

TEST_F(GgufFileTest, RejectsBadValueTypes) {
  GgufBuilder b;
  b.key("k", 13).u8(0);
  expectError(check(b), {"m.gguf: metadata 'k': value type 13 at byte",
                         "is not a GGUF value type"});
  b = GgufBuilder();
  b.key("k", kArray).u32(0xFFFFFFFF).u64(0);
  expectError(check(b), {"metadata 'k': array element type 4294967295"});
  b = GgufBuilder();
  b.key("k", kBool).u8(2);
  expectError(check(b), {"metadata 'k': bool at byte", "is 2, not 0 or 1"});
  b = GgufBuilder();
  b.key("k", kArray).u32(kBool).u64(2).u8(1).u8(9);
  expectError(check(b), {"metadata 'k': bool at byte", "is 9, not 0 or 1"});
}

TEST_F(GgufFileTest, BoundsArrayNesting) {
  auto nested = [](int depth) {
    GgufBuilder b;
    Bytes &value = b.key("deep", kArray);
    for (int i = 1; i < depth; ++i)
      value.u32(kArray).u64(1);
    value.u32(kU8).u64(0);
    return b;
  };
  EXPECT_TRUE(check(nested(8)).isOk());
  expectError(check(nested(9)),
              {"m.gguf: metadata 'deep': arrays are nested more than 8 deep"});
}

TEST_F(GgufFileTest, RejectsNonUtf8AndDuplicateNames) {
  GgufBuilder b;
  b.key("bad\xFF", kU8).u8(0);
  expectError(check(b), {"m.gguf: metadata key #0: key is not valid UTF-8"});
  b = GgufBuilder();
  b.key("a", kU8).u8(0);
  b.key("a", kU32).u32(0);
  expectError(check(b), {"m.gguf: metadata 'a': key appears twice"});
  b = GgufBuilder();
  b.tensor("t\xC0\x80", {1}, kGgmlF32, 0);
  b.data.bytes.resize(4);
  expectError(check(b), {"m.gguf: tensor #0: name is not valid UTF-8"});
  b = GgufBuilder();
  b.tensor("t", {1}, kGgmlF32, 0).tensor("t", {1}, kGgmlF32, 32);
  b.data.bytes.resize(36);
  expectError(check(b), {"m.gguf: tensor 't': name appears twice"});
}

TEST_F(GgufFileTest, RejectsBadAlignment) {
  for (uint32_t alignment : {0u, 48u}) {
    GgufBuilder b;
    b.key("general.alignment", kU32).u32(alignment);
    expectError(check(b), {"m.gguf: metadata 'general.alignment': must be a "
                           "non-zero power of two, got " +
                           std::to_string(alignment)});
  }
  GgufBuilder b;
  b.key("general.alignment", kU64).u64(32);
  expectError(check(b), {"m.gguf: metadata 'general.alignment': must be a "
                         "uint32, got uint64"});
}

TEST_F(GgufFileTest, RejectsBadTensorInfos) {
  GgufBuilder b;
  b.tensor("t", {1, 1, 1, 1, 1}, kGgmlF32, 0);
  expectError(check(b), {"m.gguf: tensor 't': has 5 dimensions; GGUF allows "
                         "at most 4"});
  b = GgufBuilder();
  b.tensor("t", {1, uint64_t(1) << 63}, kGgmlF32, 0);
  expectError(check(b), {"tensor 't': dimension 1 is 9223372036854775808, "
                         "more than int64 can hold"});
  b = GgufBuilder();
  b.tensor("t", {uint64_t(1) << 32, uint64_t(1) << 32}, kGgmlF32, 0);
  expectError(check(b), {"tensor 't': shape [4294967296, 4294967296] has more "
                         "elements than 64 bits can count"});
  b = GgufBuilder();
  b.tensor("t", {uint64_t(1) << 62}, kGgmlF32, 0);
  expectError(check(b), {"tensor 't': shape [4611686018427387904] of type F32 "
                         "needs more bytes than 64 bits can count"});
  for (uint32_t type : {12u, 31u, 0xFFFFFFFFu}) {
    b = GgufBuilder();
    b.tensor("blk.0.attn_q.weight", {32}, type, 0);
    expectError(check(b), {"m.gguf: tensor 'blk.0.attn_q.weight': ggml type " +
                           std::to_string(type) + " is not supported"});
  }
  b = GgufBuilder();
  b.tensor("t", {33, 2}, kGgmlQ4_0, 0);
  expectError(check(b), {"tensor 't': rows of 33 elements are not whole Q4_0 "
                         "blocks of 32"});
  b = GgufBuilder();
  b.tensor("t", {}, kGgmlQ8_0, 0);
  expectError(check(b), {"rows of 1 elements are not whole Q8_0 blocks"});
  b = GgufBuilder();
  b.alignment = 1; // No padding after the tensor infos.
  b.tensor("t", {1}, kGgmlF32, 0);
  b.infos.bytes.resize(b.infos.bytes.size() - 3); // Truncate the offset.
  expectError(check(b), {"m.gguf: tensor 't': data offset at byte",
                         "extends past the end of the file"});
}

TEST_F(GgufFileTest, RejectsMisalignedAndOutOfBoundsData) {
  GgufBuilder b;
  b.tensor("t", {1}, kGgmlF32, 4);
  b.data.bytes.resize(8);
  expectError(check(b), {"m.gguf: tensor 't': data offset 4 is not a multiple "
                         "of the alignment 32"});
  b = GgufBuilder();
  b.tensor("blk.0.attn_q.weight", {8}, kGgmlF32, 0);
  b.data.bytes.resize(16);
  std::vector<uint8_t> bytes = b.build();
  std::string dataStart = std::to_string(bytes.size() - 16);
  std::string dataEnd = std::to_string(bytes.size() + 16);
  expectError(open(bytes).status(),
              {"m.gguf: tensor 'blk.0.attn_q.weight': data [" + dataStart +
               ", " + dataEnd + ") extends past the end of the file (" +
               std::to_string(bytes.size()) + " bytes)"});
  b = GgufBuilder();
  b.tensor("t", {1}, kGgmlF32, ~uint64_t(31));
  expectError(check(b), {"m.gguf: tensor 't': data offset "
                         "18446744073709551584 extends past the end"});
}

TEST_F(GgufFileTest, RejectsOverlappingTensors) {
  GgufBuilder b;
  b.tensor("a", {16}, kGgmlF32, 0).tensor("b", {8}, kGgmlF32, 32);
  b.data.bytes.resize(64);
  expectError(check(b), {"m.gguf: tensor 'b': data", "overlaps tensor 'a'"});
  // Empty tensors share offsets freely.
  b = GgufBuilder();
  b.tensor("a", {8}, kGgmlF32, 0).tensor("e", {0}, kGgmlF32, 0);
  b.data.bytes.resize(32);
  EXPECT_TRUE(check(b).isOk());
}

TEST_F(GgufFileTest, SurvivesEveryTruncation) {
  std::vector<uint8_t> whole = everyKind().build();
  for (size_t n = 0; n < whole.size(); ++n) {
    auto file = open(std::vector<uint8_t>(whole.begin(), whole.begin() + n));
    ASSERT_FALSE(file.isOk()) << "accepted a prefix of " << n << " bytes";
    EXPECT_EQ(file.status().message().rfind(dir.path("m.gguf: "), 0), 0u)
        << file.status().message();
  }
}

TEST_F(GgufFileTest, ReportsMissingFile) {
  expectError(GgufFile::open(dir.path("absent.gguf")).status(),
              {"absent.gguf"});
}

} // namespace
