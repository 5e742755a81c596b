//===- CacheEncoding.cpp --------------------------------------------------===//
#include "tools/kvopt/CacheEncoding.h"

namespace kvopt::cli {

namespace schema = kvrt::schema;

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

/// One layer's keys and values: "bf16", or "K fp8<...> V bf16".
static std::string describeLayer(const schema::CacheLayout &layer) {
  std::string key = describeEncoding(layer.key());
  std::string value = describeEncoding(layer.value());
  return key == value ? key : "K " + key + " V " + value;
}

std::string summarizeCache(const schema::Manifest &manifest) {
  std::string summary;
  int first = 0;
  for (int i = 0; i < manifest.cache_size(); ++i) {
    std::string layer = describeLayer(manifest.cache(i));
    bool last = i + 1 == manifest.cache_size();
    if (!last && describeLayer(manifest.cache(i + 1)) == layer)
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
