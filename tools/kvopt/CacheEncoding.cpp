//===- CacheEncoding.cpp --------------------------------------------------===//
#include "tools/kvopt/CacheEncoding.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvopt::cli {

namespace schema = kvrt::schema;

/// " sinks=S window=W" for the tokens an encoding keeps exact, or "".
static std::string exactTokens(const schema::Encoding &e) {
  return (e.sinks() ? " sinks=" + std::to_string(e.sinks()) : "") +
         (e.residual() ? " window=" + std::to_string(e.residual()) : "");
}

/// describeEncoding() with a low-rank encoding's rank spelled `rank`.

static std::string describeWithRank(const schema::Encoding &e,
                                    const std::string &rank) {
  std::string name = kvrt::encodingName(e.kind());
  switch (e.kind()) {
  case schema::ENCODING_FP8:
    return name +
           (e.fp8_format() == schema::FP8_FORMAT_E4M3 ? "<e4m3" : "<e5m2") +
           (e.scale_mode() == schema::SCALE_MODE_PER_HEAD ? " per_head"
                                                          : " dynamic") +
           exactTokens(e) + ">";
  case schema::ENCODING_INT:
    return name + "<bits=" + std::to_string(e.bits()) +
           " group=" + std::to_string(e.group()) +
           " residual=" + std::to_string(e.residual()) + ">";
  case schema::ENCODING_NVFP4:
    return e.sinks() || e.residual()
               ? name + "<" + exactTokens(e).substr(1) + ">"
               : name;
  case schema::ENCODING_POLAR:
    return name + "<bits=" + std::to_string(e.bits()) +
           " seed=" + std::to_string(e.seed()) + (e.qjl() ? " qjl" : "") +
           exactTokens(e) + ">";
  case schema::ENCODING_LOWRANK:
    return name + "<rank=" + rank + " " + describeEncoding(e.latent()) +
           exactTokens(e) +
           (e.group() > 1 ? " group=" + std::to_string(e.group()) : "") +
           (e.folded() ? " folded" : "") + ">";
  default:
    return name;
  }
}

std::string describeEncoding(const schema::Encoding &e) {
  return describeWithRank(e, std::to_string(e.rank()));
}

/// One layer's keys and values: "bf16", or "K fp8<...> V bf16", ranks
/// spelled `keyRank` and `valueRank`.
static std::string describeLayer(const schema::CacheLayout &layer,
                                 const std::string &keyRank,
                                 const std::string &valueRank) {
  std::string key = describeWithRank(layer.key(), keyRank);
  std::string value = describeWithRank(layer.value(), valueRank);
  return key == value ? key : "K " + key + " V " + value;
}
static std::string describeLayer(const schema::CacheLayout &layer) {
  return describeLayer(layer, std::to_string(layer.key().rank()),
                       std::to_string(layer.value().rank()));
}

/// When the layers differ only in their low-rank ranks (allocated across
/// layers), one description with each side's range: "lowrank<rank=8..48
/// bf16>"; nothing otherwise.
static std::optional<std::string>
describeRankRanges(const schema::Manifest &manifest) {
  std::string shape;
  uint32_t low[2] = {~0u, ~0u}, high[2] = {0, 0};
  for (const schema::CacheLayout &layer : manifest.cache()) {
    schema::CacheLayout masked = layer;
    const schema::Encoding *sides[2] = {&layer.key(), &layer.value()};
    for (int side = 0; side < 2; ++side) {
      low[side] = std::min(low[side], sides[side]->rank());
      high[side] = std::max(high[side], sides[side]->rank());
    }
    masked.set_layer(0);
    for (schema::Encoding *e : {masked.mutable_key(), masked.mutable_value()}) {
      e->set_rank(0);
      e->clear_basis_tensor();
      e->clear_scale_tensor();
    }
    std::string described = masked.SerializeAsString();
    if (!shape.empty() && described != shape)
      return std::nullopt;
    shape = described;
  }
  if (manifest.cache().empty() || (low[0] == high[0] && low[1] == high[1]))
    return std::nullopt;
  auto range = [&](int side) {
    return low[side] == high[side]
               ? std::to_string(low[side])
               : std::to_string(low[side]) + ".." + std::to_string(high[side]);
  };
  return describeLayer(manifest.cache(0), range(0), range(1));
}

/// "triattention, budget 0.25 of the tokens seen, window 128, interval 128,
/// sinks 0, per KV head, horizon 65536" (SnapKV adds its observation window
/// and kernel; TriAttention its horizon when the artifact gives one).
std::string describeEviction(const schema::EvictParams &e) {
  static const char *const methods[] = {"triattention", "snapkv", "h2o",
                                        "streaming"};
  std::string text = unsigned(e.method()) < std::size(methods)
                         ? methods[e.method()]
                         : "method " + std::to_string(int(e.method()));
  char budget[64];
  if (e.budget_case() == kvrt::schema::EvictParams::kBudgetFraction)
    std::snprintf(budget, sizeof(budget), "%g of the tokens seen",
                  e.budget_fraction());
  else
    std::snprintf(budget, sizeof(budget), "%llu tokens",
                  (unsigned long long)e.budget_tokens());
  text += std::string(", budget ") + budget + ", window " +
          std::to_string(e.window()) + ", interval " +
          std::to_string(e.interval()) + ", sinks " + std::to_string(e.sinks());
  if (e.method() == kvrt::schema::EVICT_METHOD_SNAPKV)
    text += ", observe " + std::to_string(e.observe()) + ", kernel " +
            std::to_string(e.kernel());
  if (e.method() != kvrt::schema::EVICT_METHOD_STREAMING)
    text += e.heads() == kvrt::schema::EVICT_HEADS_EACH
                ? ", per KV head"
                : ", shared by the KV heads";
  if (e.method() == kvrt::schema::EVICT_METHOD_TRIATTENTION && e.horizon())
    text += ", horizon " + std::to_string(e.horizon());
  if (e.combine() == kvrt::schema::EVICT_COMBINE_ZMAX)
    text += ", query heads by standardised maximum";
  return text;
}

