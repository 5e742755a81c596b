//===- EngineSupport.h - Artifacts and engines for engine tests -*- C++ -*-===//
#ifndef KVRT_TEST_ENGINESUPPORT_H
#define KVRT_TEST_ENGINESUPPORT_H

#include "LlamaArtifact.h"
#include "kvrt/Runtime.h"

#include <memory>
#include <string>

namespace kvrt::test {

/// The tinystories model written with `options` to the test's temporary
/// folder as `name`.kvpkg and opened; a test failure and null when either
/// fails.
std::shared_ptr<const Artifact>
openTinyStories(const std::string &name, const LlamaArtifactOptions &options);

/// An engine of `artifact`. Later steps dereference it, so when it cannot
/// be made the test binary stops here rather than crash.
std::unique_ptr<Engine> engineOrDie(std::shared_ptr<const Artifact> artifact,
                                    EngineOptions options = {});

} // namespace kvrt::test

#endif // KVRT_TEST_ENGINESUPPORT_H
