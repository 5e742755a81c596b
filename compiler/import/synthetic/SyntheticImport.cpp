//===- SyntheticImport.cpp - Models with random weights -------------------===//
#include "compiler/import/synthetic/SyntheticImport.h"
#include "compiler/import/DecoderBuilder.h"
#include "compiler/import/synthetic/RandomWeights.h"

#include <numeric>

namespace kvopt::import {
namespace {

struct Preset {
  const char *name;
  const char *summary;
  int64_t layers, hidden, heads, kvHeads, headDim, ffn, vocab, positions;
  double ropeTheta, rmsNormEps;
  bool tied;
};

// Llama-3.1-8B's shapes; its rope scaling (llama3, factor 8) is not
// applied: plain RoPE costs the same and every backend runs it.
constexpr Preset kPresets[] = {
    {"llama3-8b",
     "Llama-3.1-8B shapes (32 layers, hidden 4096, 32/8 heads of 128, ffn "
     "14336, vocab 128256, 131072 positions, plain RoPE theta 500000: "
     "no rope scaling), bf16, 16 GB stored",
     32, 4096, 32, 8, 128, 14336, 128256, 131072, 500000.0, 1e-5, false},
    {"llama-tiny",
     "2 layers, hidden 256, 4/2 heads of 64, ffn 512, vocab 512, 4096 "
     "positions, bf16 (tests)",
     2, 256, 4, 2, 64, 512, 512, 4096, 500000.0, 1e-5, false},
};

/// Projection and embedding weights are uniform in [-bound, bound), whose
/// standard deviation is bound / sqrt(3): 0.02, small enough that
/// activations stay finite through every layer.
constexpr float kWeightBound = 0.0346410162f;
constexpr int64_t kBosId = 256, kEosId = 257;

ModelConfig configOf(const Preset &p) {
  ModelConfig c;
  c.architecture = "llama";
  c.vocabSize = p.vocab;
  c.hiddenSize = p.hidden;
  c.intermediateSize = p.ffn;
  c.numLayers = p.layers;
  c.numHeads = p.heads;
  c.numKvHeads = p.kvHeads;
  c.headDim = p.headDim;
  c.maxPositions = p.positions;
  c.rmsNormEps = p.rmsNormEps;
  c.ropeTheta = p.ropeTheta;
  c.tieWordEmbeddings = p.tied;
  c.bosId = kBosId;
  c.eosIds = {kEosId};
  return c;
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Every weight of the decoder, produced on demand from the seed.
class RandomWeightSource : public WeightSource {
public:
  RandomWeightSource(const ModelConfig &config, uint64_t seed, bool generated)
      : config(config), seed(seed), generated(generated) {}

  bool has(const std::string &name) const override {
    return name != "lm_head.weight" || !config.tieWordEmbeddings;
  }

  kvrt::StatusOr<Weight> get(const std::string &name,
                             const std::vector<int64_t> &shape) override {
    if (!has(name))
      return kvrt::Status::error("a synthetic model has no weight '" + name +
                                 "'");
    uint64_t count = std::accumulate(shape.begin(), shape.end(), uint64_t(1),
                                     std::multiplies<uint64_t>());
    GeneratedValues values;
    values.seed = synthetic::tensorSeed(seed, name);
    if (endsWith(name, "norm.weight"))
      values.constant = 1.0f;
    else if (!endsWith(name, ".bias"))
      values.bound = kWeightBound;
    Weight w;
    w.type = WeightType::BF16;
    w.shape = shape;
    w.byteSize = count * sizeof(uint16_t);
    if (generated)
      w.deferred.generated = values;
    else
      w.deferred.producer = synthetic::streamBf16(values, count);
    return w;
  }

private:
  ModelConfig config;
  uint64_t seed;
  bool generated;
};

/// GPT-2's printable spelling of byte `b` (its bytes_to_unicode table), as
/// UTF-8.
std::string byteLevelSpelling(uint8_t b) {
  auto printable = [](unsigned c) {
    return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
  };
  unsigned code = b;
  if (!printable(b)) {
    // The bytes without a printable self take 256, 257, ... in order.
    code = 256;
    for (unsigned c = 0; c < b; ++c)
      code += !printable(c);
  }
  if (code < 0x80)
    return std::string(1, char(code));
  return {char(0xC0 | (code >> 6)), char(0x80 | (code & 0x3F))};
}

/// One token per byte, begin and end of text, then unused tokens up to the
/// vocabulary size: honest about what a random model can say.
kvrt::GgufTokenizerFields byteTokenizer(int64_t vocabSize) {
  kvrt::GgufTokenizerFields t;
  t.model = "gpt2";
  t.pre = "llama3";
  for (unsigned b = 0; b < 256; ++b) {
    t.tokens.push_back(byteLevelSpelling(uint8_t(b)));
    t.tokenTypes.push_back(1); // normal
  }
  t.tokens.push_back("<|begin_of_text|>");
  t.tokens.push_back("<|end_of_text|>");
  t.tokenTypes.insert(t.tokenTypes.end(), 2, 3); // control
  for (int64_t id = int64_t(t.tokens.size()); id < vocabSize; ++id) {
    t.tokens.push_back("<|unused_" + std::to_string(id) + "|>");
    t.tokenTypes.push_back(5); // unused
  }
  t.bosId = kBosId;
  t.eosId = kEosId;
  return t;
}

} // namespace

std::vector<std::pair<std::string, std::string>> syntheticPresets() {
  std::vector<std::pair<std::string, std::string>> presets;
  for (const Preset &p : kPresets)
    presets.emplace_back(p.name, p.summary);
  return presets;
}

kvrt::StatusOr<ImportedModel> importSynthetic(mlir::MLIRContext &context,
                                              const std::string &name,
                                              uint64_t seed,
                                              SyntheticWeights where) {
  const Preset *preset = nullptr;
  std::string names;
  for (const Preset &p : kPresets) {
    if (name == p.name)
      preset = &p;
    names += std::string(names.empty() ? "" : ", ") + p.name;
  }
  if (!preset)
    return kvrt::Status::error("unknown synthetic model '" + name +
                               "'; the presets are " + names);
  ImportedModel imported;
  imported.config = configOf(*preset);
  RandomWeightSource weights(imported.config, seed,
                             where == SyntheticWeights::Generated);
  std::string sourceName =
      "synthetic " + name + " (seed " + std::to_string(seed) + ")";
  auto module = buildDecoderModule(context, imported.config, weights,
                                   sourceName, &imported.deferred);
  if (!module)
    return module.status();
  imported.module = std::move(*module);
  imported.tokenizer.gguf = byteTokenizer(preset->vocab);
  imported.tokenizer.sourceName = sourceName;
  return imported;
}

} // namespace kvopt::import
