//===- ArtifactTest.cpp - Writing, reading and refusing .kvpkg files ------===//
#include "LlamaArtifact.h"

#include "kvrt/Artifact.h"
#include "kvrt/ArtifactWriter.h"
#include "runtime/src/engine/SideCodec.h"
#include "runtime/src/support/XxHash.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sys/stat.h>

using namespace kvrt;

namespace {

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

/// Whether a temporary file of a write to `path` (`path.tmp.XXXXXX`) is
/// left in its folder.
bool temporaryLeft(const std::string &path) {
  std::filesystem::path target(path);
  std::string prefix = target.filename().string() + ".tmp";
  for (const auto &entry :
       std::filesystem::directory_iterator(target.parent_path()))
    if (entry.path().filename().string().rfind(prefix, 0) == 0)
      return true;
  return false;
}

std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void put(std::vector<uint8_t> &bytes, size_t at, uint64_t value, int size) {
  for (int i = 0; i < size; ++i)
    bytes[at + i] = uint8_t(value >> (8 * i));
}

uint64_t get(const std::vector<uint8_t> &bytes, size_t at, int size) {
  uint64_t v = 0;
  for (int i = size - 1; i >= 0; --i)
    v = v << 8 | bytes[at + i];
  return v;
}

struct Section {
  uint32_t kind;
  std::vector<uint8_t> bytes;
};

/// Lays out sections as docs/kvpkg-format.md says, written here from the
/// document rather than with the runtime's writer, so tests can build
/// files the writer refuses to produce.
std::vector<uint8_t> pack(const std::vector<Section> &sections,
                          uint16_t major = 1, uint16_t minor = 0) {
  auto align = [](uint64_t v) { return (v + 63) / 64 * 64; };
  uint64_t tableOffset = 64, tableBytes = 32 * sections.size();
  std::vector<uint8_t> out(align(tableOffset + tableBytes), 0);
  std::vector<uint8_t> table(tableBytes, 0);
  for (size_t i = 0; i < sections.size(); ++i) {
    out.resize(align(out.size()), 0);
    uint64_t offset = out.size();
    const std::vector<uint8_t> &b = sections[i].bytes;
    out.insert(out.end(), b.begin(), b.end());
    put(table, 32 * i, sections[i].kind, 4);
    put(table, 32 * i + 8, offset, 8);
    put(table, 32 * i + 16, b.size(), 8);
    put(table, 32 * i + 24, xxHash64(b.data(), b.size()), 8);
  }
  std::copy(table.begin(), table.end(), out.begin() + tableOffset);
  const char magic[8] = {'K', 'V', 'P', 'K', 'G', '\r', '\n', 0x1a};
  std::copy(magic, magic + 8, out.begin());
  put(out, 8, major, 2);
  put(out, 10, minor, 2);
  put(out, 12, 64, 4);
  put(out, 16, sections.size(), 8);
  put(out, 24, tableOffset, 8);
  put(out, 32, out.size(), 8);
  put(out, 40, xxHash64(table.data(), table.size()), 8);
  return out;
}

std::string errorOf(const std::vector<uint8_t> &bytes,
                    ArtifactOptions options = {}) {
  auto a = Artifact::fromMemory("x.kvpkg", bytes.data(), bytes.size(), options);
  return a.isOk() ? "" : a.status().message();
}

class ArtifactTest : public ::testing::Test {
protected:
  void SetUp() override {
    model = test::makeRandomLlama(7);
    path = ::testing::TempDir() + "/artifact_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name() +
           ".kvpkg";
    ArtifactWriter writer;
    ASSERT_TRUE(buildLlama(writer, model.config, model.weights, {}).isOk());
    manifest = writer.manifest();
    Status s = writer.write(path);
    ASSERT_TRUE(s.isOk()) << s.message();
    manifest = Artifact::open(path).value()->manifest();
    bytes = readBytes(path);
    auto artifact = Artifact::open(path).value();
    for (size_t i = 0; i < artifact->blobCount(); ++i) {
      ByteView b = artifact->blob(uint32_t(i)).value();
      blobs.emplace_back(b.data, b.data + b.size);
    }
  }

