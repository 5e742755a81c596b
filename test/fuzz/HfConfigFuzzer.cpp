//===- HfConfigFuzzer.cpp - config.json's reader on any bytes -------------===//
//
// A refusal must name the file; an accepted config must hold what the
// importer builds on: positive sizes, a KV head count that divides the
// query heads, an even head dimension, finite positive norms and RoPE
// bases, token ids inside the vocabulary.
//
//===----------------------------------------------------------------------===//
#include "compiler/import/hf/HfConfig.h"

#include "FuzzCheck.h"

#include <cmath>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  kvrt::StatusOr<kvopt::import::ModelConfig> config =
      kvopt::import::parseHfConfig(text, "fuzz/config.json");
  if (!config) {
    kvopt::fuzz::checkRefusal(config.status(), "fuzz/config.json");
    return 0;
  }
  const kvopt::import::ModelConfig &c = *config;
  for (int64_t size :
       {c.vocabSize, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads,
        c.numKvHeads, c.headDim, c.maxPositions})
    kvopt::fuzz::require(size > 0, "an accepted size is not positive");
  kvopt::fuzz::require(c.numHeads % c.numKvHeads == 0,
                       "KV heads do not divide the query heads");
  kvopt::fuzz::require(c.headDim % 2 == 0, "an odd head dimension");
  kvopt::fuzz::require(std::isfinite(c.rmsNormEps) && c.rmsNormEps > 0 &&
                           std::isfinite(c.ropeTheta) && c.ropeTheta > 0,
                       "a norm epsilon or RoPE base that is not positive");
  kvopt::fuzz::require(!c.slidingWindow || *c.slidingWindow > 0,
                       "a window that is not positive");
  if (c.bosId)
    kvopt::fuzz::require(*c.bosId >= 0 && *c.bosId < c.vocabSize,
                         "a BOS id outside the vocabulary");
  for (int64_t eos : c.eosIds)
    kvopt::fuzz::require(eos >= 0 && eos < c.vocabSize,
                         "an EOS id outside the vocabulary");
  return 0;
}
