//===- Calibrate.cpp - Run a model on text and record statistics ----------===//
#include "compiler/calibrate/Calibrate.h"

#include "compiler/calibrate/EvictLoss.h"
#include "compiler/calibrate/Moments.h"
#include "compiler/export/Export.h"
#include "kvrt/ArtifactWriter.h"
#include "kvrt/MappedFile.h"
#include "kvrt/Runtime.h"
#include "kvrt/Tokenizer.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/xxhash.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unistd.h>

using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::calibrate {
namespace {

/// The module as an artifact with an f32 cache. The artifact writer only
/// writes files, so it goes to a private temporary folder (mode 0700) that
/// is removed as soon as the artifact is mapped: the mapping keeps the
/// bytes.
StatusOr<std::shared_ptr<const kvrt::Artifact>>
exportForCalibration(const import::ImportedModel &model) {
  kvrt::ArtifactWriter writer;
  exporter::ExportOptions options;
  options.float32Cache = true;
  options.deferred = &model.deferred;
  options.blocks = &model.blocks;
  KVRT_RETURN_IF_ERROR(exporter::exportModule(
      *model.module, model.config, model.tokenizer, options, writer));
  llvm::SmallString<128> temp;
  llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/true, temp);
  std::string folder = std::string(temp) + "/kvopt-calibrate-XXXXXX";
  if (!::mkdtemp(folder.data()))
    return Status::error(
        "cannot create a temporary folder in " + std::string(temp) +
        " for the calibration artifact: " + std::strerror(errno));
  std::string path = folder + "/model.kvpkg";
  Status written = writer.write(path);
  StatusOr<std::shared_ptr<const kvrt::Artifact>> artifact =
      written ? kvrt::Artifact::open(path) : written;
  std::remove(path.c_str());
  ::rmdir(folder.c_str());
  return artifact;
}

/// Sums, in double and in the order the runtime reports rows, one side's
/// pre-RoPE vectors of one layer as complex frequency pairs.
struct PairSums {
  /// [heads][headDim/2][2] and [heads][headDim/2].
  std::vector<double> center, magnitude;
  uint64_t tokens = 0;

  /// Means as f32: the centre and mean magnitude of LayerStatistics.
  void means(std::vector<float> &centerOut,
             std::vector<float> &magnitudeOut) const {
    for (double v : center)
      centerOut.push_back(float(v / double(tokens)));
    for (double v : magnitude)
      magnitudeOut.push_back(float(v / double(tokens)));
  }
};

/// Keeps, per layer and KV head, the largest |coordinate| of the keys and
/// values the cache receives, and, per layer and query or KV head, the sums
/// of the pre-RoPE queries and keys as complex pairs and of their
/// magnitudes, the moment sums of the pre-RoPE keys and of the values, and
/// the values' attention-weighted moment sums (one window at a time:
/// endSequence() after each) and the attention mass eviction loses at best;
/// notes the first value that is not finite.
class StatisticsRecorder final : public kvrt::AppendObserver {
public:
  StatisticsRecorder(size_t layerCount, int64_t heads, int64_t kvHeads,
                     int64_t headDim, int64_t sinks, int64_t window)
      : heads(heads), kvHeads(kvHeads), headDim(headDim),
        layers(layerCount, LayerStatistics{std::vector<float>(kvHeads, 0.0f),
                                           std::vector<float>(kvHeads, 0.0f)}),
        querySums(layerCount, sums(heads)), keySums(layerCount, sums(kvHeads)),
        keyMoments(layerCount, MomentSums(kvHeads, headDim)),
        valueMoments(layerCount, MomentSums(kvHeads, headDim)),
        attentionMoments(layerCount,
                         AttentionMomentSums(kvHeads, headDim, sinks, window)),
        // A row's KV heads are contiguous: one "head" of all of them.
        jointKeyMoments(layerCount, MomentSums(1, kvHeads * headDim)),
        jointValueMoments(layerCount, MomentSums(1, kvHeads * headDim)),
        jointAttentionMoments(
            layerCount,
            AttentionMomentSums(1, kvHeads * headDim, sinks, window)),
        evictLosses(layerCount, EvictLossSums(heads, kvHeads)) {}

  void onAppend(uint32_t layer, const float *keys, const float *values,
                int64_t rows, int64_t heads, int64_t dim) override {
    if (layer >= layers.size() || heads != kvHeads || dim != headDim) {
      problem.emplace("the runtime appended to layer " + str(layer) + " (" +
                      str(heads) + " KV heads of " + str(dim) +
                      "), which the exported model does not have");
      return;
    }
    record(keys, rows, layer, "key", layers[layer].keyAbsMax);
    record(values, rows, layer, "value", layers[layer].valueAbsMax);
    valueMoments[layer].add(values, rows);
    attentionMoments[layer].addValues(values, rows);
    jointValueMoments[layer].add(values, rows);
    jointAttentionMoments[layer].addValues(values, rows);
  }

  bool wantsAttention() const override { return true; }

  void onAttention(uint32_t layer, uint64_t sequence, int32_t position,
                   uint32_t kvHead, const float *weights, int64_t group,
                   uint64_t first, int64_t count) override {
    // The joint moment weighs a token by the attention of every query head
    // of the layer: each KV head's group adds to its one weight.
    if (layer >= layers.size() || group * kvHeads != heads ||
        !attentionMoments[layer].addWeights(position, kvHead, weights, group,
                                            first, count) ||
        !jointAttentionMoments[layer].addWeights(position, 0, weights, group,
                                                 first, count) ||
        !evictLosses[layer].addWeights(position, kvHead, weights, group, first,
                                       count))
      problem.emplace("the runtime reported attention weights of layer " +
                      str(layer) + ", KV head " + str(kvHead) + " (" +
                      str(group) + " query heads, entries " + str(first) +
                      " to " + str(int64_t(first) + count - 1) +
                      " of sequence " + str(int64_t(sequence)) +
                      ") that do not match the values it appended");
  }

  /// Folds the window just run into the attention-weighted moments.
  void endSequence() {
    for (AttentionMomentSums &sums : attentionMoments)
      sums.endSequence();
    for (AttentionMomentSums &sums : jointAttentionMoments)
      sums.endSequence();
  }

  void onPreRope(uint32_t layer, kvrt::RopeInput input, const float *x,
                 int64_t rows, int64_t rowHeads, int64_t dim,
                 kvrt::RopePairing pairing) override {
    bool query = input == kvrt::RopeInput::Query;
    const char *side = query ? "query" : "key";
    if (layer >= layers.size() || rowHeads != (query ? heads : kvHeads) ||
        dim != headDim || dim % 2) {
      problem.emplace("the runtime rotated " + std::string(side) +
                      "s of layer " + str(layer) + " (" + str(rowHeads) +
                      " heads of " + str(dim) +
                      "), which the exported model does not have");
      return;
    }
    PairSums &sums = (query ? querySums : keySums)[layer];
    int64_t half = dim / 2;
    // Pair f is (f, f + half), or (2f, 2f + 1) interleaved.
    bool interleaved = pairing == kvrt::RopePairing::Interleaved;
    int64_t stride = interleaved ? 2 : 1, partner = interleaved ? 1 : half;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < rowHeads; ++h) {
        const float *v = x + (r * rowHeads + h) * dim;
        double *center = sums.center.data() + h * dim;
        double *magnitude = sums.magnitude.data() + h * half;
        for (int64_t f = 0; f < half; ++f) {
          double re = v[f * stride], im = v[f * stride + partner];
          if (!std::isfinite(re) || !std::isfinite(im)) {
            if (!problem)
              problem.emplace("the model computed a " + std::string(side) +
                              " before RoPE that is not finite in layer " +
                              str(layer) + ", " + (query ? "" : "KV ") +
                              "head " + str(h));
            return;
          }
          center[2 * f] += re;
          center[2 * f + 1] += im;
          magnitude[f] += std::hypot(re, im);
        }
      }
    sums.tokens += uint64_t(rows);
    if (!query) {
      keyMoments[layer].add(x, rows);
      jointKeyMoments[layer].add(x, rows);
    }
  }

  /// Why the statistics cannot be used, if they cannot.
  const std::optional<std::string> &failure() const { return problem; }

  /// The statistics of every layer; fails when a layer's queries or keys
  /// were never seen before RoPE.
  StatusOr<std::vector<LayerStatistics>> statistics() {
    bool weighted = true;
    for (size_t layer = 0; layer < layers.size(); ++layer) {
      if (!querySums[layer].tokens || !keySums[layer].tokens)
        return Status::error(
            "the runtime showed no " +
            std::string(querySums[layer].tokens ? "keys" : "queries") +
            " of layer " + str(int64_t(layer)) +
            " before RoPE, so their statistics cannot be recorded");
      LayerStatistics &s = layers[layer];
      querySums[layer].means(s.queryCenter, s.queryMagnitude);
      keySums[layer].means(s.keyCenter, s.keyMagnitude);
      if (!valueMoments[layer].tokens())
        return Status::error("the runtime appended no values to layer " +
                             str(int64_t(layer)) +
                             ", so their statistics cannot be recorded");
      keyMoments[layer].finish(s.keyMean, s.keyCovariance);
      valueMoments[layer].finish(s.valueMean, s.valueCovariance);
      weighted &= attentionMoments[layer].finish(s.valueAttentionMoment);
      s.keyJointMoment = secondMoment(jointKeyMoments[layer]);
      s.valueJointMoment = secondMoment(jointValueMoments[layer]);
      jointAttentionMoments[layer].finish(s.valueAttentionJointMoment);
      s.evictLoss = evictLosses[layer].finish();
    }
    // No weight counts when no window is longer than the exact tokens: then
    // no layer has the moment.
    if (!weighted)
      for (LayerStatistics &l : layers) {
        l.valueAttentionMoment.clear();
        l.valueAttentionJointMoment.clear();
      }
    return std::move(layers);
  }

private:
  static std::string str(int64_t n) { return std::to_string(n); }

  /// E[x x^T] of one-head sums: the covariance plus mu mu^T.
  static std::vector<double> secondMoment(const MomentSums &sums) {
    std::vector<double> mean, moment;
    sums.finish(mean, moment);
    const size_t n = mean.size();
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j)
        moment[i * n + j] += mean[i] * mean[j];
    return moment;
  }

  PairSums sums(int64_t headCount) const {
    return {std::vector<double>(size_t(headCount * headDim), 0.0),
            std::vector<double>(size_t(headCount * headDim / 2), 0.0), 0};
  }

  void record(const float *data, int64_t rows, uint32_t layer, const char *side,
              std::vector<float> &absMax) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < kvHeads; ++h) {
        const float *v = data + (r * kvHeads + h) * headDim;
        float &m = absMax[h];
        for (int64_t d = 0; d < headDim; ++d) {
          float a = std::fabs(v[d]);
          if (!std::isfinite(a) && !problem)
            problem.emplace("the model computed a " + std::string(side) +
                            " that is not finite in layer " + str(layer) +
                            ", KV head " + str(h));
          m = std::max(m, a);
        }
      }
  }

  int64_t heads, kvHeads, headDim;
  std::vector<LayerStatistics> layers;
  std::vector<PairSums> querySums, keySums;
  std::vector<MomentSums> keyMoments, valueMoments;
  std::vector<AttentionMomentSums> attentionMoments;
  /// Of the layer's KV heads concatenated (kv-lowrank{group=G}).
  std::vector<MomentSums> jointKeyMoments, jointValueMoments;
  std::vector<AttentionMomentSums> jointAttentionMoments;
  /// What an eviction to each fraction of the entries loses at best.
  std::vector<EvictLossSums> evictLosses;
  std::optional<std::string> problem;
};

} // namespace