  /// The artifact with `manifest` changed by `edit`, packed by hand.
  template <typename Edit> std::vector<uint8_t> repack(Edit edit) {
    schema::Manifest m = manifest;
    edit(m);
    std::string text = m.SerializeAsString();
    std::vector<Section> sections = {
        {1, std::vector<uint8_t>(text.begin(), text.end())}};
    for (const auto &b : blobs)
      sections.push_back({2, b});
    return pack(sections, uint16_t(m.format().major()),
                uint16_t(m.format().minor()));
  }

  test::RandomLlama model;
  std::string path;
  schema::Manifest manifest;
  std::vector<uint8_t> bytes;
  std::vector<std::vector<uint8_t>> blobs;
};

TEST_F(ArtifactTest, RoundTrips) {
  auto artifact = Artifact::open(path, {/*verifyBlobsEagerly=*/true});
  ASSERT_TRUE(artifact.isOk()) << artifact.status().message();
  const schema::Manifest &m = (*artifact)->manifest();
  EXPECT_EQ(m.format().major(), kFormatMajor);
  EXPECT_EQ(m.model().SerializeAsString(), model.config.SerializeAsString());
  EXPECT_EQ(m.plan().calls_size(), manifest.plan().calls_size());
  EXPECT_FALSE(temporaryLeft(path));
  EXPECT_EQ((*artifact)->fileSize(), bytes.size());
  for (int t = 0; t < m.tensors_size(); ++t) {
    ByteView data = (*artifact)->tensorData(uint32_t(t)).value();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(data.data) % 64, 0u);
    const std::vector<float> &expected = model.storage.at(m.tensors(t).name());
    ASSERT_EQ(data.size, expected.size() * 4);
    EXPECT_EQ(std::memcmp(data.data, expected.data(), data.size), 0);
  }
}

TEST_F(ArtifactTest, HandPackedFileReadsLikeTheWritersOwn) {
  std::vector<uint8_t> packed = repack([](schema::Manifest &) {});
  auto a = Artifact::fromMemory("x.kvpkg", packed.data(), packed.size(),
                                {/*verifyBlobsEagerly=*/true});
  ASSERT_TRUE(a.isOk()) << a.status().message();
}

TEST_F(ArtifactTest, WriterStreamsBlobsFromProducers) {
  ArtifactWriter writer;
  ASSERT_TRUE(buildLlama(writer, model.config, model.weights, {}).isOk());
  std::vector<uint8_t> extra(1000);
  for (size_t i = 0; i < extra.size(); ++i)
    extra[i] = uint8_t(i * 7);
  uint32_t blob = writer.addBlob(extra.size(), [&](const BlobSink &sink) {
    for (size_t i = 0; i < extra.size(); i += 333)
      KVRT_RETURN_IF_ERROR(
          sink(extra.data() + i, std::min<size_t>(333, extra.size() - i)));
    return Status::ok();
  });
  (*writer.manifest().mutable_calibration()->mutable_blobs())["centres"] = blob;
  ASSERT_TRUE(writer.write(path).isOk());
  auto a = Artifact::open(path).value();
  ByteView b =
      a->blob(a->manifest().calibration().blobs().at("centres")).value();
  ASSERT_EQ(b.size, extra.size());
  EXPECT_EQ(std::memcmp(b.data, extra.data(), b.size), 0);
}

