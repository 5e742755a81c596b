//===- Inspect.cpp - kvopt inspect: what an artifact holds ----------------===//
//
// Reads the manifest only (blobs are neither read nor checksummed), so
// inspecting a large artifact is instant. Needs nothing but libkvrt.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Commands.h"

#include "kvrt/Artifact.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <map>

namespace kvopt::cli {

namespace {
namespace schema = kvrt::schema;

/// "bf16", "int<bits=2 group=32 residual=128>", ...
std::string describeEncoding(const schema::Encoding &e) {
  std::string name = kvrt::encodingName(e.kind());
  switch (e.kind()) {
  case schema::ENCODING_FP8:
    return name +
           (e.fp8_format() == schema::FP8_FORMAT_E4M3 ? "<e4m3" : "<e5m2") +
           (e.scale_mode() == schema::SCALE_MODE_PER_HEAD ? " per_head>"
                                                          : " dynamic>");
  case schema::ENCODING_INT:
    return name + "<bits=" + std::to_string(e.bits()) +
           " group=" + std::to_string(e.group()) +
           " residual=" + std::to_string(e.residual()) + ">";
  case schema::ENCODING_POLAR:
    return name + "<bits=" + std::to_string(e.bits()) +
           " seed=" + std::to_string(e.seed()) + (e.qjl() ? " qjl" : "") + ">";
  case schema::ENCODING_LOWRANK:
    return name + "<rank=" + std::to_string(e.rank()) + " " +
           describeEncoding(e.latent()) + ">";
  default:
    return name;
  }
}

/// Bytes one head's vector takes, for the encodings whose page layout this
/// runtime defines; 0 for the others.
uint64_t vectorBytes(const schema::Encoding &e, uint32_t headDim) {
  switch (e.kind()) {
  case schema::ENCODING_F32:
    return 4ull * headDim;
  case schema::ENCODING_BF16:
    return 2ull * headDim;
  default:
    return 0;
  }
}

/// Whether two layers' caches are laid out alike (all but the layer number).
bool sameLayout(schema::CacheLayout a, schema::CacheLayout b) {
  a.clear_layer();
  b.clear_layer();
  return a.SerializeAsString() == b.SerializeAsString();
}

int runInspect(const std::string &path) {
  auto artifact = kvrt::Artifact::open(path);
  if (!artifact) {
    std::cerr << "kvopt inspect: " << artifact.status().message() << "\n";
    return 1;
  }
  const kvrt::Artifact &a = **artifact;
  const schema::Manifest &m = a.manifest();
  const schema::ModelConfig &c = m.model();
  std::printf("%s: kvpkg %u.%u, %s, written by %s for target %s\n",
              path.c_str(), a.formatMajor(), a.formatMinor(),
              megabytes(a.fileSize()).c_str(), m.producer().c_str(),
              m.target().name().c_str());
  std::printf("model: %s, %lld layers, hidden %lld, %lld query / %lld KV "
              "heads of %lld, ffn %lld, vocab %lld, context %lld, rope theta "
              "%g (%s)%s\n",
              c.architecture().c_str(), (long long)c.num_layers(),
              (long long)c.hidden_size(), (long long)c.num_heads(),
              (long long)c.num_kv_heads(), (long long)c.head_dim(),
              (long long)c.intermediate_size(), (long long)c.vocab_size(),
              (long long)c.max_positions(), c.rope().theta(),
              c.rope().style() == schema::ROPE_STYLE_HALF ? "half"
                                                          : "interleaved",
              c.tie_word_embeddings() ? ", tied embeddings" : "");

  const schema::Tokenizer &t = m.tokenizer();
  if (t.has_hf())
    std::printf("tokenizer: Hugging Face tokenizer.json (%zu bytes)\n",
                t.hf().tokenizer_json().size());
  else if (t.has_gguf())
    std::printf("tokenizer: GGUF %s vocabulary, %d tokens, %d merges\n",
                t.gguf().model().c_str(), t.gguf().tokens_size(),
                t.gguf().merges_size());
  else
    std::printf("tokenizer: none (run takes token ids)\n");

  if (m.passes_size() == 0)
    std::printf("passes: none\n");
  for (const schema::PassRecord &p : m.passes())
    std::printf("pass: %s%s\n", p.name().c_str(), p.options().c_str());

  // Layers that share one layout print as one row.
  std::printf("cache:\n");
  uint64_t total = 0, bf16 = 0;
  bool known = true;
  int first = 0;
  for (int i = 0; i < m.cache_size(); ++i) {
    const schema::CacheLayout &l = m.cache(i);
    uint64_t key = vectorBytes(l.key(), l.head_dim());
    uint64_t value = vectorBytes(l.value(), l.head_dim());
    known = known && key && value;
    total += l.kv_heads() * (key + value);
    bf16 += l.kv_heads() * 4ull * l.head_dim();
    bool last = i + 1 == m.cache_size();
    if (!last && sameLayout(l, m.cache(i + 1)))
      continue;
    std::string layers = first == i ? "layer " + std::to_string(first)
                                    : "layers " + std::to_string(first) + "-" +
                                          std::to_string(i);
    std::printf("  %-12s key %s, value %s, %u KV heads x %u, page %u tokens",
                layers.c_str(), describeEncoding(l.key()).c_str(),
                describeEncoding(l.value()).c_str(), l.kv_heads(), l.head_dim(),
                l.page_size());
    if (key && value)
      std::printf(", %llu bytes/token/layer\n",
                  (unsigned long long)(l.kv_heads() * (key + value)));
    else
      std::printf(", layout not defined by this runtime\n");
    first = i + 1;
  }
  if (known && bf16)
    std::printf("  total %llu bytes/token (%.2fx of a bf16 cache: %llu)\n",
                (unsigned long long)total, double(total) / double(bf16),
                (unsigned long long)bf16);

  std::map<std::string, int> kernels;
  for (const schema::KernelCall &call : m.plan().calls())
    ++kernels[call.kernel()];
  std::printf("plan: %d kernel calls (", m.plan().calls_size());
  bool firstKernel = true;
  for (const auto &[kernel, count] : kernels) {
    std::printf("%s%s %d", firstKernel ? "" : ", ", kernel.c_str(), count);
    firstKernel = false;
  }
  std::printf("), %d slots\n", m.plan().slots_size());

  uint64_t blobBytes = 0;
  for (uint32_t i = 0; i < a.blobCount(); ++i)
    blobBytes += a.blobSize(i);
  std::printf("sections: manifest %s, %zu blobs %s\n",
              megabytes(a.manifestSize()).c_str(), a.blobCount(),
              megabytes(blobBytes).c_str());
  return 0;
}
} // namespace

void addInspectCommand(CLI::App &app, int &exitCode) {
  auto artifact = std::make_shared<std::string>();
  CLI::App *sub = app.add_subcommand(
      "inspect", "Show what an artifact contains and its bytes per token");
  sub->add_option("artifact", *artifact, "Compiled .kvpkg")->required();
  sub->callback([artifact, &exitCode] { exitCode = runInspect(*artifact); });
}

} // namespace kvopt::cli
