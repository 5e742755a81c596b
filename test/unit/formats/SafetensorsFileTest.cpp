//===- SafetensorsFileTest.cpp - The safetensors reader on bad input ------===//
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "FormatBuilders.h"

using namespace kvopt::formats;
using namespace kvopt::formats::testing;

namespace {

/// One header entry.
std::string entry(const std::string &name, const std::string &dtype,
                  const std::string &shape, uint64_t begin, uint64_t end) {
  return "\"" + name + "\": {\"dtype\": \"" + dtype +
         "\", \"shape\": " + shape + ", \"data_offsets\": [" +
         std::to_string(begin) + ", " + std::to_string(end) + "]}";
}

class SafetensorsFileTest : public ::testing::Test {
protected:
  kvrt::StatusOr<SafetensorsFile> open(const std::vector<uint8_t> &bytes) {
    return openBothWays<SafetensorsFile>(dir, "m.safetensors", bytes);
  }
  /// The status of a file with `header` and `dataBytes` zero bytes of data.
  kvrt::Status check(const std::string &header, size_t dataBytes) {
    auto file = open(safetensors(header, std::vector<uint8_t>(dataBytes)));
    return file ? kvrt::Status::ok() : file.status();
  }

  TempDir dir;
};

TEST_F(SafetensorsFileTest, ReadsTensorsAndMetadata) {
  std::string header = "{\"__metadata__\": {\"format\": \"pt\"}, " +
                       entry("b", "F16", "[2]", 0, 4) + ", " +
                       entry("a", "F32", "[1, 2]", 4, 12) + ", " +
                       entry("empty", "I64", "[0, 3]", 12, 12) + "}";
  Bytes data;
  data.u16(0x3C00).u16(0xC000).put(1.5f).put(-2.0f);
  auto file = open(safetensors(header, data.bytes));
  ASSERT_TRUE(file.isOk()) << file.status().message();
  ASSERT_EQ(file->tensors().size(), 3u);
  EXPECT_EQ(file->tensors()[0].name, "b"); // Header order.
  const TensorInfo *a = file->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(a->offset, 8 + header.size() + 4);
  EXPECT_EQ(a->byteSize, 8u);
  EXPECT_EQ(a->numElements(), 2u);
  float values[2];
  ASSERT_TRUE(dequantizeToF32(a->dtype, file->data(*a), 2, values).isOk());
  EXPECT_EQ(values[0], 1.5f);
  EXPECT_EQ(values[1], -2.0f);
  const TensorInfo *b = file->find("b");
  ASSERT_TRUE(dequantizeToF32(b->dtype, file->data(*b), 2, values).isOk());
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -2.0f);
  EXPECT_EQ(file->find("empty")->numElements(), 0u);
  EXPECT_EQ(file->find("missing"), nullptr);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  ASSERT_NE(file->file(), nullptr);
  EXPECT_EQ(file->file()->path(), file->path());
}

TEST_F(SafetensorsFileTest, AcceptsEmptyHeaderAndScalars) {
  EXPECT_TRUE(check("{}", 0).isOk());
  EXPECT_TRUE(check("{" + entry("s", "F64", "[]", 0, 8) + "}  ", 8).isOk());
  auto buffer = SafetensorsFile::openBuffer(
      "mem",
      std::make_shared<const std::vector<uint8_t>>(safetensors("{}", {})));
  ASSERT_TRUE(buffer.isOk());
  EXPECT_EQ(buffer->file(), nullptr);
}

TEST_F(SafetensorsFileTest, RejectsTruncatedHeaderLength) {
  auto file = open({1, 2, 3});
  expectError(file.status(), {"m.safetensors: header length", "3 bytes"});
}

TEST_F(SafetensorsFileTest, RejectsHeaderLengthPastEnd) {
  auto file = open(Bytes().u64(100).raw("{}").bytes);
  expectError(file.status(),
              {"m.safetensors: header length 100 extends past the end of the "
               "file (10 bytes)"});
}

TEST_F(SafetensorsFileTest, RejectsHugeHeaderLength) {
  for (uint64_t length : {uint64_t(100'000'001), ~uint64_t(0)}) {
    auto file = open(Bytes().u64(length).raw("{}").bytes);
    expectError(file.status(), {"m.safetensors: header length",
                                std::to_string(length), "exceeds the limit"});
  }
}

TEST_F(SafetensorsFileTest, RejectsInvalidJson) {
  expectError(check("{\"a\": ", 0),
              {"m.safetensors: header: invalid JSON at byte 6"});
  expectError(check("[]", 0), {"m.safetensors: header must be a JSON object"});
  expectError(check("{\"a\": 1, \"a\": 2}", 0), {"duplicate key \"a\""});
}

TEST_F(SafetensorsFileTest, RejectsNonUtf8Header) {
  expectError(check("{\"\xC3\x28\": {}}", 0),
              {"m.safetensors: header is not valid UTF-8"});
  expectError(check("{}\xFF", 0), {"m.safetensors: header is not valid UTF-8"});
}