TEST_F(ArtifactTest, WriterLeavesNothingBehindOnError) {
  std::string target = path + ".new";
  ArtifactWriter writer;
  ASSERT_TRUE(buildLlama(writer, model.config, model.weights, {}).isOk());
  writer.addBlob(16, [](const BlobSink &sink) {
    uint8_t half[8] = {};
    return sink(half, sizeof(half));
  });
  Status s = writer.write(target);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("has 8 of the 16 bytes declared"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(exists(target));
  EXPECT_FALSE(temporaryLeft(target));
}

TEST_F(ArtifactTest, WriterRefusesWhatTheReaderWouldRefuse) {
  std::string target = path + ".new";
  ArtifactWriter writer;
  ASSERT_TRUE(buildLlama(writer, model.config, model.weights, {}).isOk());
  writer.manifest().mutable_plan()->mutable_calls(3)->set_kernel("matmul");
  Status s = writer.write(target);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("names kernel \"matmul\""), std::string::npos);
  EXPECT_FALSE(exists(target));
  EXPECT_FALSE(temporaryLeft(target));
}

TEST_F(ArtifactTest, RefusesWrongMagic) {
  bytes[1] = 'X';
  EXPECT_EQ(errorOf(bytes),
            "x.kvpkg: not a kvpkg artifact (wrong magic bytes)");
}

TEST_F(ArtifactTest, RefusesNewerMajorVersion) {
  put(bytes, 8, 3, 2);
  EXPECT_EQ(errorOf(bytes), "x.kvpkg: format version 3." +
                                std::to_string(kFormatMinor) +
                                " is newer than this runtime (1.x); rebuild "
                                "with a newer kvopt");
}

TEST_F(ArtifactTest, ReadsNewerMinorVersion) {
  std::vector<uint8_t> newer = repack([](schema::Manifest &m) {
    m.mutable_format()->set_minor(kFormatMinor + 4);
  });
  EXPECT_EQ(errorOf(newer), "");
}

TEST_F(ArtifactTest, RefusesManifestVersionDisagreeingWithHeader) {
  std::vector<uint8_t> packed = repack([](schema::Manifest &) {});
  put(packed, 10, 2, 2);
  EXPECT_EQ(errorOf(packed), "x.kvpkg: the manifest says format 1." +
                                 std::to_string(kFormatMinor) +
                                 " but the header says 1.2");
}

TEST_F(ArtifactTest, RefusesManifestChecksumMismatch) {
  uint64_t manifestOffset = get(bytes, 64 + 8, 8);
  bytes[manifestOffset + 3] ^= 0x40;
  EXPECT_EQ(errorOf(bytes),
            "x.kvpkg: manifest checksum mismatch (the file is corrupted)");
}

TEST_F(ArtifactTest, ChecksBlobsLazilyOrEagerly) {
  // Section 1 is blob 0, the embedding table (tensor 0).
  uint64_t blobOffset = get(bytes, 64 + 32 + 8, 8);
  bytes[blobOffset + 5] ^= 0x01;
  auto lazy = Artifact::fromMemory("x.kvpkg", bytes.data(), bytes.size());
  ASSERT_TRUE(lazy.isOk()) << lazy.status().message();
  auto tensor = (*lazy)->tensorData(0);
  ASSERT_FALSE(tensor.isOk());
  EXPECT_EQ(tensor.status().message(),
            "x.kvpkg: tensor \"model.embed_tokens.weight\" (blob 0) fails its "
            "checksum (the file is corrupted)");
  EXPECT_NE(errorOf(bytes, {/*verifyBlobsEagerly=*/true})
                .find("blob 0 (offset " + std::to_string(blobOffset)),
            std::string::npos);
}

TEST_F(ArtifactTest, RefusesEveryTruncation) {
  for (size_t size = 0; size < bytes.size(); size += 1 + size / 64) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + size);
    EXPECT_NE(errorOf(cut), "") << "accepted " << size << " bytes";
  }
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
  EXPECT_EQ(errorOf(cut), "x.kvpkg: the header records a file of " +
                              std::to_string(bytes.size()) +
                              " bytes but it "
                              "has " +
                              std::to_string(bytes.size() - 1) +
                              " (truncated or appended to)");
}

