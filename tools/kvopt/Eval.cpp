//===- Eval.cpp - kvopt eval: quality with the compressed cache in use ----===//
//
// Perplexity and attention fidelity of one or more artifacts over the same
// token windows of one text (see SlidingWindows.h), side by side in a table
// on stdout, and passkey retrieval over a grid of lengths and depths (see
// Passkey.h), a grid per artifact; with --json, all of it in a file. Needs
// nothing but libkvrt: the runtime-only kvopt has it too.
//
//===----------------------------------------------------------------------===//
#include "tools/kvopt/Eval.h"
#include "tools/kvopt/CacheEncoding.h"
#include "tools/kvopt/Commands.h"
#include "tools/kvopt/JsonWriter.h"
#include "tools/kvopt/OutputFile.h"
#include "tools/kvopt/Passkey.h"
#include "tools/kvopt/Progress.h"
#include "tools/kvopt/SlidingWindows.h"

#include "kvrt/Json.h"
#include "kvrt/Runtime.h"
#include "kvrt/Tokenizer.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sys/stat.h>

namespace kvopt::cli {

namespace {
/// Windows scored at once: a decode step of 4 sequences reads the weights
/// once for 4 tokens; on 2 cores more buys nothing (docs/measurements.md).
constexpr unsigned kDefaultBatch = 4;
/// Scored tokens by default: 2047 + 6 x 1024, seven whole windows at a
/// 2048-token context, enough for a standard error of about 0.2% on the ppl
/// change of fp8 on the default model (docs/measurements.md).
constexpr int64_t kDefaultMaxTokens = 8191;
/// The k of the top-k overlap of attention weights.
constexpr uint32_t kFidelityTopK = 16;
/// Larger texts are refused rather than read into memory.
constexpr uint64_t kMaxDataBytes = uint64_t(1) << 30;

struct EvalOptions {
  std::vector<std::string> artifacts;
  std::vector<std::string> tasks;
  std::string data, json;
  int64_t context = 0, stride = 0, maxTokens = kDefaultMaxTokens;
  int64_t batch = kDefaultBatch;
  unsigned threads = 0;
  std::string backend = "cpu";
  PasskeyOptions passkey = {{1024, 2048, 4096}, {0, 0.25, 0.5, 0.75, 1}, 5};
  /// auto, chat or plain; auto sets passkey.chat where the first artifact's
  /// tokenizer has a chat template.
  std::string passkeyTemplate = "auto";
};

/// Passkey answers of one artifact, in the order of Evaluation::trials.
struct PasskeyResult {
  std::vector<PasskeyAnswer> answers;
  double seconds = 0;
};

struct ArtifactResult {
  std::string path, cache;
  double kvBytesPerToken = 0;
  double bitsPerCoordinate = 0;
  double seconds = 0;
  /// While scoring: the most cache bytes held at once, and what eviction
  /// did (all layers together).
  uint64_t peakKvBytes = 0;
  uint64_t kvCompactions = 0, kvEvictedEntries = 0;
  /// What the offload schedule kept, fetched and prefetched (kv-offload).
  kvrt::EngineStats::Offload offload;
  TokenScores scores;
  std::vector<kvrt::LayerFidelity> fidelity;
  PasskeyResult passkey;