/// "h2o 25%" or "h2o 512 tokens" ("h2o 25% per head" with one selection
/// per KV head): a layer's eviction in a few words.
std::string shortEviction(const schema::EvictParams &e) {
  std::string text = describeEviction(e);
  text = text.substr(0, text.find(','));
  char budget[64];
  if (e.budget_case() == schema::EvictParams::kBudgetFraction)
    std::snprintf(budget, sizeof(budget), " %g%%", 100 * e.budget_fraction());
  else
    std::snprintf(budget, sizeof(budget), " %llu tokens",
                  (unsigned long long)e.budget_tokens());
  text += budget;
  if (e.heads() == schema::EVICT_HEADS_EACH)
    text += " per head";
  if (e.combine() == schema::EVICT_COMBINE_ZMAX)
    text += " zmax";
  return text;
}

namespace {

/// The mean, smallest and largest of the layers' fractions.
struct FractionRange {
  double mean, low, high;
};

/// When all layers evict with the same parameters but for fractional
/// budgets that are not all the same: their range.
std::optional<FractionRange>
allocatedFractions(const schema::Manifest &manifest) {
  std::map<uint32_t, schema::EvictParams> evictions;
  for (const schema::KernelCall &call : manifest.plan().calls())
    if (call.has_evict())
      evictions[call.evict().layer()] = call.evict();
  if (evictions.size() < 2 || evictions.size() != size_t(manifest.cache_size()))
    return std::nullopt;
  const schema::EvictParams &first = evictions.begin()->second;
  FractionRange range{0, first.budget_fraction(), first.budget_fraction()};
  for (auto &[layer, e] : evictions) {
    if (e.budget_case() != schema::EvictParams::kBudgetFraction)
      return std::nullopt;
    schema::EvictParams same = e;
    same.set_layer(first.layer());
    same.set_budget_fraction(first.budget_fraction());
    if (same.SerializeAsString() != first.SerializeAsString())
      return std::nullopt;
    range.mean += e.budget_fraction() / double(evictions.size());
    range.low = std::min(range.low, e.budget_fraction());
    range.high = std::max(range.high, e.budget_fraction());
  }
  if (range.low == range.high)
    return std::nullopt;
  return range;
}

} // namespace

std::optional<std::string>
describeAllocatedBudget(const schema::Manifest &manifest) {
  std::optional<FractionRange> range = allocatedFractions(manifest);
  if (!range)
    return std::nullopt;
  char text[128];
  std::snprintf(text, sizeof(text),
                "%g of the tokens seen on average (%g to %g)", range->mean,
                range->low, range->high);
  return std::string(text);
}

std::string summarizeCache(const schema::Manifest &manifest) {
  std::map<uint32_t, std::string> evictions;
  for (const schema::KernelCall &call : manifest.plan().calls())
    if (call.has_evict())
      evictions[call.evict().layer()] = ", " + shortEviction(call.evict());
  if (std::optional<FractionRange> range = allocatedFractions(manifest)) {
    // One eviction whose budget the layers share unevenly.
    // ", triattention 30% per head": the method, then what follows "%".
    const std::string &layer0 = evictions.begin()->second;
    size_t percent = layer0.find('%');
    std::string text = layer0.substr(0, layer0.rfind(' ', percent));
    char budget[96];
    std::snprintf(budget, sizeof(budget), " %g%% allocated (%g-%g%%)",
                  100 * range->mean, 100 * range->low, 100 * range->high);
    text += budget + layer0.substr(percent + 1);
    for (auto &entry : evictions)
      entry.second = text;
  }
  auto evictionOf = [&](int i) {
    auto found = evictions.find(uint32_t(i));
    return found == evictions.end() ? std::string() : found->second;
  };
  auto describe = [&](int i) {
    return describeLayer(manifest.cache(i)) + evictionOf(i);
  };
  // Layers alike but for their ranks, evicting alike (or not at all).
  bool sameEviction = true;
  for (int i = 1; i < manifest.cache_size(); ++i)
    sameEviction = sameEviction && evictionOf(i) == evictionOf(0);
  if (sameEviction)
    if (std::optional<std::string> ranges = describeRankRanges(manifest))
      return *ranges + evictionOf(0);
  std::string summary;
  int first = 0;
  for (int i = 0; i < manifest.cache_size(); ++i) {
    std::string layer = describe(i);
    bool last = i + 1 == manifest.cache_size();
    if (!last && describe(i + 1) == layer)
      continue;
    if (first == 0 && last)
      return layer;
    summary += (summary.empty() ? "" : ", ") + std::to_string(first) +
               (first == i ? "" : "-" + std::to_string(i)) + " " + layer;
    first = i + 1;
  }
  return summary;
}

} // namespace kvopt::cli