/// Rewrites section `index`'s offset (or size) and the table checksum, so
/// that only the bounds checks can catch it.
void editSection(std::vector<uint8_t> &bytes, int index, int field,
                 uint64_t value) {
  put(bytes, 64 + 32 * index + field, value, 8);
  uint64_t count = get(bytes, 16, 8);
  put(bytes, 40, xxHash64(bytes.data() + 64, 32 * count), 8);
}

TEST_F(ArtifactTest, RefusesSectionsOutOfBounds) {
  editSection(bytes, 2, 8, uint64_t(1) << 62);
  EXPECT_NE(errorOf(bytes).find("x.kvpkg: section 2 (offset 4611686018427387904"
                                ", "),
            std::string::npos)
      << errorOf(bytes);
  // Offset + size wraps around 2^64: must still be caught.
  std::vector<uint8_t> wrap = readBytes(path);
  editSection(wrap, 2, 16, ~uint64_t(0) - 10);
  EXPECT_NE(errorOf(wrap).find("extends past the end of the file"),
            std::string::npos);
}

TEST_F(ArtifactTest, RefusesOverlappingSections) {
  uint64_t first = get(bytes, 64 + 32 + 8, 8);
  editSection(bytes, 2, 8, first);
  EXPECT_EQ(errorOf(bytes), "x.kvpkg: section 2 and section 1 overlap");
  std::vector<uint8_t> onTable = readBytes(path);
  editSection(onTable, 1, 8, 64);
  EXPECT_NE(errorOf(onTable).find("overlap"), std::string::npos);
}

TEST_F(ArtifactTest, RefusesMisalignedSection) {
  uint64_t first = get(bytes, 64 + 32 + 8, 8);
  editSection(bytes, 1, 8, first + 4);
  EXPECT_NE(errorOf(bytes).find("which is not a multiple of 64"),
            std::string::npos);
}

TEST_F(ArtifactTest, RefusesHugeSectionCount) {
  put(bytes, 16, uint64_t(1) << 60, 8);
  EXPECT_NE(errorOf(bytes).find("the section table (1152921504606846976 "
                                "entries at offset 64) does not lie"),
            std::string::npos);
}

TEST_F(ArtifactTest, RefusesTensorShapeNotMatchingBlob) {
  auto packed = repack(
      [](schema::Manifest &m) { m.mutable_tensors(1)->set_shape(0, 17); });
  EXPECT_EQ(errorOf(packed),
            "x.kvpkg: tensor 1 (\"model.layers.0.input_layernorm.weight\") has "
            "shape [17] of f32 (68 bytes) but blob 1 holds 64 bytes");
}

TEST_F(ArtifactTest, ChecksSyntheticTensors) {
  // Tensor 1 is f32 [16]: synthetic, it needs no blob; its values must be
  // finite and its dtype one the generator writes.
  auto packed = repack([](schema::Manifest &m) {
    m.mutable_tensors(1)->mutable_synthetic()->set_constant(1.0f);
  });
  auto artifact = Artifact::fromMemory("x.kvpkg", packed.data(), packed.size());
  ASSERT_TRUE(artifact) << artifact.status().message();
  StatusOr<ByteView> values = (*artifact)->tensorData(1);
  ASSERT_TRUE(values);
  ASSERT_EQ(values->size, 64u);
  float first;
  std::memcpy(&first, values->data, 4);
  EXPECT_EQ(first, 1.0f);

  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float bound : {-1.0f, nan, std::numeric_limits<float>::infinity()}) {
    auto bad = repack([&](schema::Manifest &m) {
      m.mutable_tensors(1)->mutable_synthetic()->set_bound(bound);
    });
    EXPECT_NE(errorOf(bad).find("is synthetic with bound"), std::string::npos)
        << bound;
  }
  kvrt::ArtifactOptions small;
  small.maxSyntheticTensorBytes = 32;
  EXPECT_EQ(Artifact::fromMemory("x.kvpkg", packed.data(), packed.size(), small)
                .status()
                .message(),
            "x.kvpkg: synthetic tensor "
            "\"model.layers.0.input_layernorm.weight\" of 64 bytes exceeds "
            "the 32 that ArtifactOptions::maxSyntheticTensorBytes allows");
  auto f16 = repack([](schema::Manifest &m) {
    m.mutable_tensors(1)->set_dtype(schema::DTYPE_F16);
    m.mutable_tensors(1)->mutable_synthetic()->set_bound(0.1f);
  });
  EXPECT_EQ(errorOf(f16),
            "x.kvpkg: tensor 1 (\"model.layers.0.input_layernorm.weight\") is "
            "synthetic with dtype f16; expected bf16 or f32");
}