  /// The mean over layers of one measure of fidelity.
  double meanOverLayers(double kvrt::LayerFidelity::*measure) const {
    double sum = 0;
    for (const kvrt::LayerFidelity &f : fidelity)
      sum += f.*measure;
    return fidelity.empty() ? 0 : sum / double(fidelity.size());
  }
};

/// Everything one run measured, for the table and the JSON file.
struct Evaluation {
  bool ppl = false, fidelity = false, passkey = false;
  /// The passkey prompts, the same for every artifact.
  std::vector<PasskeyTrial> trials;
  int64_t textTokens = 0, stride = 0;
  size_t windows = 0;
  std::vector<ArtifactResult> results;
};

/// The whole of `path`, which must be non-empty UTF-8 text.
kvrt::StatusOr<std::string> readText(const std::string &path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0)
    return kvrt::Status::error(
        "--data " + path +
        (errno == ENOENT ? " does not exist"
                         : " cannot be read: " + std::string(strerror(errno))));
  if (!S_ISREG(info.st_mode))
    return kvrt::Status::error("--data " + path + " is not a regular file");
  if (uint64_t(info.st_size) > kMaxDataBytes)
    return kvrt::Status::error("--data " + path + " is larger than 1 GiB");
  std::ifstream in(path, std::ios::binary);
  std::string text(size_t(info.st_size), '\0');
  if (!in.read(text.data(), std::streamsize(text.size())))
    return kvrt::Status::error("--data " + path + " cannot be read");
  if (text.empty())
    return kvrt::Status::error("--data " + path + " is empty");
  if (!kvrt::json::isValidUtf8(text))
    return kvrt::Status::error("--data " + path + " is not UTF-8 text");
  return text;
}

kvrt::StatusOr<kvrt::Tokenizer> tokenizerOf(const kvrt::Artifact &artifact) {
  auto spec = kvrt::tokenizerSpecFromArtifact(artifact.manifest().tokenizer(),
                                              artifact.name());
  if (!spec)
    return spec.status();
  return kvrt::Tokenizer::create(std::move(*spec));
}

kvrt::StatusOr<std::vector<int32_t>> encode(const kvrt::Artifact &artifact,
                                            const std::string &text) {
  auto tokenizer = tokenizerOf(artifact);
  if (!tokenizer)
    return tokenizer.status();
  return tokenizer->encode(text, /*addSpecial=*/true);
}

/// The passkey prompts, the same for every artifact, or an error naming two
/// whose tokenizers write them differently; settles options.chat from
/// `promptTemplate` (auto, chat or plain) and the first artifact.
kvrt::StatusOr<std::vector<PasskeyTrial>> passkeyPrompts(
    const std::vector<std::shared_ptr<const kvrt::Artifact>> &artifacts,
    PasskeyOptions &options, const std::string &promptTemplate) {
  std::vector<PasskeyTrial> first;
  std::string stored = artifacts[0]->manifest().tokenizer().SerializeAsString();
  for (size_t i = 0; i < artifacts.size(); ++i) {
    if (i && artifacts[i]->manifest().tokenizer().SerializeAsString() == stored)
      continue;
    auto tokenizer = tokenizerOf(*artifacts[i]);
    if (!tokenizer)
      return tokenizer.status();
    if (i == 0)
      options.chat =
          promptTemplate == "chat" ||
          (promptTemplate == "auto" &&
           tokenizer->chatTemplate().kind != kvrt::ChatTemplateKind::None);
    auto trials = passkeyTrials(*tokenizer, options, artifacts[i]->name());
    if (!trials)
      return trials.status();
    if (i == 0) {
      first = std::move(*trials);
      continue;
    }
    for (size_t t = 0; t < first.size(); ++t)
      if ((*trials)[t].prompt != first[t].prompt)
        return kvrt::Status::error(
            artifacts[i]->name() +
            " tokenizes the passkey prompts differently from " +
            artifacts[0]->name() + "; compare artifacts of one model");
  }
  return first;
}

/// The token ids of `text` (BOS first when the tokenizer adds one), the
/// same for every artifact, or an error naming two that differ.
kvrt::StatusOr<std::vector<int32_t>>
tokenize(const std::vector<std::shared_ptr<const kvrt::Artifact>> &artifacts,
         const std::string &text, const std::string &dataPath) {
  auto ids = encode(*artifacts[0], text);
  if (!ids)
    return ids.status();
  std::string stored = artifacts[0]->manifest().tokenizer().SerializeAsString();
  for (size_t i = 1; i < artifacts.size(); ++i) {
    if (artifacts[i]->manifest().tokenizer().SerializeAsString() == stored)
      continue;
    auto other = encode(*artifacts[i], text);
    if (!other)
      return other.status();
    if (*other != *ids)
      return kvrt::Status::error(artifacts[i]->name() + " tokenizes " +
                                 dataPath + " differently from " +
                                 artifacts[0]->name() +
                                 "; compare artifacts of one model");
  }
  return ids;
}

/// KV coordinates one token has across all layers: keys and values.
uint64_t coordinatesPerToken(const kvrt::schema::Manifest &manifest) {
  uint64_t coordinates = 0;
  for (const kvrt::schema::CacheLayout &layer : manifest.cache())
    coordinates += 2ull * layer.kv_heads() * layer.head_dim();
  return coordinates;
}

/// An engine for `batch` sequences of `context` tokens; fills in the
/// result's bytes per token and bits per coordinate.
kvrt::StatusOr<std::unique_ptr<kvrt::Engine>>
createEngine(std::shared_ptr<const kvrt::Artifact> artifact,
             const EvalOptions &o, int64_t context, bool fidelity,
             ArtifactResult &result) {
  uint32_t largestPage = 1;
  for (const kvrt::schema::CacheLayout &layer : artifact->manifest().cache())
    largestPage = std::max(largestPage, layer.page_size());
  kvrt::EngineOptions engineOptions;
  engineOptions.threads = o.threads;
  engineOptions.backend = o.backend;
  engineOptions.cacheTokens =
      uint64_t(o.batch) * uint64_t(context + largestPage);
  engineOptions.measureFidelity = fidelity;
  engineOptions.fidelityTopK = kFidelityTopK;
  auto engine = kvrt::Engine::create(artifact, engineOptions);
  if (!engine)
    return engine.status();
  result.kvBytesPerToken = (*engine)->stats().kvBytesPerToken;
  result.bitsPerCoordinate =
      8.0 * result.kvBytesPerToken /
      double(std::max<uint64_t>(1, coordinatesPerToken(artifact->manifest())));
  return engine;
}

kvrt::StatusOr<PasskeyResult>
answerPasskeyTrials(std::shared_ptr<const kvrt::Artifact> artifact,
                    const EvalOptions &o, const Evaluation &evaluation,
                    ArtifactResult &result, const std::string &progressLabel,
                    Progress &progress) {
  auto tokenizer = tokenizerOf(*artifact);
  if (!tokenizer)
    return tokenizer.status();
  int64_t longest =
      *std::max_element(o.passkey.lengths.begin(), o.passkey.lengths.end());
  auto engine = createEngine(artifact, o, longest, false, result);
  if (!engine)
    return engine.status();
  std::string total = std::to_string(evaluation.trials.size());
  progress.step(progressLabel + ": passkey");
  auto start = std::chrono::steady_clock::now();
  auto answers = answerPasskeys(**engine, *tokenizer, evaluation.trials,
                                unsigned(o.batch), [&](size_t answered) {
                                  progress.update(std::to_string(answered) +
                                                  "/" + total + " trials");
                                });
  if (!answers)
    return answers.status();
  PasskeyResult passkey;
  passkey.answers = std::move(*answers);
  passkey.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return passkey;
}

kvrt::StatusOr<ArtifactResult>
evaluate(std::shared_ptr<const kvrt::Artifact> artifact, const EvalOptions &o,
         const Evaluation &evaluation, const std::vector<int32_t> &tokens,
         const std::vector<Window> &windows, const std::string &progressLabel,
         Progress &progress) {
  ArtifactResult result;
  result.path = artifact->name();
  result.cache = summarizeCache(artifact->manifest());
  if (evaluation.passkey) {
    auto answered = answerPasskeyTrials(artifact, o, evaluation, result,
                                        progressLabel, progress);
    if (!answered)
      return answered.status();
    result.passkey = std::move(*answered);
  }
  if (!evaluation.ppl && !evaluation.fidelity)
    return result;
  auto engine =
      createEngine(artifact, o, o.context, evaluation.fidelity, result);
  if (!engine)
    return engine.status();

  uint64_t total = uint64_t(tokens.size()) - 1;
  auto start = std::chrono::steady_clock::now();
  auto scored = scoreWindows(
      **engine, tokens, windows, unsigned(o.batch), [&](const TokenScores &t) {
        progress.step(
            progressLabel + ": " + std::to_string(t.tokens) + "/" +
            std::to_string(total) + " tokens, ppl " +
            format("%.3f", std::exp(t.total /
                                    double(std::max<uint64_t>(1, t.tokens)))));
      });
  if (!scored)
    return scored.status();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  result.scores = std::move(*scored);
  result.fidelity = (*engine)->fidelity();
  kvrt::EngineStats stats = (*engine)->stats();
  result.peakKvBytes = stats.peakKvBytes;
  result.kvCompactions = stats.kvCompactions;
  result.kvEvictedEntries = stats.kvEvictedEntries;
  result.offload = stats.offload;
  return result;
}

/// Prints `rows` (the first is the header) as aligned columns, the first
/// `leftAligned` left-aligned and the others right-aligned.
void printTable(const std::vector<std::vector<std::string>> &rows,
                size_t leftAligned = 2) {
  std::vector<size_t> widths;
  for (const auto &row : rows)
    for (size_t c = 0; c < row.size(); ++c) {
      widths.resize(std::max(widths.size(), c + 1));
      widths[c] = std::max(widths[c], row[c].size());
    }
  for (const auto &row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      std::string pad(widths[c] - row[c].size(), ' ');
      line += (c ? "  " : "") + (c < leftAligned ? row[c] + pad : pad + row[c]);
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

/// Right answers per cell of the passkey grid (length-major), of
/// o.passkey.trials each.
std::vector<int64_t> correctPerCell(const Evaluation &e, const EvalOptions &o,
                                    const PasskeyResult &r) {
  std::vector<int64_t> correct(o.passkey.lengths.size() *
                               o.passkey.depths.size());
  for (size_t t = 0; t < e.trials.size(); ++t)
    if (r.answers[t].correct)
      ++correct[e.trials[t].length * o.passkey.depths.size() +
                e.trials[t].depth];
  return correct;
}

/// Accuracy in percent of `correct` right answers out of `trials`.
double percent(int64_t correct, int64_t trials) {
  return trials ? 100.0 * double(correct) / double(trials) : 0;
}

/// Per artifact, a grid of accuracies: rows lengths, columns depths, with
/// the mean of each row and column and the overall accuracy.
void printPasskey(const Evaluation &e, const EvalOptions &o) {
  const PasskeyOptions &p = o.passkey;
  std::printf("passkey: %lld trials per cell, seed %llu, %s, decode mode, "
              "greedy, batch %lld\n",
              (long long)p.trials, (unsigned long long)p.seed,
              p.chat ? "chat template" : "plain text", (long long)o.batch);
  size_t depths = p.depths.size();
  for (const ArtifactResult &r : e.results) {
    std::vector<int64_t> correct = correctPerCell(e, o, r.passkey);
    int64_t all = 0;
    for (int64_t c : correct)
      all += c;
    std::printf(
        "\n%s (%s): %s of %zu right, %.1f s\n", r.path.c_str(), r.cache.c_str(),
        format("%.1f%%", percent(all, int64_t(e.trials.size()))).c_str(),
        e.trials.size(), r.passkey.seconds);
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> header = {"length \\ depth"};
    for (double depth : p.depths)
      header.push_back(format("%.2f", depth));
    header.push_back("all");
    rows.push_back(header);
    std::vector<int64_t> columns(depths);
    for (size_t l = 0; l < p.lengths.size(); ++l) {
      std::vector<std::string> row = {std::to_string(p.lengths[l])};
      int64_t sum = 0;
      for (size_t d = 0; d < depths; ++d) {
        int64_t c = correct[l * depths + d];
        row.push_back(format("%.0f%%", percent(c, p.trials)));
        sum += c;
        columns[d] += c;
      }
      row.push_back(format("%.0f%%", percent(sum, p.trials * int64_t(depths))));
      rows.push_back(row);
    }
    std::vector<std::string> last = {"all"};
    for (int64_t c : columns)
      last.push_back(
          format("%.0f%%", percent(c, p.trials * int64_t(p.lengths.size()))));
    last.push_back(format("%.0f%%", percent(all, int64_t(e.trials.size()))));
    rows.push_back(last);
    printTable(rows, 1);
  }
}

void printResults(const Evaluation &e, const EvalOptions &o) {
  if (e.passkey && !e.ppl && !e.fidelity)
    return printPasskey(e, o);
  std::printf("%s: %lld tokens scored in %zu windows of %lld (stride %lld), "
              "decode mode, batch %lld\n",
              o.data.c_str(), (long long)e.results[0].scores.tokens, e.windows,
              (long long)o.context, (long long)e.stride, (long long)o.batch);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"artifact", "cache", "bits/coord",
                                     "bytes/token", "vs bf16"};
  header.push_back("peak KV");
  if (e.ppl)
    header.insert(header.end(), {"ppl", "change (std err)"});
  if (e.fidelity)
    header.insert(
        header.end(),
        {"attn error", "top-" + std::to_string(kFidelityTopK) + " overlap"});
  // Offload's columns: the share of the pages decode steps read that were
  // on the device, and the bytes copied in per scored token.
  bool offloads = std::any_of(
      e.results.begin(), e.results.end(), [](const ArtifactResult &r) {
        return r.offload.pagesRead + r.offload.streamed > 0;
      });
  if (offloads)
    header.insert(header.end(), {"device hits", "copied/token"});
  header.push_back("seconds");
  rows.push_back(header);
  for (const ArtifactResult &r : e.results) {
    PplChange change = perplexityChange(e.results[0].scores, r.scores);
    std::vector<std::string> row = {r.path,
                                    r.cache,
                                    format("%.2f", r.bitsPerCoordinate),
                                    bytesPerToken(r.kvBytesPerToken),
                                    format("%.2fx", 16.0 / r.bitsPerCoordinate),
                                    megabytes(r.peakKvBytes)};
    if (e.ppl)
      row.insert(row.end(),
                 {format("%.4f", r.scores.perplexity()),
                  &r == &e.results[0]
                      ? "reference"
                      : format("%+.2f%%", change.percent) +
                            format(" (%.2f%%)", change.standardError)});
    if (e.fidelity)
      row.insert(
          row.end(),
          {format("%.4f",
                  r.meanOverLayers(&kvrt::LayerFidelity::outputRelativeError)),
           format("%.4f",
                  r.meanOverLayers(&kvrt::LayerFidelity::topKOverlap))});
    if (offloads) {
      const kvrt::EngineStats::Offload &o = r.offload;
      row.push_back(o.pagesRead ? format("%.1f%%", 100.0 * double(o.hits) /
                                                       double(o.pagesRead))
                                : "-");
      row.push_back(format("%.1f KB",
                           double(o.bytesIn) / 1024.0 /
                               double(std::max<uint64_t>(1, r.scores.tokens))));
    }
    row.push_back(format("%.1f", r.seconds));
    rows.push_back(row);
  }
  printTable(rows);
  if (e.passkey) {
    std::printf("\n");
    printPasskey(e, o);
  }
}

/// The passkey setup and prompts, the same for every artifact.
void writePasskeySetup(JsonWriter &json, const Evaluation &e,
                       const EvalOptions &o) {
  const PasskeyOptions &p = o.passkey;
  json.key("passkey");
  json.beginObject();
  json.member("trials_per_cell", p.trials);
  json.member("seed", p.seed);
  json.member("chat", p.chat);
  json.member("answer_tokens", kPasskeyAnswerTokens);
  json.key("cells");
  json.beginArray();
  for (size_t t = 0; t < e.trials.size(); t += size_t(p.trials)) {
    const PasskeyTrial &first = e.trials[t];
    json.beginObject();
    json.member("length", p.lengths[first.length]);
    json.member("depth", p.depths[first.depth]);
    json.key("keys");
    json.beginArray();
    for (size_t i = t; i < t + size_t(p.trials); ++i)
      json.value(e.trials[i].key);
    json.endArray();
    json.key("prompt_tokens");
    json.beginArray();
    for (size_t i = t; i < t + size_t(p.trials); ++i)
      json.value(e.trials[i].prompt.size());
    json.endArray();
    json.endObject();
  }
  json.endArray();
  json.endObject();
}

/// One artifact's passkey accuracy, overall and per cell, and its answers.
void writePasskeyResult(JsonWriter &json, const Evaluation &e,
                        const EvalOptions &o, const PasskeyResult &r) {
  const PasskeyOptions &p = o.passkey;
  std::vector<int64_t> correct = correctPerCell(e, o, r);
  int64_t all = 0;
  for (int64_t c : correct)
    all += c;
  json.key("passkey");
  json.beginObject();
  json.member("accuracy", double(all) / double(e.trials.size()));
  json.member("correct", all);
  json.member("trials", e.trials.size());
  json.member("seconds", r.seconds);
  json.key("cells");
  json.beginArray();
  for (size_t cell = 0; cell < correct.size(); ++cell) {
    size_t t = cell * size_t(p.trials);
    json.beginObject();
    json.member("length", p.lengths[e.trials[t].length]);
    json.member("depth", p.depths[e.trials[t].depth]);
    json.member("accuracy", double(correct[cell]) / double(p.trials));
    json.member("correct", correct[cell]);
    json.key("answers");
    json.beginArray();
    for (size_t i = t; i < t + size_t(p.trials); ++i)
      json.value(r.answers[i].text);
    json.endArray();
    json.endObject();
  }
  json.endArray();
  json.endObject();
}

bool writeJson(std::ostream &os, const Evaluation &e, const EvalOptions &o) {
  JsonWriter json(os);
  json.beginObject();
  bool scored = e.ppl || e.fidelity;
  if (scored) {
    json.member("data", o.data);
    json.member("context", o.context);
    json.member("stride", e.stride);
  }
  json.member("batch", o.batch);
  if (scored) {
    json.member("windows", e.windows);
    json.member("text_tokens", e.textTokens);
  }
  if (e.passkey)
    writePasskeySetup(json, e, o);
  json.key("results");
  json.beginArray();
  for (const ArtifactResult &r : e.results) {
    json.beginObject();
    json.member("artifact", r.path);
    json.member("cache", r.cache);
    json.member("kv_bytes_per_token", r.kvBytesPerToken);
    json.member("bits_per_coordinate", r.bitsPerCoordinate);
    json.member("compression_vs_bf16", 16.0 / r.bitsPerCoordinate);
    if (scored) {
      json.member("tokens", r.scores.tokens);
      json.member("seconds", r.seconds);
      json.member("peak_kv_bytes", r.peakKvBytes);
      json.member("kv_compactions", r.kvCompactions);
      json.member("kv_evicted_entries", r.kvEvictedEntries);
      const kvrt::EngineStats::Offload &o = r.offload;
      json.key("offload");
      json.beginObject();
      json.member("pages_read", o.pagesRead);
      json.member("hits", o.hits);
      json.member("misses", o.misses);
      json.member("prefetch_hits", o.prefetchHits);
      json.member("prefetched", o.prefetched);
      json.member("streamed", o.streamed);
      json.member("bytes_in", o.bytesIn);
      json.endObject();
    }
    if (e.ppl) {
      json.member("ppl", r.scores.perplexity());
      PplChange change = perplexityChange(e.results[0].scores, r.scores);
      json.member("ppl_change_percent", change.percent);
      json.member("ppl_change_standard_error_percent", change.standardError);
    }
    if (e.fidelity) {
      json.key("fidelity");
      json.beginObject();
      json.member("top_k", kFidelityTopK);
      json.member("output_relative_error",
                  r.meanOverLayers(&kvrt::LayerFidelity::outputRelativeError));
      json.member("top_k_overlap",
                  r.meanOverLayers(&kvrt::LayerFidelity::topKOverlap));
      json.key("layers");
      json.beginArray();
      for (const kvrt::LayerFidelity &f : r.fidelity) {
        json.beginObject();
        json.member("layer", f.layer);
        json.member("queries", f.queries);
        json.member("output_relative_error", f.outputRelativeError);
        json.member("top_k_overlap", f.topKOverlap);
        json.endObject();
      }
      json.endArray();
      json.endObject();
    }
    if (e.passkey)
      writePasskeyResult(json, e, o, r.passkey);
    json.endObject();
  }
  json.endArray();
  json.endObject();
  return bool(os);
}

/// Checks the options and fills in the tasks and the stride.
kvrt::Status checkOptions(const EvalOptions &o, Evaluation &e) {
  for (const std::string &task : o.tasks) {
    if (task == "ppl")
      e.ppl = true;
    else if (task == "fidelity")
      e.fidelity = true;
    else if (task == "passkey")
      e.passkey = true;
    else
      return kvrt::Status::error("--task " + task +
                                 " is not a task of this kvopt (ppl, "
                                 "fidelity, passkey)");
  }
  if (o.batch < 1 || o.batch > 4096)
    return kvrt::Status::error("--batch must be between 1 and 4096");
  if (e.passkey) {
    const PasskeyOptions &p = o.passkey;
    if (p.lengths.empty() || p.depths.empty())
      return kvrt::Status::error(
          "--lengths and --depths need at least one value each");
    for (double depth : p.depths)
      if (!(depth >= 0 && depth <= 1))
        return kvrt::Status::error("--depths must be between 0 and 1, not " +
                                   format("%g", depth));
    if (p.trials < 1 || p.trials > 100000)
      return kvrt::Status::error("--trials must be between 1 and 100000");
    if (o.passkeyTemplate != "auto" && o.passkeyTemplate != "chat" &&
        o.passkeyTemplate != "plain")
      return kvrt::Status::error("--template must be auto, chat or plain");
  }
  if (!e.ppl && !e.fidelity)
    return kvrt::Status::ok();
  if (o.data.empty() || o.context == 0)
    return kvrt::Status::error("--task ppl and fidelity need --data and "
                               "--context");
  if (o.context < 2)
    return kvrt::Status::error("--context must be at least 2 tokens (one to "
                               "predict from, one to score)");
  e.stride = o.stride ? o.stride : o.context / 2;
  if (e.stride < 1 || e.stride >= o.context)
    return kvrt::Status::error("--stride must be between 1 and --context - 1 "
                               "(" +
                               std::to_string(o.context - 1) + ")");
  if (o.maxTokens < 0)
    return kvrt::Status::error(
        "--max-tokens must be 0 (the whole text) or more");
  return kvrt::Status::ok();
}

kvrt::Status evaluateArtifacts(
    const std::vector<std::shared_ptr<const kvrt::Artifact>> &artifacts,
    const EvalOptions &o, Evaluation &e, const std::vector<int32_t> &tokens,
    const std::vector<Window> &windows, Progress &progress) {
  for (size_t i = 0; i < artifacts.size(); ++i) {
    std::string label = o.artifacts[i] + " (" + std::to_string(i + 1) + "/" +
                        std::to_string(artifacts.size()) + ")";
    auto result =
        evaluate(artifacts[i], o, e, tokens, windows, label, progress);
    if (!result)
      return result.status();
    e.results.push_back(std::move(*result));
  }
  return kvrt::Status::ok();
}

/// Runs every task on every artifact; settles o.passkey.chat.
kvrt::Status evaluateAll(EvalOptions &o, Evaluation &e) {
  KVRT_RETURN_IF_ERROR(checkOptions(o, e));
  Progress progress("eval");
  std::vector<std::shared_ptr<const kvrt::Artifact>> artifacts;
  for (const std::string &path : o.artifacts) {
    progress.step("opening " + path);
    auto artifact = kvrt::Artifact::open(path);
    if (!artifact)
      return artifact.status();
    int64_t positions = (*artifact)->manifest().model().max_positions();
    if ((e.ppl || e.fidelity) && o.context > positions)
      return kvrt::Status::error(
          "--context " + std::to_string(o.context) + " is longer than the " +
          std::to_string(positions) + " positions of " + path);
    for (int64_t length :
         e.passkey ? o.passkey.lengths : std::vector<int64_t>{})
      if (length > positions)
        return kvrt::Status::error(
            "--lengths " + std::to_string(length) + " is longer than the " +
            std::to_string(positions) + " positions of " + path);
    artifacts.push_back(std::move(*artifact));
  }
  if (e.passkey) {
    progress.step("writing the passkey prompts");
    auto trials = passkeyPrompts(artifacts, o.passkey, o.passkeyTemplate);
    if (!trials)
      return trials.status();
    e.trials = std::move(*trials);
  }
  if (!e.ppl && !e.fidelity)
    return evaluateArtifacts(artifacts, o, e, {}, {}, progress);
  progress.step("reading " + o.data);
  auto text = readText(o.data);
  if (!text)
    return text.status();
  progress.step("tokenizing " + o.data);
  auto tokens = tokenize(artifacts, *text, o.data);
  if (!tokens)
    return tokens.status();
  if (tokens->size() < 2)
    return kvrt::Status::error("--data " + o.data +
                               " holds fewer than 2 tokens; nothing to score");
  e.textTokens = int64_t(tokens->size());
  if (o.maxTokens && int64_t(tokens->size()) > o.maxTokens + 1)
    tokens->resize(size_t(o.maxTokens + 1));
  std::vector<Window> windows =
      slidingWindows(int64_t(tokens->size()), o.context, e.stride);
  e.windows = windows.size();
  return evaluateArtifacts(artifacts, o, e, *tokens, windows, progress);
}

int runEval(EvalOptions o) {
  if (std::string problem = outputFileProblem(o.json); !problem.empty()) {
    std::cerr << "kvopt eval: --json: " << problem << "\n";
    return 1;
  }
  Evaluation e;
  if (kvrt::Status status = evaluateAll(o, e); !status) {
    std::cerr << "kvopt eval: " << status.message() << "\n";
    return 1;
  }
  printResults(e, o);
  std::fflush(stdout);
  if (o.json.empty())
    return 0;
  return writeOutputFile(o.json,
                         [&](std::ostream &os) { return writeJson(os, e, o); });
}
} // namespace

PplChange perplexityChange(const TokenScores &reference,
                           const TokenScores &scores) {
  const std::vector<double> &a = scores.negativeLogLikelihood;
  const std::vector<double> &b = reference.negativeLogLikelihood;
  double n = double(scores.tokens);
  double mean = (scores.total - reference.total) / n;
  // Every token but the first is scored.
  double squares = 0;
  for (size_t i = 1; i < a.size(); ++i)
    squares += (a[i] - b[i] - mean) * (a[i] - b[i] - mean);
  double meanError = n > 1 ? std::sqrt(squares / (n - 1) / n) : 0;
  return {100.0 * (std::exp(mean) - 1), 100.0 * std::exp(mean) * meanError};
}

kvrt::StatusOr<PerplexityScore>
scorePerplexity(const std::string &artifact, const std::string &data,
                int64_t context, int64_t maxTokens, unsigned threads) {
  EvalOptions o;
  o.artifacts = {artifact};
  o.tasks = {"ppl"};
  o.data = data;
  o.context = context;
  o.maxTokens = maxTokens;
  o.threads = threads;
  Evaluation e;
  KVRT_RETURN_IF_ERROR(evaluateAll(o, e));
  ArtifactResult &result = e.results[0];
  return PerplexityScore{result.kvBytesPerToken, result.bitsPerCoordinate,
                         std::move(result.scores)};
}

void addEvalCommand(CLI::App &app, int &exitCode) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App *sub = app.add_subcommand(
      "eval", "Measure perplexity, attention fidelity and passkey retrieval "
              "with the compressed cache in use, side by side for several "
              "artifacts");
  sub->add_option("artifacts", o->artifacts,
                  "Compiled .kvpkg files of one model; the first is the "
                  "reference of the ppl change")
      ->required();
  sub->add_option("--task", o->tasks,
                  "Any of ppl, fidelity, passkey, separated by commas")
      ->required()
      ->delimiter(',');
  sub->add_option("--data", o->data, "UTF-8 text to score (ppl, fidelity)");
  sub->add_option("--context", o->context, "Tokens per window (ppl, fidelity)");
  sub->add_option("--stride", o->stride,
                  "Tokens between window starts; each window after the first "
                  "scores its last `stride` tokens (default: context / 2)");
  sub->add_option("--max-tokens", o->maxTokens,
                  "Score the first T tokens of the text (0: all of it)")
      ->capture_default_str();
  sub->add_option("--batch", o->batch, "Windows scored at once")
      ->capture_default_str();
  sub->add_option("--threads", o->threads, "Threads (0: every core)");
  sub->add_option("--backend", o->backend,
                  "cpu (the reference) | cuda (the first GPU, where built)")
      ->capture_default_str();
  sub->add_option("--lengths", o->passkey.lengths,
                  "Passkey context lengths in tokens, prompt and answer "
                  "together")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--depths", o->passkey.depths,
                  "Passkey depths of the key in the filler, 0 (first) to 1 "
                  "(last)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--trials", o->passkey.trials, "Passkey prompts per cell")
      ->capture_default_str();
  sub->add_option("--seed", o->passkey.seed,
                  "Seed of the passkeys; the same seed gives the same prompts")
      ->capture_default_str();
  sub->add_option("--template", o->passkeyTemplate,
                  "Passkey prompts in the model's chat template (chat), as "
                  "plain text (plain), or in the template when the model has "
                  "one (auto)")
      ->capture_default_str();
  sub->add_option("--json", o->json, "Also write the results as JSON to FILE");
  sub->callback([o, &exitCode] { exitCode = runEval(*o); });
}

} // namespace kvopt::cli