StatusOr<Statistics> calibrate(const import::ImportedModel &model,
                               const std::string &textPath,
                               const CalibrationOptions &options) {
  if (options.tokens < 1 || options.window < 1)
    return Status::error("calibration needs a positive token count and "
                         "window, got " +
                         std::to_string(options.tokens) + " and " +
                         std::to_string(options.window));
  StatusOr<std::shared_ptr<kvrt::MappedFile>> text =
      kvrt::MappedFile::open(textPath);
  if (!text)
    return text.status();
  llvm::StringRef bytes(reinterpret_cast<const char *>((*text)->data()),
                        (*text)->size());

  StatusOr<std::shared_ptr<const kvrt::Artifact>> artifact =
      exportForCalibration(model);
  if (!artifact)
    return artifact.status();
  const kvrt::schema::Manifest &manifest = (*artifact)->manifest();
  if (manifest.tokenizer().source_case() ==
      kvrt::schema::Tokenizer::SOURCE_NOT_SET)
    return Status::error(model.tokenizer.sourceName +
                         " has no tokenizer, so the model cannot read the "
                         "calibration text " +
                         textPath);
  StatusOr<kvrt::TokenizerSpec> spec = kvrt::tokenizerSpecFromArtifact(
      manifest.tokenizer(), model.tokenizer.sourceName);
  if (!spec)
    return spec.status();
  StatusOr<kvrt::Tokenizer> tokenizer = kvrt::Tokenizer::create(*spec);
  if (!tokenizer)
    return tokenizer.status();

  std::vector<int32_t> ids = tokenizer->encode(bytes, /*addSpecial=*/false);
  if (ids.empty())
    return Status::error(textPath + " holds no text to calibrate on");
  ids.resize(std::min<size_t>(ids.size(), size_t(options.tokens)));
  // Every window starts as a prompt does, with the BOS token the tokenizer
  // adds, and fits the model's context with it.
  bool bos = tokenizer->spec().addBos && tokenizer->spec().bosId >= 0;
  int64_t context = manifest.model().max_positions() - (bos ? 1 : 0);
  int64_t window = std::min({options.window, context, int64_t(ids.size())});
  if (window < 1)
    return Status::error("the model's context of " +
                         std::to_string(manifest.model().max_positions()) +
                         " tokens has no room for calibration text after "
                         "its BOS token");

  if (manifest.cache_size() == 0)
    return Status::error(model.tokenizer.sourceName +
                         ": the model has no KV cache to calibrate");
  const kvrt::schema::CacheLayout &firstLayer = manifest.cache(0);
  StatisticsRecorder recorder(size_t(manifest.cache_size()),
                              manifest.model().num_heads(),
                              firstLayer.kv_heads(), firstLayer.head_dim(),
                              options.attentionSinks, options.attentionWindow);
  kvrt::EngineOptions engineOptions;
  engineOptions.threads = options.threads;
  engineOptions.cacheTokens = uint64_t(window) + 1;
  engineOptions.observer = &recorder;
  StatusOr<std::unique_ptr<kvrt::Engine>> engine =
      kvrt::Engine::create(*artifact, engineOptions);
  if (!engine)
    return engine.status();
  for (size_t start = 0; start < ids.size(); start += size_t(window)) {
    StatusOr<kvrt::SequenceId> sequence = (*engine)->addSequence();
    if (!sequence)
      return sequence.status();
    kvrt::SequenceTokens tokens;
    tokens.sequence = *sequence;
    if (bos)
      tokens.tokens.push_back(tokenizer->spec().bosId);
    size_t end = std::min(ids.size(), start + size_t(window));
    tokens.tokens.insert(tokens.tokens.end(), ids.begin() + start,
                         ids.begin() + end);
    KVRT_RETURN_IF_ERROR((*engine)->prefill({tokens}));
    recorder.endSequence();
    KVRT_RETURN_IF_ERROR((*engine)->removeSequence(*sequence));
    if (recorder.failure())
      return Status::error(textPath + ": " + *recorder.failure());
  }

  Statistics stats;
  std::string file = llvm::sys::path::filename(textPath).str();
  stats.source.file =
      llvm::json::isUTF8(file) ? file : llvm::json::fixUTF8(file);
  stats.source.xxh64 = llvm::xxHash64(bytes);
  stats.source.tokens = int64_t(ids.size());
  stats.source.window = window;
  stats.kvHeads = firstLayer.kv_heads();
  stats.headDim = firstLayer.head_dim();
  stats.heads = manifest.model().num_heads();
  StatusOr<std::vector<LayerStatistics>> layers = recorder.statistics();
  if (!layers)
    return Status::error(model.tokenizer.sourceName + ": " +
                         layers.status().message());
  stats.layers = std::move(*layers);
  if (stats.hasAttentionMoment()) {
    stats.attentionSinks = options.attentionSinks;
    stats.attentionWindow = options.attentionWindow;
  }
  return stats;
}

} // namespace kvopt::calibrate
