//===- RuntimeDump.cpp - Runs tinystories for the reference check ---------===//
//
// Test tool. `reference MODEL WORK PROMPTS N` opens MODEL (a .kvpkg, or a
// Hugging Face folder it first writes as WORK/model.kvpkg), then for each
// line of PROMPTS (token ids) writes the logits of every prompt token to
// WORK/logits_<i>.f32 and N greedy tokens to WORK/greedy_<i>.txt, for
// reference_forward.py to compare with numpy.
// `bench MODEL WORK N THREADS` measures greedy decode of N tokens.
// `seeds DIR` writes the seed corpus of the artifact fuzzer: a small valid
// artifact, its manifest alone, and damaged copies.
//
//===----------------------------------------------------------------------===//
#include "LlamaArtifact.h"

#include "kvrt/ArtifactWriter.h"
#include "kvrt/Runtime.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

using namespace kvrt;

namespace {

template <typename T> T check(StatusOr<T> value) {
  if (!value) {
    std::cerr << value.status().message() << "\n";
    std::exit(1);
  }
  return std::move(*value);
}

void check(const Status &status) {
  if (!status) {
    std::cerr << status.message() << "\n";
    std::exit(1);
  }
}

/// MODEL is a .kvpkg (as kvopt compile writes it) or a Hugging Face folder
/// written as WORK/model.kvpkg by the test's own plan builder.
std::unique_ptr<Engine> open(const std::string &model, const std::string &work,
                             unsigned threads) {
  std::string path = model;
  if (path.size() < 6 || path.compare(path.size() - 6, 6, ".kvpkg") != 0) {
    path = work + "/model.kvpkg";
    check(test::writeLlamaArtifact(model, path));
  }
  EngineOptions options;
  options.threads = threads;
  return check(Engine::create(check(Artifact::open(path)), options));
}

int reference(const std::string &model, const std::string &work,
              const std::string &promptsFile, int64_t newTokens) {
  std::unique_ptr<Engine> engine = open(model, work, 0);
  std::ifstream prompts(promptsFile);
  std::string line;
  for (int i = 0; std::getline(prompts, line); ++i) {
    std::istringstream ids(line);
    std::vector<int32_t> prompt;
    for (int32_t id; ids >> id;)
      prompt.push_back(id);
    SequenceId s = check(engine->addSequence());
    check(engine->prefill({{s, prompt, true}}));
    const Logits &logits = engine->logits();
    std::ofstream out(work + "/logits_" + std::to_string(i) + ".f32",
                      std::ios::binary);
    out.write(reinterpret_cast<const char *>(logits.values.data()),
              std::streamsize(logits.values.size() * sizeof(float)));
    check(engine->removeSequence(s));

    GenerateOptions g;
    g.maxNewTokens = newTokens;
    g.stopAtEos = false;
    GenerateResult r = check(engine->generate(prompt, g));
    std::ofstream greedy(work + "/greedy_" + std::to_string(i) + ".txt");
    for (int32_t t : r.tokens)
      greedy << t << " ";
  }
  return 0;
}

int bench(const std::string &model, const std::string &work, int64_t tokens,
          unsigned threads) {
  std::unique_ptr<Engine> engine = open(model, work, threads);
  std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 215, 286, 598};
  GenerateOptions g;
  g.maxNewTokens = tokens;
  g.stopAtEos = false;
  std::vector<double> rates;
  for (int run = 0; run < 5; ++run) {
    std::unique_ptr<Engine> e = open(model, work, threads);
    check(e->generate(prompt, g));
    rates.push_back(e->stats().decodeTokensPerSecond());
  }
  std::sort(rates.begin(), rates.end());
  std::printf("threads %u: %lld greedy tokens after an %zu-token prompt, "
              "decode %.0f tokens/s (median of 5, min %.0f, max %.0f)\n",
              threads, static_cast<long long>(tokens), prompt.size(), rates[2],
              rates[0], rates[4]);
  return 0;
}

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out)
    check(Status::error("cannot write '" + path + "'"));
}

