//===- Tune.cpp - kvopt tune: the smallest cache within a quality budget
//---===//
//
// Compiles the model once per candidate cache encoding, scores each as
// `kvopt eval --task ppl` does (decode mode, the same windows of one text),
// and writes the policy of the candidate with the fewest bytes per token
// whose perplexity stays within --max-quality-loss of the bf16 cache's. The
// candidates are the encodings every target's kernels run (the cuda backend
// runs each of them with its exact window), so --target only names the
// target the policy is written for; the quality measured on the cpu backend
// holds on the GPU, whose kernels write the CPU codecs' bytes.
//
//===----------------------------------------------------------------------===//
#include "compiler/policy/Policy.h"
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/Compile.h"
#include "tools/kvopt/Eval.h"
#include "tools/kvopt/OutputFile.h"
#include "tools/kvopt/Progress.h"

#include "kvrt/Artifact.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace kvopt::cli {

namespace {
struct TuneOptions {
  std::string model, target = "cpu", maxQualityLoss = "1%", data, output;
  int64_t context = 2048, maxTokens = 4095;
  unsigned threads = 0;
};

/// A cache encoding tune tries, as the policy file it would write.
struct Candidate {
  const char *name;
  const char *policy;
};

/// The reference first; the others are kept exact over each sequence's
/// 128 newest tokens where the encoding has such a window (KIVI's residual
/// is its own), which costs little memory at long context and much less
/// quality (README, quantization quality).
const Candidate kCandidates[] = {
    {"bf16", "quantize:\n  encoding: bf16\n"},
    {"polar-2, 128 exact",
     "quantize:\n  encoding: polar\n  bits: 2\n  window: 128\n"},
    {"KIVI-2", "quantize:\n  encoding: int\n  bits: 2\n"},
    {"polar-3, 128 exact",
     "quantize:\n  encoding: polar\n  bits: 3\n  window: 128\n"},
    {"nvfp4, 128 exact", "quantize:\n  encoding: nvfp4\n  window: 128\n"},
    {"polar-4, 128 exact",
     "quantize:\n  encoding: polar\n  bits: 4\n  window: 128\n"},
    {"KIVI-4", "quantize:\n  encoding: int\n  bits: 4\n"},
    {"fp8", "quantize:\n  encoding: fp8\n"},
};

struct Scored {
  const Candidate *candidate;
  PerplexityScore score;
  PplChange change;
};

/// "1%" or "0.01" as a fraction; nullopt for anything else or outside
/// (0, 1].
std::optional<double> parseLoss(const std::string &text) {
  bool percent = !text.empty() && text.back() == '%';
  std::string number = percent ? text.substr(0, text.size() - 1) : text;
  char *end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size())
    return std::nullopt;
  if (percent)
    value /= 100;
  if (!(value > 0 && value <= 1))
    return std::nullopt;
  return value;
}