TEST_F(ArtifactTest, BlockFormatsAreForMatricesOfWholeBlocks) {
  // A norm weight (rank 1) cannot hold rows of blocks.
  auto norm = repack([](schema::Manifest &m) {
    m.mutable_tensors(1)->set_dtype(schema::DTYPE_Q4_1);
  });
  EXPECT_NE(errorOf(norm).find("tensor 1 (\"model.layers.0.input_layernorm."
                               "weight\") has shape ["),
            std::string::npos);
  EXPECT_NE(errorOf(norm).find("] of q4_1; a block format needs rows of a "
                               "multiple of 32 elements (rank 2)"),
            std::string::npos);
  // Blocks fill the blob exactly: 4 blocks of 34 bytes.
  auto size = repack([](schema::Manifest &m) {
    schema::Tensor &t = *m.mutable_tensors(1);
    t.set_dtype(schema::DTYPE_Q8_0);
    t.clear_shape();
    t.add_shape(2);
    t.add_shape(64);
  });
  EXPECT_EQ(errorOf(size),
            "x.kvpkg: tensor 1 (\"model.layers.0.input_layernorm.weight\") "
            "has shape [2, 64] of q8_0 (136 bytes) but blob 1 holds 64 bytes");
  // A well-formed block tensor as an rms_norm weight: only linear, lm_head
  // and embedding calls read blocks.
  blobs.push_back(std::vector<uint8_t>(34, 0));
  const uint32_t blob = uint32_t(blobs.size() - 1);
  auto normOfBlocks = repack([&](schema::Manifest &m) {
    schema::Tensor &t = *m.add_tensors();
    t.set_name("norm.blocks");
    t.set_dtype(schema::DTYPE_Q8_0);
    t.add_shape(1);
    t.add_shape(32);
    t.set_blob(blob);
    for (schema::KernelCall &call : *m.mutable_plan()->mutable_calls())
      if (call.kernel() == "rms_norm") {
        call.set_tensors(0, uint32_t(m.tensors_size() - 1));
        break;
      }
  });
  const std::string error = errorOf(normOfBlocks);
  EXPECT_NE(error.find("(rms_norm): tensor "), std::string::npos) << error;
  EXPECT_NE(error.find(" (\"norm.blocks\") is q8_0; block formats are for "
                       "the weights of linear, lm_head and embedding calls "
                       "only"),
            std::string::npos)
      << error;
}