TEST_F(SafetensorsFileTest, RejectsBadEntries) {
  expectError(check("{\"t\": 3}", 0), {"tensor 't' must be an object"});
  expectError(check("{\"t\": {\"shape\": [], \"data_offsets\": [0, 0]}}", 0),
              {"tensor 't': field 'dtype' must be a string"});
  expectError(check("{" + entry("t", "F8_E4M3", "[1]", 0, 1) + "}", 1),
              {"m.safetensors: tensor 't': dtype 'F8_E4M3' is not supported"});
  expectError(check("{" + entry("t", "F32", "{}", 0, 4) + "}", 4),
              {"tensor 't': field 'shape' must be an array"});
  expectError(check("{" + entry("t", "F32", "[2, -1]", 0, 4) + "}", 4),
              {"tensor 't': shape[1] must be a non-negative integer"});
  expectError(check("{" + entry("t", "F32", "[1.5]", 0, 4) + "}", 4),
              {"tensor 't': shape[0] must be a non-negative integer"});
  expectError(
      check("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
            "[0]}}",
            4),
      {"tensor 't': field 'data_offsets' must be an array [begin, end]"});
  expectError(
      check("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
            "[-4, 0]}}",
            4),
      {"tensor 't': data_offsets[0] must be a non-negative integer"});
  expectError(
      check("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
            "[0, \"4\"]}}",
            4),
      {"tensor 't': data_offsets[1] must be a non-negative integer"});
}

TEST_F(SafetensorsFileTest, RejectsOutOfRangeOffsets) {
  expectError(check("{" + entry("t", "F32", "[2]", 0, 8) + "}", 4),
              {"m.safetensors: tensor 't': data_offsets [0, 8) extend past "
               "the end of the data region (4 bytes)"});
  expectError(check("{" + entry("t", "F32", "[1]", 8, 4) + "}", 8),
              {"tensor 't': data_offsets [8, 4) begin after they end"});
  expectError(
      check("{" + entry("t", "U8", "[1]", 0, 9223372036854775807ull) + "}", 1),
      {"tensor 't': data_offsets [0, 9223372036854775807) extend past"});
}

TEST_F(SafetensorsFileTest, RejectsByteCountMismatch) {
  expectError(check("{" + entry("t", "F32", "[3]", 0, 8) + "}", 8),
              {"m.safetensors: tensor 't': data_offsets [0, 8) hold 8 bytes "
               "but shape [3] of dtype F32 needs 12"});
  expectError(check("{" + entry("t", "BF16", "[2, 2]", 0, 4) + "}", 4),
              {"tensor 't'", "needs 8"});
}

TEST_F(SafetensorsFileTest, RejectsOverflowingShapes) {
  // 2^32 * 2^32 elements overflow the element count.
  expectError(
      check("{" + entry("t", "U8", "[4294967296, 4294967296]", 0, 0) + "}", 0),
      {"tensor 't': shape [4294967296, 4294967296] has more elements "
       "than 64 bits can count"});
  // 2^62 elements fit, 2^62 * 8 bytes do not.
  expectError(
      check("{" + entry("t", "F64", "[4611686018427387904]", 0, 0) + "}", 0),
      {"tensor 't': shape [4611686018427387904] of dtype F64 needs more bytes "
       "than 64 bits can count"});
}

TEST_F(SafetensorsFileTest, RejectsOverlaps) {
  expectError(check("{" + entry("a", "F32", "[2]", 0, 8) + ", " +
                        entry("b", "F32", "[1]", 4, 8) + "}",
                    8),
              {"m.safetensors: tensor 'b': data_offsets [4, 8) overlap tensor "
               "'a' [0, 8)"});
  // The same range twice.
  expectError(check("{" + entry("a", "F32", "[1]", 0, 4) + ", " +
                        entry("b", "I32", "[1]", 0, 4) + "}",
                    4),
              {"data_offsets [0, 4) overlap tensor"});
  // An empty tensor inside another one.
  expectError(check("{" + entry("a", "F32", "[2]", 0, 8) + ", " +
                        entry("e", "F32", "[0]", 4, 4) + "}",
                    8),
              {"tensor 'e': data_offsets [4, 4) overlap tensor 'a'"});
}

TEST_F(SafetensorsFileTest, RejectsGaps) {
  expectError(check("{" + entry("a", "F32", "[1]", 0, 4) + ", " +
                        entry("b", "F32", "[1]", 8, 12) + "}",
                    12),
              {"m.safetensors: data region: bytes [4, 8) belong to no tensor "
               "(the next one is 'b')"});
  expectError(check("{" + entry("a", "F32", "[1]", 0, 4) + "}", 6),
              {"m.safetensors: data region: bytes [4, 6) at its end belong to "
               "no tensor"});
  expectError(check("{}", 1), {"data region: bytes [0, 1)"});
}

TEST_F(SafetensorsFileTest, RejectsBadMetadata) {
  expectError(check("{\"__metadata__\": [1]}", 0),
              {"m.safetensors: __metadata__ must be an object of strings, got "
               "array"});
  expectError(check("{\"__metadata__\": {\"n\": 1}}", 0),
              {"m.safetensors: __metadata__ 'n' must be a string, got number"});
}

TEST_F(SafetensorsFileTest, SurvivesEveryTruncation) {
  std::string header = "{\"__metadata__\": {\"k\": \"v\"}, " +
                       entry("a", "F32", "[2]", 0, 8) + ", " +
                       entry("b", "F16", "[2]", 8, 12) + "}";
  std::vector<uint8_t> whole = safetensors(header, std::vector<uint8_t>(12));
  for (size_t n = 0; n < whole.size(); ++n) {
    auto file = open(std::vector<uint8_t>(whole.begin(), whole.begin() + n));
    ASSERT_FALSE(file.isOk()) << "accepted a prefix of " << n << " bytes";
    EXPECT_EQ(file.status().message().rfind(dir.path("m.safetensors: "), 0),
              0u);
  }
  EXPECT_TRUE(open(whole).isOk());
}

TEST_F(SafetensorsFileTest, ReportsMissingFile) {
  auto file = SafetensorsFile::open(dir.path("absent.safetensors"));
  expectError(file.status(), {"absent.safetensors"});
}

} // namespace