std::string today() {
  std::time_t now = std::time(nullptr);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

/// The policy file: what was measured and how, then the chosen setting.
std::string policyText(const Scored &chosen, const Scored &reference,
                       const TuneOptions &o, double loss) {
  std::ostringstream out;
  out << "# kvopt policy for " << o.target << ", chosen by kvopt tune on "
      << today() << ": the cache with the\n# fewest bytes per token whose "
      << "perplexity is within " << format("%g", 100 * loss)
      << "% of the bf16 cache's on\n# " << o.data << " ("
      << chosen.score.scores.tokens << " tokens scored, windows of "
      << o.context << " tokens).\n#   " << chosen.candidate->name << ": "
      << bytesPerToken(chosen.score.kvBytesPerToken) << " bytes/token, "
      << format("%.2fx",
                reference.score.kvBytesPerToken / chosen.score.kvBytesPerToken)
      << " smaller than bf16, ppl " << format("%+.2f%%", chosen.change.percent)
      << format(" (standard error %.2f%%)", chosen.change.standardError)
      << "\n#   kvopt tune " << o.model << " --target " << o.target
      << " --max-quality-loss " << o.maxQualityLoss << " --context "
      << o.context << " --max-tokens " << o.maxTokens << " --data " << o.data
      << "\n"
      << chosen.candidate->policy;
  return out.str();
}

int runTune(TuneOptions o) {
  Progress progress("tune");
  auto fail = [&](const std::string &message) {
    progress.clear();
    std::cerr << "kvopt tune: " << message << "\n";
    return 1;
  };
  std::optional<double> loss = parseLoss(o.maxQualityLoss);
  if (!loss)
    return fail("--max-quality-loss must be a fraction or a percentage above "
                "0 and at most 100% (0.01 or 1%), not " +
                o.maxQualityLoss);
  if (o.context < 2)
    return fail("--context must be at least 2 tokens");
  if (o.maxTokens < 1)
    return fail("--max-tokens must be at least 1");
  if (o.data.empty())
    o.data = dataDirectory() + "/data/pride-and-prejudice.txt";
  if (std::string problem = outputFileProblem(o.output); !problem.empty())
    return fail("-o: " + problem);

  // One candidate's artifact at a time, in a folder of this run's own.
  std::string pattern =
      (std::filesystem::temp_directory_path() / "kvopt-tune-XXXXXX").string();
  if (!mkdtemp(pattern.data()))
    return fail("cannot make a temporary folder under " +
                std::filesystem::temp_directory_path().string());
  struct RemoveFolder {
    std::string path;
    ~RemoveFolder() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } folder{pattern};

  std::vector<Scored> scored;
  std::vector<std::string> skipped;
  for (const Candidate &candidate : kCandidates) {
    kvrt::StatusOr<policy::Policy> policy =
        policy::parsePolicy(candidate.policy, candidate.name);
    if (!policy)
      return fail(policy.status().message());
    CompileOptions compile;
    compile.model = o.model;
    compile.target = o.target;
    compile.output = folder.path + "/candidate.kvpkg";
    progress.step(std::string("compiling ") + candidate.name);
    kvrt::Status compiled =
        compileArtifact(compile, policy::pipelineText(*policy), progress);
    // A model may not take every encoding (KIVI groups of 32 channels need
    // a head dimension they divide): that candidate is left out, said why.
    if (!compiled && scored.empty())
      return fail(compiled.message());
    if (!compiled) {
      skipped.push_back(std::string(candidate.name) + ": " +
                        compiled.message());
      continue;
    }
    if (scored.empty()) {
      auto artifact = kvrt::Artifact::open(compile.output);
      if (!artifact)
        return fail(artifact.status().message());
      int64_t positions = (*artifact)->manifest().model().max_positions();
      if (o.context > positions)
        return fail("--context " + std::to_string(o.context) +
                    " is longer than the " + std::to_string(positions) +
                    " positions of " + o.model);
    }
    progress.step(std::string("scoring ") + candidate.name + " on " + o.data);
    auto score = scorePerplexity(compile.output, o.data, o.context, o.maxTokens,
                                 o.threads);
    if (!score)
      return fail(score.status().message());
    PplChange change = scored.empty() ? PplChange{}
                                      : perplexityChange(scored[0].score.scores,
                                                         score->scores);
    scored.push_back({&candidate, std::move(*score), change});
  }
  progress.clear();

  // The reference first, then the rest from the smallest cache up.
  std::stable_sort(scored.begin() + 1, scored.end(),
                   [](const Scored &a, const Scored &b) {
                     return a.score.kvBytesPerToken < b.score.kvBytesPerToken;
                   });
  const Scored &reference = scored[0];
  const Scored *chosen = &reference;
  for (const Scored &s : scored)
    if (s.change.percent <= 100 * *loss &&
        s.score.kvBytesPerToken < chosen->score.kvBytesPerToken)
      chosen = &s;
  std::printf("%-20s %12s %8s %9s %18s\n", "cache", "bytes/token", "vs bf16",
              "ppl", "change (s.e.)");
  for (const Scored &s : scored)
    std::printf("%-20s %12s %8s %9.3f %18s%s\n", s.candidate->name,
                bytesPerToken(s.score.kvBytesPerToken).c_str(),
                format("%.2fx", reference.score.kvBytesPerToken /
                                    s.score.kvBytesPerToken)
                    .c_str(),
                s.score.scores.perplexity(),
                &s == &reference ? "reference"
                                 : (format("%+.2f%%", s.change.percent) +
                                    format(" (%.2f%%)", s.change.standardError))
                                       .c_str(),
                &s == chosen ? "  <- chosen" : "");
  for (const std::string &why : skipped)
    std::printf("left out %s\n", why.c_str());
  if (chosen == &reference)
    std::printf("no compressed cache is within %s of bf16's perplexity; the "
                "policy keeps bf16\n",
                format("%g%%", 100 * *loss).c_str());
  std::fflush(stdout);
  return writeOutputFile(o.output, [&](std::ostream &os) {
    os << policyText(*chosen, reference, o, *loss);
    return bool(os);
  });
}
} // namespace

void addTuneCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<TuneOptions>();
  CLI::App *sub = app.add_subcommand(
      "tune", "Find the smallest KV cache within a perplexity budget and "
              "write its policy");
  sub->add_option("model", o->model, "Model folder, .gguf, .onnx or `default`")
      ->required();
  sub->add_option("--target", o->target,
                  "cpu | h100 | h200: the target the policy is for")
      ->check(CLI::IsMember({"cpu", "h100", "h200"}))
      ->capture_default_str();
  sub->add_option("--max-quality-loss", o->maxQualityLoss,
                  "Largest perplexity increase over the bf16 cache, as a "
                  "fraction (0.01) or a percentage (1%)")
      ->capture_default_str();
  sub->add_option("--context", o->context,
                  "Tokens per scoring window (at most the model's positions)")
      ->capture_default_str();
  sub->add_option("--max-tokens", o->maxTokens, "Tokens scored")
      ->capture_default_str();
  sub->add_option("--data", o->data,
                  "UTF-8 text to score (default: the installed Pride and "
                  "Prejudice)");
  sub->add_option("--threads", o->threads, "Threads (0: every core)");
  sub->add_option("-o,--output", o->output, "Policy file to write")->required();
  sub->callback([o, &exitCode] { exitCode = runTune(*o); });
}

} // namespace kvopt::cli