TEST_F(ArtifactTest, ChecksLowRankBases) {
  auto lowRank = [](schema::Manifest &m) {
    schema::Encoding &v = *m.mutable_cache(0)->mutable_value();
    v.set_kind(schema::ENCODING_LOWRANK);
    v.set_rank(2);
    v.mutable_latent()->set_kind(schema::ENCODING_BF16);
  };
  EXPECT_NE(
      errorOf(repack(lowRank))
          .find("cache[0].value is lowrank, but its basis_tensor is missing"),
      std::string::npos);
  auto wrongShape = repack([&](schema::Manifest &m) {
    lowRank(m);
    m.mutable_cache(0)->mutable_value()->set_basis_tensor(1);
  });
  EXPECT_NE(
      errorOf(wrongShape)
          .find("cache[0].value.basis_tensor names tensor "
                "\"model.layers.0.input_layernorm.weight\", which must be "
                "f32 of shape ["),
      std::string::npos);
  // A key basis row holds the weight and the mean after the axes (format
  // 1.1): rank 2 takes 4 columns.
  auto keyShape = repack([&](schema::Manifest &m) {
    schema::Encoding &k = *m.mutable_cache(0)->mutable_key();
    k.set_kind(schema::ENCODING_LOWRANK);
    k.set_rank(2);
    k.mutable_latent()->set_kind(schema::ENCODING_BF16);
    k.set_basis_tensor(1);
  });
  const std::string keyError = errorOf(keyShape);
  EXPECT_NE(keyError.find("cache[0].key.basis_tensor names tensor "
                          "\"model.layers.0.input_layernorm.weight\", which "
                          "must be f32 of shape ["),
            std::string::npos);
  EXPECT_EQ(keyError.substr(keyError.size() - 3), " 4]") << keyError;
  // Format 1.0 wrote key rows without the mean: a 1.1 reader takes them as
  // centred at 0, and its codec reads them widened.
  auto keyBasis = [&](schema::Manifest &m, uint32_t minor) {
    m.mutable_format()->set_minor(minor);
    const schema::CacheLayout &c = m.cache(0);
    schema::Tensor &t = *m.add_tensors();
    t.set_name("cache.0.key_basis");
    t.set_dtype(schema::DTYPE_F32);
    for (int64_t extent :
         {int64_t(c.kv_heads()), int64_t(c.head_dim()), int64_t(2 + 1)})
      t.add_shape(extent);
    t.mutable_synthetic()->set_constant(1.0f);
    schema::Encoding &k = *m.mutable_cache(0)->mutable_key();
    k.set_kind(schema::ENCODING_LOWRANK);
    k.set_rank(2);
    k.mutable_latent()->set_kind(schema::ENCODING_BF16);
    k.set_basis_tensor(uint32_t(m.tensors_size() - 1));
  };
  std::vector<uint8_t> format10 =
      repack([&](schema::Manifest &m) { keyBasis(m, 0); });
  auto read10 =
      Artifact::fromMemory("x.kvpkg", format10.data(), format10.size(), {});
  ASSERT_TRUE(read10) << read10.status().message();
  const schema::CacheLayout &layout = (*read10)->manifest().cache(0);
  StatusOr<SideCodec> widened =
      makeSideCodec(**read10, layout, layout.key(), CacheSide::Key);
  ASSERT_TRUE(widened) << widened.status().message();
  ASSERT_EQ(widened->basis.size(),
            size_t(layout.kv_heads()) * layout.head_dim() * 4);
  for (size_t i = 0; i < widened->basis.size(); ++i)
    EXPECT_EQ(widened->basis[i], i % 4 == 3 ? 0.0f : 1.0f) << i;
  EXPECT_NE(errorOf(repack([&](schema::Manifest &m) { keyBasis(m, 1); }))
                .find("cache[0].key.basis_tensor names tensor "
                      "\"cache.0.key_basis\", which must be f32 of shape"),
            std::string::npos);
  auto fullRank = repack([&](schema::Manifest &m) {
    lowRank(m);
    m.mutable_cache(0)->mutable_value()->set_rank(m.cache(0).head_dim());
  });
  EXPECT_NE(errorOf(fullRank).find("cache[0].value.rank is"),
            std::string::npos);
  // Folded values (kv-lowrank{fold=true}) have no basis: the runtime
  // builds the identity's, no larger than the weights.
  auto folded = [&](schema::Manifest &m) {
    lowRank(m);
    m.mutable_cache(0)->mutable_value()->set_folded(true);
  };
  EXPECT_EQ(errorOf(repack(folded)), "");
  auto foldedKey = repack([&](schema::Manifest &m) {
    folded(m);
    *m.mutable_cache(0)->mutable_key() = m.cache(0).value();
  });
  EXPECT_EQ(errorOf(foldedKey),
            "x.kvpkg: cache[0].key.folded is set, but only values of one KV "
            "head a latent fold, and they have no basis_tensor");
  auto foldedWithBasis = repack([&](schema::Manifest &m) {
    folded(m);
    m.mutable_cache(0)->mutable_value()->set_basis_tensor(1);
  });
  EXPECT_EQ(errorOf(foldedWithBasis),
            "x.kvpkg: cache[0].value.folded is set, but only values of one KV "
            "head a latent fold, and they have no basis_tensor");
  auto foldedPlain = repack([](schema::Manifest &m) {
    m.mutable_cache(0)->mutable_value()->set_folded(true);
  });
  EXPECT_EQ(errorOf(foldedPlain), "x.kvpkg: cache[0].value.folded is set, but "
                                  "only lowrank encodings fold");
  // A small file asking for a huge identity basis: 2^30 coordinates a head.
  auto foldedHuge = repack([&](schema::Manifest &m) {
    folded(m);
    m.mutable_cache(0)->set_head_dim(1u << 30);
    m.mutable_cache(0)->mutable_value()->set_rank((1u << 30) - 1);
  });
  EXPECT_NE(errorOf(foldedHuge)
                .find("cache[0].value is folded, and the identity bases of "
                      "the folded caches up to it would take more memory "
                      "than the artifact's "),
            std::string::npos)
      << errorOf(foldedHuge);
  auto stray = repack([](schema::Manifest &m) {
    m.mutable_cache(0)->mutable_key()->set_basis_tensor(1);
  });
  EXPECT_NE(errorOf(stray).find("cache[0].key.basis_tensor is set, but only "
                                "lowrank encodings take a basis"),
            std::string::npos);
  auto straySinks = repack([](schema::Manifest &m) {
    m.mutable_cache(0)->mutable_key()->set_sinks(4);
  });
  EXPECT_NE(errorOf(straySinks)
                .find("cache[0].key.sinks is 4, but only lowrank, polar, fp8 "
                      "and nvfp4 encodings keep sink tokens"),
            std::string::npos);
  // Polar keeps exact tokens too, as many as lowrank may; a latent none.
  auto polar = [](schema::Encoding &e) {
    e.set_kind(schema::ENCODING_POLAR);
    e.set_bits(4);
    e.set_rotation(schema::ROTATION_HADAMARD);
  };
  for (bool isPolar : {false, true})
    for (bool sinks : {true, false}) {
      auto tooMany = repack([&](schema::Manifest &m) {
        schema::Encoding &v = *m.mutable_cache(0)->mutable_value();
        isPolar ? polar(v) : lowRank(m);
        sinks ? v.set_sinks(4097) : v.set_residual(1u << 31);
      });
      EXPECT_NE(errorOf(tooMany).find(
                    std::string("cache[0].value.") +
                    (sinks ? "sinks is 4097" : "residual is 2147483648") +
                    "; a cache keeps at most 4096 exact tokens at either end"),
                std::string::npos);
    }
  // Polar's window, or KIVI's bf16 residual: kv-lowrank keeps its own.
  for (bool kivi : {false, true}) {
    auto exactLatent = repack([&](schema::Manifest &m) {
      lowRank(m);
      schema::Encoding &latent =
          *m.mutable_cache(0)->mutable_value()->mutable_latent();
      if (kivi) {
        latent.set_kind(schema::ENCODING_INT);
        latent.set_bits(4);
        latent.set_group(32);
      } else {
        polar(latent);
      }
      latent.set_residual(64);
    });
    EXPECT_NE(errorOf(exactLatent)
                  .find("cache[0].value.latent must be a plain encoding "
                        "without tensors or exact tokens of its own"),
              std::string::npos)
        << (kivi ? "kivi" : "polar");
  }
}

