//===- LowRankReport.cpp - kvopt calibrate --lowrank-report ---------------===//
#include "tools/kvopt/LowRankReport.h"

#include "tools/kvopt/JsonWriter.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

using kvopt::calibrate::kLowRankRatios;
using kvopt::calibrate::LayerLowRank;
using kvopt::calibrate::RankErrors;
using kvopt::calibrate::SideLowRank;
using kvopt::calibrate::Statistics;

namespace kvopt::cli {
namespace {

constexpr const char *kSides[] = {"key", "value"};
constexpr const char *kBases[] = {"per_head", "shared"};

const RankErrors &basis(const SideLowRank &side, int b) {
  return b ? side.shared : side.perHead;
}

const SideLowRank &sideOf(const LayerLowRank &layer, int s) {
  return s ? layer.value : layer.key;
}

/// The member `name`: an array of `values`.
template <typename T>
void writeArray(JsonWriter &json, const char *name,
                const std::vector<T> &values) {
  json.key(name);
  json.beginArray();
  for (T v : values)
    json.value(v);
  json.endArray();
}

/// The errors at the ratios' ranks.
std::vector<double> ratioErrors(const RankErrors &errors, int64_t headDim) {
  std::vector<double> out;
  for (double ratio : kLowRankRatios)
    out.push_back(
        errors.error[size_t(calibrate::rankForRatio(ratio, headDim))]);
  return out;
}

void writeErrors(JsonWriter &json, const RankErrors &errors, int64_t headDim) {
  writeArray(json, "error", ratioErrors(errors, headDim));
  json.member("rank95", errors.rank95);
  json.member("rank99", errors.rank99);
}

/// Over layers: the mean and the largest error at each ratio, and the
/// mean and largest rank95 and rank99.
struct Summary {
  std::vector<double> mean, worst;
  double meanRank95 = 0, meanRank99 = 0;
  int64_t worstRank95 = 0, worstRank99 = 0;
};

Summary summarize(const std::vector<LayerLowRank> &layers, int s, int b,
                  int64_t headDim) {
  Summary out;
  out.mean.assign(kLowRankRatios.size(), 0.0);
  out.worst.assign(kLowRankRatios.size(), 0.0);
  for (const LayerLowRank &layer : layers) {
    const RankErrors &e = basis(sideOf(layer, s), b);
    std::vector<double> errors = ratioErrors(e, headDim);
    for (size_t i = 0; i < errors.size(); ++i) {
      double error = errors[i];
      out.mean[i] += error / double(layers.size());
      out.worst[i] = std::max(out.worst[i], error);
    }
    out.meanRank95 += double(e.rank95) / double(layers.size());
    out.meanRank99 += double(e.rank99) / double(layers.size());
    out.worstRank95 = std::max(out.worstRank95, e.rank95);
    out.worstRank99 = std::max(out.worstRank99, e.rank99);
  }
  return out;
}

} // namespace

void writeLowRankJson(std::ostream &os, const Statistics &stats,
                      const std::vector<LayerLowRank> &layers) {
  JsonWriter json(os);
  json.beginObject();
  json.member("format", "kvopt-lowrank-report");
  json.member("version", 1);
  json.key("source");
  json.beginObject();
  json.member("file", stats.source.file);
  char hash[24];
  std::snprintf(hash, sizeof hash, "%016" PRIx64, stats.source.xxh64);
  json.member("xxh64", hash);
  json.member("tokens", stats.source.tokens);
  json.endObject();
  json.key("model");
  json.beginObject();
  json.member("layers", int64_t(layers.size()));
  json.member("kv_heads", stats.kvHeads);
  json.member("head_dim", stats.headDim);
  json.endObject();
  std::vector<double> ratios(kLowRankRatios.begin(), kLowRankRatios.end());
  std::vector<int64_t> ranks;
  for (double ratio : kLowRankRatios)
    ranks.push_back(calibrate::rankForRatio(ratio, stats.headDim));
  writeArray(json, "ratios", ratios);
  writeArray(json, "ranks", ranks);

  json.key("layers");
  json.beginArray();
  for (const LayerLowRank &layer : layers) {
    json.beginObject();
    for (int s = 0; s < 2; ++s) {
      const SideLowRank &side = sideOf(layer, s);
      json.key(kSides[s]);
      json.beginObject();
      json.key("per_head");
      json.beginObject();
      writeErrors(json, side.perHead, stats.headDim);
      json.key("heads");
      json.beginArray();
      for (const RankErrors &head : side.heads) {
        json.beginObject();
        writeErrors(json, head, stats.headDim);
        json.endObject();
      }
      json.endArray();
      json.endObject();
      json.key("shared");
      json.beginObject();
      writeErrors(json, side.shared, stats.headDim);
      json.endObject();
      json.endObject();
    }
    json.endObject();
  }
  json.endArray();

  json.key("summary");
  json.beginObject();
  for (int s = 0; s < 2; ++s) {
    json.key(kSides[s]);
    json.beginObject();
    for (int b = 0; b < 2; ++b) {
      Summary sum = summarize(layers, s, b, stats.headDim);
      json.key(kBases[b]);
      json.beginObject();
      writeArray(json, "mean_error", sum.mean);
      writeArray(json, "worst_error", sum.worst);
      json.member("mean_rank95", sum.meanRank95);
      json.member("worst_rank95", sum.worstRank95);
      json.member("mean_rank99", sum.meanRank99);
      json.member("worst_rank99", sum.worstRank99);
      json.endObject();
    }
    json.endObject();
  }
  json.endObject();
  json.endObject();
  os << "\n";
}

void printLowRankTable(std::ostream &os, const Statistics &stats,
                       const std::vector<LayerLowRank> &layers) {
  char line[160];
  os << "low-rank report: discarded share of the centred variance at rank r "
        "(keys before RoPE, values; head_dim "
     << stats.headDim << ")\n";
  std::snprintf(line, sizeof line, "%-6s %-5s %-8s", "layer", "side", "basis");
  os << line;
  for (double ratio : kLowRankRatios) {
    std::snprintf(line, sizeof line, "  r=%-5" PRId64,
                  calibrate::rankForRatio(ratio, stats.headDim));
    os << line;
  }
  os << "  rank95  rank99\n";
  auto row = [&](const std::string &layer, int s, int b,
                 const std::vector<double> &errors, const std::string &r95,
                 const std::string &r99) {
    std::snprintf(line, sizeof line, "%-6s %-5s %-8s", layer.c_str(),
                  s ? "V" : "K", b ? "shared" : "per-head");
    os << line;
    for (double e : errors) {
      std::snprintf(line, sizeof line, "  %-7.4f", e);
      os << line;
    }
    std::snprintf(line, sizeof line, "  %-6s  %s\n", r95.c_str(), r99.c_str());
    os << line;
  };
  for (size_t l = 0; l < layers.size(); ++l)
    for (int s = 0; s < 2; ++s)
      for (int b = 0; b < 2; ++b) {
        const RankErrors &e = basis(sideOf(layers[l], s), b);
        row(std::to_string(l), s, b, ratioErrors(e, stats.headDim),
            std::to_string(e.rank95), std::to_string(e.rank99));
      }
  for (int s = 0; s < 2; ++s)
    for (int b = 0; b < 2; ++b) {
      Summary sum = summarize(layers, s, b, stats.headDim);
      char r95[16], r99[16];
      std::snprintf(r95, sizeof r95, "%.1f", sum.meanRank95);
      std::snprintf(r99, sizeof r99, "%.1f", sum.meanRank99);
      row("mean", s, b, sum.mean, r95, r99);
      row("worst", s, b, sum.worst, std::to_string(sum.worstRank95),
          std::to_string(sum.worstRank99));
    }
}

} // namespace kvopt::cli
