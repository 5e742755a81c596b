//===- EngineSupport.cpp --------------------------------------------------===//
#include "EngineSupport.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace kvrt::test {

std::shared_ptr<const Artifact>
openTinyStories(const std::string &name, const LlamaArtifactOptions &options) {
  std::string path = ::testing::TempDir() + "/" + name + ".kvpkg";
  Status written = writeLlamaArtifact(tinyStoriesDir(), path, options);
  EXPECT_TRUE(written.isOk()) << written.message();
  auto opened = Artifact::open(path);
  EXPECT_TRUE(opened.isOk()) << opened.status().message();
  return opened.isOk() ? *opened : nullptr;
}

std::unique_ptr<Engine> engineOrDie(std::shared_ptr<const Artifact> artifact,
                                    EngineOptions options) {
  auto e = Engine::create(std::move(artifact), options);
  if (!e.isOk()) {
    ADD_FAILURE() << e.status().message();
    std::abort();
  }
  return std::move(*e);
}

} // namespace kvrt::test
