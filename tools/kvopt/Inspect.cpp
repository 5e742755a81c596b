//===- Inspect.cpp - kvopt inspect: what an artifact holds ----------------===//
//
// Reads the manifest only (blobs are neither read nor checksummed), so
// inspecting a large artifact is instant. Needs nothing but libkvrt.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/CacheEncoding.h"
#include "tools/kvopt/Commands.h"

#include "kvrt/Artifact.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>

namespace kvopt::cli {

namespace {
namespace schema = kvrt::schema;

/// Whether two layers' caches are laid out alike (all but the layer number).
bool sameLayout(schema::CacheLayout a, schema::CacheLayout b) {
  a.clear_layer();
  b.clear_layer();
  return a.SerializeAsString() == b.SerializeAsString();
}

/// Under `title`, one row per run of layers that `described` describes
/// alike ("none" where it has no entry); nothing when it is empty.
void printLayerRuns(const schema::Manifest &m, const char *title,
                    const std::map<uint32_t, std::string> &described) {
  if (described.empty())
    return;
  std::printf("%s:\n", title);
  auto describe = [&](int layer) {
    auto found = described.find(uint32_t(layer));
    return found == described.end() ? std::string("none") : found->second;
  };
  int first = 0;
  for (int i = 0; i < m.cache_size(); ++i) {
    std::string row = describe(i);
    if (i + 1 < m.cache_size() && describe(i + 1) == row)
      continue;
    std::string layers = first == i ? "layer " + std::to_string(first)
                                    : "layers " + std::to_string(first) + "-" +
                                          std::to_string(i);
    std::printf("  %-12s %s\n", layers.c_str(), row.c_str());
    first = i + 1;
  }
}

/// How the layer of `c` selects, with what its block summaries cost.
std::string describeSelection(const schema::SelectParams &s,
                              const schema::CacheLayout &c) {
  const double summaryBytes = kvrt::summaryBytesPerToken(c, s);
  return std::to_string(s.top_tokens()) + " entries of the top " +
         std::to_string(s.top_blocks()) + " blocks of " +
         std::to_string(s.block()) + " per decode step, summaries " +
         bytesPerToken(summaryBytes) + " bytes/token";
}

/// Where an offloaded layer's pages live and what is prefetched.
std::string describeOffload(const schema::PrefetchParams &p) {
  char ratio[32];
  std::snprintf(ratio, sizeof(ratio), "%g", p.device_ratio());
  return (p.has_device_pages()
              ? std::to_string(p.device_pages()) + " KV-head pages"
              : std::string(ratio) + " of the page pool") +
         " on the device, " + std::to_string(p.runners_up()) +
         " runner-up blocks prefetched, " +
         (p.mode() == schema::PREFETCH_MODE_NEXT_STEP ? "next step"
                                                      : "next layer");
}

void printPolicies(const schema::Manifest &m) {
  std::map<uint32_t, std::string> evicting, selecting, offloading;
  for (const schema::KernelCall &call : m.plan().calls()) {
    if (call.has_prefetch())
      offloading[call.prefetch().layer()] = describeOffload(call.prefetch());
    if (call.has_evict())
      evicting[call.evict().layer()] = describeEviction(call.evict());
    if (call.has_attention() && call.attention().has_select() &&
        call.attention().layer() < uint32_t(m.cache_size()))
      selecting[call.attention().layer()] = describeSelection(
          call.attention().select(), m.cache(int(call.attention().layer())));
  }
  printLayerRuns(m, "eviction", evicting);
  if (std::optional<std::string> budget = describeAllocatedBudget(m))
    std::printf("  budget shared across the layers: %s\n", budget->c_str());
  printLayerRuns(m, "sparse selection", selecting);
  printLayerRuns(m, "offload", offloading);
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
  if (const schema::Calibration &c = m.calibration(); c.tokens() > 0)
    std::printf("calibration: %llu tokens of %s (xxh64 %016llx) in windows "
                "of %llu\n",
                (unsigned long long)c.tokens(), c.source().c_str(),
                (unsigned long long)c.source_xxh64(),
                (unsigned long long)c.window());

  // Layers that share one layout print as one row.
  std::printf("cache:\n");
  double total = 0, bf16 = 0;
  bool known = true;
  int first = 0;
  for (int i = 0; i < m.cache_size(); ++i) {
    const schema::CacheLayout &l = m.cache(i);
    kvrt::StatusOr<double> bytes = kvrt::cacheBytesPerToken(l);
    double layerBf16 = 4.0 * l.kv_heads() * l.head_dim();
    known = known && bytes.isOk();
    total += bytes ? *bytes : 0;
    bf16 += layerBf16;
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
    if (bytes)
      std::printf(", %s bytes/token/layer, compression %.2fx vs bf16\n",
                  bytesPerToken(*bytes).c_str(), layerBf16 / *bytes);
    else
      std::printf(", not storable by this runtime: %s\n",
                  bytes.status().message().c_str());
    first = i + 1;
  }
  if (known && total > 0)
    std::printf("  total %s bytes/token, compression %.2fx vs a bf16 cache "
                "of %s\n",
                bytesPerToken(total).c_str(), bf16 / total,
                bytesPerToken(bf16).c_str());
  printPolicies(m);

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
  // Weights by element format, in the schema's order: "211 q4_1, 61 f32".
  std::map<int, int> formats;
  for (const schema::Tensor &t : m.tensors())
    ++formats[int(t.dtype())];
  std::string weights;
  for (auto [dtype, count] : formats)
    weights += (weights.empty() ? "" : ", ") + std::to_string(count) + " " +
               kvrt::dtypeName(schema::DType(dtype));
  std::printf("weights: %s\n", weights.c_str());
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