TEST_F(ArtifactTest, RefusesNonPositiveDimension) {
  auto packed = repack(
      [](schema::Manifest &m) { m.mutable_tensors(0)->set_shape(1, -16); });
  EXPECT_NE(errorOf(packed).find("every dimension must be positive"),
            std::string::npos);
}

TEST_F(ArtifactTest, RefusesUnknownKernel) {
  auto packed = repack([](schema::Manifest &m) {
    m.mutable_plan()->mutable_calls(2)->set_kernel("flash_attention");
  });
  EXPECT_EQ(errorOf(packed),
            "x.kvpkg: plan call 2 (model.layers.0.self_attn.q_proj) names "
            "kernel \"flash_attention\", which this runtime does not know");
}

TEST_F(ArtifactTest, RefusesMissingTensor) {
  auto packed = repack([](schema::Manifest &m) {
    m.mutable_plan()->mutable_calls(2)->set_tensors(0, 999);
  });
  EXPECT_EQ(errorOf(packed),
            "x.kvpkg: plan call 2 (model.layers.0.self_attn.q_proj) uses "
            "tensor 999 but the manifest has " +
                std::to_string(manifest.tensors_size()) + " tensors");
}

TEST_F(ArtifactTest, RefusesMissingSlot) {
  auto packed = repack([](schema::Manifest &m) {
    m.mutable_plan()->mutable_calls(2)->set_inputs(0, 5000);
  });
  EXPECT_EQ(errorOf(packed),
            "x.kvpkg: plan call 2 (model.layers.0.self_attn.q_proj) reads slot "
            "5000 but the plan has " +
                std::to_string(manifest.plan().slots_size()) + " slots");
}