int seeds(const std::string &dir) {
  test::RandomLlama model = test::makeRandomLlama(7);
  ArtifactWriter writer;
  check(test::buildLlama(writer, model.config, model.weights, {}));
  std::string path = dir + "/random-llama.kvpkg";
  check(writer.write(path));
  std::ifstream in(path, std::ios::binary);
  std::string file((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  std::shared_ptr<const Artifact> artifact = check(Artifact::open(path));
  writeBytes(dir + "/random-llama.manifest",
             artifact->manifest().SerializeAsString());
  writeBytes(dir + "/bad-truncated.kvpkg", file.substr(0, file.size() / 2));
  std::string magic = file;
  magic[0] = 'X';
  writeBytes(dir + "/bad-magic.kvpkg", magic);
  std::string flipped = file;
  flipped[flipped.size() - 1] ^= 0x40;
  writeBytes(dir + "/bad-checksum.kvpkg", flipped);

  // The same model bounded by TriAttention: an evict call per layer with
  // its centre tensors, for mutations to reach their validation.
  test::LlamaArtifactOptions evicting;
  schema::EvictParams &e = evicting.evict.emplace();
  e.set_method(schema::EVICT_METHOD_TRIATTENTION);
  e.set_budget_tokens(64);
  e.set_window(16);
  e.set_interval(8);
  int64_t pairs = model.config.num_heads() * (model.config.head_dim() / 2);
  evicting.queryCentre.assign(size_t(2 * pairs), 0.5f);
  evicting.queryMagnitude.assign(size_t(pairs), 1.0f);
  ArtifactWriter evictWriter;
  check(test::buildLlama(evictWriter, model.config, model.weights, evicting));
  std::string evictPath = dir + "/random-llama-evict.kvpkg";
  check(evictWriter.write(evictPath));
  writeBytes(dir + "/random-llama-evict.manifest",
             check(Artifact::open(evictPath))->manifest().SerializeAsString());

  // The same model selecting sparsely in every layer's attention, and
  // offloaded, for mutations to reach their validation.
  test::LlamaArtifactOptions selecting;
  schema::SelectParams &select = selecting.select.emplace();
  select.set_block(8);
  select.set_top_blocks(4);
  select.set_top_tokens(16);
  schema::PrefetchParams &prefetch = selecting.prefetch.emplace();
  prefetch.set_device_pages(8);
  prefetch.set_runners_up(2);
  ArtifactWriter selectWriter;
  check(test::buildLlama(selectWriter, model.config, model.weights, selecting));
  std::string selectPath = dir + "/random-llama-select.kvpkg";
  check(selectWriter.write(selectPath));
  writeBytes(dir + "/random-llama-select.manifest",
             check(Artifact::open(selectPath))->manifest().SerializeAsString());
  std::remove(selectPath.c_str());

  // The first model with its norm weights synthetic (a constant) and its
  // embedding generated: mutations reach the synthetic fields' checks.
  schema::Manifest synthetic = artifact->manifest();
  for (schema::Tensor &t : *synthetic.mutable_tensors()) {
    if (t.name().find("norm") != std::string::npos)
      t.mutable_synthetic()->set_constant(1.0f);
    else if (t.name().find("embed") != std::string::npos)
      t.mutable_synthetic()->set_bound(0.05f);
  }
  writeBytes(dir + "/random-llama-synthetic.manifest",
             synthetic.SerializeAsString());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 5 && args[0] == "reference")
    return reference(args[1], args[2], args[3], std::stoll(args[4]));
  if (args.size() == 5 && args[0] == "bench")
    return bench(args[1], args[2], std::stoll(args[3]),
                 unsigned(std::stoul(args[4])));
  if (args.size() == 2 && args[0] == "seeds")
    return seeds(args[1]);
  std::cerr << "usage: kvrt-runtime-dump reference MODEL WORK PROMPTS N\n"
               "       kvrt-runtime-dump bench MODEL WORK N THREADS\n"
               "       kvrt-runtime-dump seeds DIR\n";
  return 2;
}