TEST_F(ArtifactTest, RefusesSlotReadBeforeWritten) {
  auto packed = repack([](schema::Manifest &m) {
    uint32_t later = m.plan().calls(5).outputs(0);
    m.mutable_plan()->mutable_calls(2)->set_inputs(0, later);
  });
  EXPECT_NE(errorOf(packed).find("before any call writes it"),
            std::string::npos);
}

TEST_F(ArtifactTest, RefusesShapeMismatchInCall) {
  auto packed = repack([](schema::Manifest &m) {
    // q_proj's output slot: one element short.
    uint32_t out = m.plan().calls(2).outputs(0);
    m.mutable_plan()->mutable_slots(int(out))->set_shape(0, 15);
  });
  EXPECT_NE(errorOf(packed).find("do not match"), std::string::npos)
      << errorOf(packed);
}

TEST_F(ArtifactTest, RefusesLayerOutOfRange) {
  auto packed = repack([](schema::Manifest &m) {
    for (auto &call : *m.mutable_plan()->mutable_calls())
      if (call.kernel() == "attention") {
        call.mutable_attention()->set_layer(9);
        break;
      }
  });
  EXPECT_NE(errorOf(packed).find("layer 9 is out of range (the model has 2)"),
            std::string::npos)
      << errorOf(packed);
}

TEST_F(ArtifactTest, RefusesIdsOutOfRange) {
  auto packed = repack(
      [](schema::Manifest &m) { m.mutable_model()->add_eos_token_ids(40); });
  EXPECT_EQ(errorOf(packed), "x.kvpkg: model.eos_token_ids holds 40, outside "
                             "the vocabulary of 40 tokens");
}

TEST_F(ArtifactTest, RefusesGarbageManifest) {
  std::vector<uint8_t> junk = {0xff, 0xff, 0xff, 0xff, 0x0f};
  std::vector<uint8_t> packed = pack({{1, junk}});
  EXPECT_EQ(errorOf(packed),
            "x.kvpkg: the manifest section is not a valid kvpkg manifest");
  EXPECT_EQ(errorOf(pack({})), "x.kvpkg: the file has no manifest section");
}

TEST_F(ArtifactTest, SurvivesRandomCorruption) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> damaged = bytes;
    int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f)
      damaged[rng() % damaged.size()] ^= uint8_t(1 + rng() % 255);
    auto a = Artifact::fromMemory("x.kvpkg", damaged.data(), damaged.size(),
                                  {/*verifyBlobsEagerly=*/true});
    if (!a.isOk()) {
      EXPECT_EQ(a.status().message().rfind("x.kvpkg: ", 0), 0u);
    }
  }
}

} // namespace
