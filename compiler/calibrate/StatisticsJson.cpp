//===- StatisticsJson.cpp - Calibration statistics as a JSON file ---------===//
#include "compiler/calibrate/StatisticsJson.h"

#include "kvrt/Json.h"
#include "kvrt/MappedFile.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

using kvrt::Status;
using kvrt::StatusOr;
using kvrt::json::Value;

namespace kvopt::calibrate {
namespace {

constexpr const char *kFormat = "kvopt-calibration";
constexpr int64_t kVersion = 1;
/// Far more than any model's statistics; bounds what a hostile file costs.
constexpr uint64_t kMaxFileBytes = uint64_t(256) << 20;
/// Halfway between FLT_MAX and 2^128: doubles from here on round to an
/// infinite f32 (FLT_MAX written with nine digits lies just above FLT_MAX).
constexpr double kF32Overflow = 0x1.ffffffp127;
/// Layer, head and dimension counts stay below 2^31, as in the artifact.
constexpr int64_t kMaxCount = (int64_t(1) << 31) - 1;

void appendString(std::string &out, const std::string &text) {
  out += '"';
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += char(c);
    }
  }
  out += '"';
}

void appendFloats(const float *values, size_t count, std::string &out) {
  out += '[';
  for (size_t i = 0; i < count; ++i) {
    // Nine significant digits read back to the same f32.
    char number[32];
    std::snprintf(number, sizeof number, "%.9g", double(values[i]));
    out += (i ? ", " : "");
    out += number;
  }
  out += ']';
}

void appendFloats(std::string &out, const std::vector<float> &values) {
  appendFloats(values.data(), values.size(), out);
}

/// `heads` arrays of doubles: each head's `dim` coordinates of `values`
/// ([heads][dim]), or, when `triangle`, the upper triangle of its
/// [dim][dim] matrix row by row. Seventeen significant digits read back to
/// the same double.
void appendMoments(std::string &out, const std::vector<double> &values,
                   int64_t heads, int64_t dim, bool triangle) {
  size_t d = size_t(dim), perHead = triangle ? d * d : d;
  out += '[';
  for (int64_t h = 0; h < heads; ++h) {
    out += h ? ", [" : "[";
    const double *head = values.data() + size_t(h) * perHead;
    bool first = true;
    for (size_t i = 0; i < (triangle ? d : 1); ++i)
      for (size_t j = triangle ? i : 0; j < d; ++j) {
        char number[32];
        std::snprintf(number, sizeof number, "%.17g", head[i * d + j]);
        out += first ? "" : ", ";
        out += number;
        first = false;
      }
    out += ']';
  }
  out += ']';
}

/// `values` ([heads][pairs][2], or [heads][pairs] when not `complex`) as
/// nested arrays.
void appendPairs(std::string &out, const std::vector<float> &values,
                 int64_t heads, int64_t pairs, bool complex) {
  size_t perHead = size_t(pairs) * (complex ? 2 : 1);
  out += '[';
  for (int64_t h = 0; h < heads; ++h) {
    out += h ? ", " : "";
    const float *head = values.data() + size_t(h) * perHead;
    if (!complex) {
      appendFloats(head, perHead, out);
      continue;
    }
    out += '[';
    for (int64_t f = 0; f < pairs; ++f) {
      out += f ? ", " : "";
      appendFloats(head + 2 * f, 2, out);
    }
    out += ']';
  }
  out += ']';
}

/// Reads the members of a statistics document into `out` parameters,
/// naming each field it refuses by its path (`layers[3].key_absmax`).
class Reader {
public:
  explicit Reader(const std::string &file) : file(file) {}

  Status fail(const std::string &field, const std::string &problem) const {
    return Status::error(file + ": " + field + " " + problem);
  }

  Status member(const Value &object, const std::string &path, const char *key,
                Value::Kind kind, const Value *&out) const {
    out = object.find(key);
    if (!out)
      return fail(join(path, key), "is missing");
    if (out->kind() != kind)
      return fail(join(path, key), std::string("must be ") +
                                       Value::kindName(kind) + ", not " +
                                       Value::kindName(out->kind()));
    return Status::ok();
  }

  Status integer(const Value &object, const std::string &path, const char *key,
                 int64_t low, int64_t high, int64_t &out) const {
    const Value *value;
    KVRT_RETURN_IF_ERROR(member(object, path, key, Value::Kind::Number, value));
    std::optional<int64_t> n = value->asInt();
    if (!n || *n < low || *n > high)
      return fail(join(path, key), "must be an integer in [" +
                                       std::to_string(low) + ", " +
                                       std::to_string(high) + "]");
    out = *n;
    return Status::ok();
  }

  /// `count` finite, non-negative f32 values.
  Status perHead(const Value &object, const std::string &path, const char *key,
                 int64_t count, std::vector<float> &out) const {
    const Value *array;
    KVRT_RETURN_IF_ERROR(member(object, path, key, Value::Kind::Array, array));
    std::string field = join(path, key);
    const std::vector<Value> &items = array->items();
    if (int64_t(items.size()) != count)
      return fail(field, "has " + std::to_string(items.size()) +
                             " values; model.kv_heads says " +
                             std::to_string(count));
    for (size_t i = 0; i < items.size(); ++i) {
      double v = items[i].asDouble();
      if (!items[i].isNumber() || !(v >= 0 && v < kF32Overflow))
        return fail(field + "[" + std::to_string(i) + "]",
                    "must be a finite, non-negative f32");
      out.push_back(float(v));
    }
    return Status::ok();
  }

  /// An eviction loss curve: at least one value in [0, 1], none above the
  /// one before it.
  Status lossCurve(const Value &object, const std::string &path,
                   const char *key, std::vector<float> &out) const {
    const Value *array;
    KVRT_RETURN_IF_ERROR(member(object, path, key, Value::Kind::Array, array));
    std::string field = join(path, key);
    const std::vector<Value> &items = array->items();
    if (items.empty())
      return fail(field, "is empty; it needs the loss at 1/G, 2/G, ..., 1 of "
                         "the entries");
    for (size_t i = 0; i < items.size(); ++i) {
      double v = items[i].asDouble();
      if (!items[i].isNumber() || !(v >= 0 && v <= 1) ||
          (i && float(v) > out.back()))
        return fail(field + "[" + std::to_string(i) + "]",
                    "must be in [0, 1] and not above the value before it");
      out.push_back(float(v));
    }
    return Status::ok();
  }

  /// The member `key`: an array of one entry per head, `heads` of them as
  /// model.`headsName` says.
  Status headArray(const Value &object, const std::string &path,
                   const char *key, int64_t heads, const char *headsName,
                   const Value *&array) const {
    KVRT_RETURN_IF_ERROR(member(object, path, key, Value::Kind::Array, array));
    if (int64_t(array->items().size()) != heads)
      return fail(join(path, key), "has " +
                                       std::to_string(array->items().size()) +
                                       " heads; model." + headsName + " says " +
                                       std::to_string(heads));
    return Status::ok();
  }

  /// `heads` arrays of `pairCount` finite f32 values, each a [real, imaginary]
  /// array when `complex`, non-negative when not.
  Status pairArrays(const Value &object, const std::string &path,
                    const char *key, int64_t heads, int64_t pairCount,
                    bool complex, std::vector<float> &out) const {
    const Value *array;
    KVRT_RETURN_IF_ERROR(headArray(
        object, path, key, heads, key[0] == 'q' ? "heads" : "kv_heads", array));
    std::string field = join(path, key);
    for (size_t h = 0; h < array->items().size(); ++h) {
      const Value &head = array->items()[h];
      std::string headField = field + "[" + std::to_string(h) + "]";
      if (!head.isArray() || int64_t(head.items().size()) != pairCount)
        return fail(headField, "must be an array of " +
                                   std::to_string(pairCount) +
                                   " entries, one per RoPE frequency pair");
      for (size_t f = 0; f < head.items().size(); ++f) {
        std::string at = headField + "[" + std::to_string(f) + "]";
        const Value &entry = head.items()[f];
        if (complex && (!entry.isArray() || entry.items().size() != 2))
          return fail(at, "must be a [real, imaginary] pair of numbers");
        for (size_t c = 0; c < (complex ? 2u : 1u); ++c) {
          const Value &item = complex ? entry.items()[c] : entry;
          double v = item.asDouble();
          bool ok = item.isNumber() && std::fabs(v) < kF32Overflow &&
                    (complex || v >= 0);
          if (!ok)
            return fail(complex ? at + "[" + std::to_string(c) + "]" : at,
                        complex ? "must be a finite f32"
                                : "must be a finite, non-negative f32");
          out.push_back(float(v));
        }
      }
    }
    return Status::ok();
  }

  /// `heads` arrays of finite numbers: `dim` of them per head into `out`
  /// ([heads][dim]), or, when `triangle`, the upper triangle of a symmetric
  /// [dim][dim] matrix with a non-negative diagonal, row by row
  /// (dim (dim + 1) / 2 numbers), expanded into `out` ([heads][dim][dim]).
  Status moments(const Value &object, const std::string &path, const char *key,
                 int64_t heads, int64_t dim, bool triangle,
                 std::vector<double> &out,
                 const char *headsName = "kv_heads") const {
    const Value *array;
    KVRT_RETURN_IF_ERROR(headArray(object, path, key, heads, headsName, array));
    std::string field = join(path, key);
    // dim < 2^31, so the count fits; it is checked against the items read
    // before anything of its size is allocated.
    int64_t count = triangle ? dim * (dim + 1) / 2 : dim;
    for (const Value &head : array->items())
      if (!head.isArray() || int64_t(head.items().size()) != count)
        return fail(field, "must hold, per KV head, an array of " +
                               std::to_string(count) +
                               (triangle ? " numbers (the upper triangle of "
                                           "a model.head_dim square matrix)"
                                         : " numbers (model.head_dim)"));
    size_t d = size_t(dim), base = out.size();
    out.resize(base + size_t(heads) * (triangle ? d * d : d));
    for (size_t h = 0; h < size_t(heads); ++h) {
      const std::vector<Value> &items = array->items()[h].items();
      double *head = out.data() + base + h * (triangle ? d * d : d);
      size_t k = 0;
      for (size_t i = 0; i < (triangle ? d : 1); ++i)
        for (size_t j = triangle ? i : 0; j < d; ++j, ++k) {
          double v = items[k].asDouble();
          bool diagonal = triangle && i == j;
          if (!items[k].isNumber() || !std::isfinite(v) || (diagonal && v < 0))
            return fail(field + "[" + std::to_string(h) + "][" +
                            std::to_string(k) + "]",
                        diagonal ? "must be a finite, non-negative number "
                                   "(a variance)"
                                 : "must be a finite number");
          head[triangle ? i * d + j : j] = v;
          if (triangle)
            head[j * d + i] = v;
        }
    }
    return Status::ok();
  }

private:
  static std::string join(const std::string &path, const char *key) {
    return path.empty() ? key : path + "." + key;
  }

  const std::string &file;
};

} // namespace

std::string statisticsToJson(const Statistics &stats) {
  const CalibrationSource &s = stats.source;
  char hash[24];
  std::snprintf(hash, sizeof hash, "%016" PRIx64, s.xxh64);
  std::string out = "{\n  \"format\": \"";
  out += kFormat;
  out += "\",\n  \"version\": " + std::to_string(kVersion) +
         ",\n  \"source\": {\"file\": ";
  appendString(out, s.file);
  out += ", \"xxh64\": \"" + std::string(hash) +
         "\", \"tokens\": " + std::to_string(s.tokens) +
         ", \"window\": " + std::to_string(s.window);
  if (stats.hasAttentionMoment())
    out += ", \"attention_sinks\": " + std::to_string(stats.attentionSinks) +
           ", \"attention_window\": " + std::to_string(stats.attentionWindow);
  out += "},\n";
  out += "  \"model\": {\"layers\": " + std::to_string(stats.layers.size()) +
         ", \"kv_heads\": " + std::to_string(stats.kvHeads) +
         ", \"head_dim\": " + std::to_string(stats.headDim);
  if (stats.heads)
    out += ", \"heads\": " + std::to_string(stats.heads);
  out += "},\n";
  out += "  \"layers\": [";
  for (size_t i = 0; i < stats.layers.size(); ++i) {
    out += i ? ",\n    " : "\n    ";
    out += "{\"key_absmax\": ";
    appendFloats(out, stats.layers[i].keyAbsMax);
    out += ", \"value_absmax\": ";
    appendFloats(out, stats.layers[i].valueAbsMax);
    if (stats.heads) {
      const LayerStatistics &l = stats.layers[i];
      int64_t pairs = stats.headDim / 2;
      out += ",\n     \"query_center\": ";
      appendPairs(out, l.queryCenter, stats.heads, pairs, true);
      out += ",\n     \"query_magnitude\": ";
      appendPairs(out, l.queryMagnitude, stats.heads, pairs, false);
      out += ",\n     \"key_center\": ";
      appendPairs(out, l.keyCenter, stats.kvHeads, pairs, true);
      out += ",\n     \"key_magnitude\": ";
      appendPairs(out, l.keyMagnitude, stats.kvHeads, pairs, false);
    }
    if (stats.hasMoments()) {
      const LayerStatistics &l = stats.layers[i];
      int64_t heads = stats.kvHeads, dim = stats.headDim;
      out += ",\n     \"key_mean\": ";
      appendMoments(out, l.keyMean, heads, dim, false);
      out += ",\n     \"key_covariance\": ";
      appendMoments(out, l.keyCovariance, heads, dim, true);
      out += ",\n     \"value_mean\": ";
      appendMoments(out, l.valueMean, heads, dim, false);
      out += ",\n     \"value_covariance\": ";
      appendMoments(out, l.valueCovariance, heads, dim, true);
    }
    if (stats.hasAttentionMoment()) {
      out += ",\n     \"value_attention_moment\": ";
      appendMoments(out, stats.layers[i].valueAttentionMoment, stats.kvHeads,
                    stats.headDim, true);
    }
    if (stats.hasJointMoments()) {
      // One group of every KV head: the upper triangle of its square.
      const LayerStatistics &l = stats.layers[i];
      int64_t size = stats.kvHeads * stats.headDim;
      out += ",\n     \"key_joint_moment\": ";
      appendMoments(out, l.keyJointMoment, 1, size, true);
      out += ",\n     \"value_joint_moment\": ";
      appendMoments(out, l.valueJointMoment, 1, size, true);
      if (!l.valueAttentionJointMoment.empty()) {
        out += ",\n     \"value_attention_joint_moment\": ";
        appendMoments(out, l.valueAttentionJointMoment, 1, size, true);
      }
    }
    if (stats.hasEvictLoss()) {
      out += ",\n     \"evict_loss\": ";
      appendFloats(out, stats.layers[i].evictLoss);
    }
    out += "}";
  }
  out += "\n  ]\n}\n";
  return out;
}

StatusOr<Statistics> statisticsFromJson(std::string_view text,
                                        const std::string &fileName) {
  StatusOr<Value> parsed = kvrt::json::parse(text, fileName);
  if (!parsed)
    return parsed.status();
  const Value &root = *parsed;
  Reader r(fileName);
  if (!root.isObject())
    return Status::error(fileName +
                         ": not a kvopt calibration file: it "
                         "holds a JSON " +
                         Value::kindName(root.kind()) + ", not an object");
  const Value *format = root.find("format");
  if (!format || !format->isString() || format->asString() != kFormat)
    return Status::error(fileName +
                         ": not a kvopt calibration file: its "
                         "format member is not \"" +
                         kFormat + "\"");
  int64_t version;
  KVRT_RETURN_IF_ERROR(r.integer(root, "", "version", 1, kMaxCount, version));
  if (version != kVersion)
    return r.fail("version", "is " + std::to_string(version) +
                                 "; this kvopt reads version " +
                                 std::to_string(kVersion));

  Statistics stats;
  CalibrationSource &source = stats.source;
  const Value *sourceObject, *file, *hash;
  KVRT_RETURN_IF_ERROR(
      r.member(root, "", "source", Value::Kind::Object, sourceObject));
  KVRT_RETURN_IF_ERROR(
      r.member(*sourceObject, "source", "file", Value::Kind::String, file));
  if (file->asString().empty())
    return r.fail("source.file", "is empty");
  source.file = file->asString();
  KVRT_RETURN_IF_ERROR(
      r.member(*sourceObject, "source", "xxh64", Value::Kind::String, hash));
  const std::string &hex = hash->asString();
  if (hex.size() != 16 ||
      hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    return r.fail("source.xxh64", "must be 16 lowercase hexadecimal digits");
  source.xxh64 = std::strtoull(hex.c_str(), nullptr, 16);
  KVRT_RETURN_IF_ERROR(r.integer(*sourceObject, "source", "tokens", 1,
                                 INT64_MAX, source.tokens));
  KVRT_RETURN_IF_ERROR(r.integer(*sourceObject, "source", "window", 1,
                                 source.tokens, source.window));

  const Value *model, *layers;
  int64_t layerCount;
  KVRT_RETURN_IF_ERROR(r.member(root, "", "model", Value::Kind::Object, model));
  KVRT_RETURN_IF_ERROR(
      r.integer(*model, "model", "layers", 1, kMaxCount, layerCount));
  KVRT_RETURN_IF_ERROR(
      r.integer(*model, "model", "kv_heads", 1, kMaxCount, stats.kvHeads));
  KVRT_RETURN_IF_ERROR(
      r.integer(*model, "model", "head_dim", 1, kMaxCount, stats.headDim));
  // The pre-RoPE statistics are in files from kvopt versions that record
  // them, with the query heads they describe.
  if (model->find("heads")) {
    KVRT_RETURN_IF_ERROR(
        r.integer(*model, "model", "heads", 1, kMaxCount, stats.heads));
    if (stats.heads % stats.kvHeads)
      return r.fail("model.heads", "must be a multiple of model.kv_heads");
    if (stats.headDim % 2)
      return r.fail("model.head_dim",
                    "must be even when the file has pre-RoPE statistics");
  }

  KVRT_RETURN_IF_ERROR(
      r.member(root, "", "layers", Value::Kind::Array, layers));
  if (int64_t(layers->items().size()) != layerCount)
    return r.fail("layers", "has " + std::to_string(layers->items().size()) +
                                " entries; model.layers says " +
                                std::to_string(layerCount));
  bool attentionMoment = !layers->items().empty() &&
                         layers->items()[0].isObject() &&
                         layers->items()[0].find("value_attention_moment");
  bool evictLoss = !layers->items().empty() && layers->items()[0].isObject() &&
                   layers->items()[0].find("evict_loss");
  bool jointMoments = !layers->items().empty() &&
                      layers->items()[0].isObject() &&
                      layers->items()[0].find("key_joint_moment");
  if (attentionMoment) {
    KVRT_RETURN_IF_ERROR(r.integer(*sourceObject, "source", "attention_sinks",
                                   0, INT64_MAX, stats.attentionSinks));
    KVRT_RETURN_IF_ERROR(r.integer(*sourceObject, "source", "attention_window",
                                   0, INT64_MAX, stats.attentionWindow));
  }
  for (size_t i = 0; i < layers->items().size(); ++i) {
    const Value &layer = layers->items()[i];
    std::string path = "layers[" + std::to_string(i) + "]";
    if (!layer.isObject())
      return r.fail(path, std::string("must be an object, not ") +
                              Value::kindName(layer.kind()));
    LayerStatistics &s = stats.layers.emplace_back();
    KVRT_RETURN_IF_ERROR(
        r.perHead(layer, path, "key_absmax", stats.kvHeads, s.keyAbsMax));
    KVRT_RETURN_IF_ERROR(
        r.perHead(layer, path, "value_absmax", stats.kvHeads, s.valueAbsMax));
    // The means and covariances are in files from kvopt versions that
    // record them: in every layer or in none.
    bool moments = layers->items()[0].isObject() &&
                   layers->items()[0].find("key_covariance");
    if (moments) {
      int64_t heads = stats.kvHeads, dim = stats.headDim;
      KVRT_RETURN_IF_ERROR(
          r.moments(layer, path, "key_mean", heads, dim, false, s.keyMean));
      KVRT_RETURN_IF_ERROR(r.moments(layer, path, "key_covariance", heads, dim,
                                     true, s.keyCovariance));
      KVRT_RETURN_IF_ERROR(
          r.moments(layer, path, "value_mean", heads, dim, false, s.valueMean));
      KVRT_RETURN_IF_ERROR(r.moments(layer, path, "value_covariance", heads,
                                     dim, true, s.valueCovariance));
    } else if (layer.find("key_covariance")) {
      return r.fail(path + ".key_covariance",
                    "is present but layers[0] has none; the covariances "
                    "must be in every layer or in none");
    }
    // The attention-weighted moment is in files from kvopt versions that
    // record it: in every layer or in none.
    if (attentionMoment) {
      KVRT_RETURN_IF_ERROR(r.moments(layer, path, "value_attention_moment",
                                     stats.kvHeads, stats.headDim, true,
                                     s.valueAttentionMoment));
    } else if (layer.find("value_attention_moment")) {
      return r.fail(path + ".value_attention_moment",
                    "is present but layers[0] has none; it must be in every "
                    "layer or in none");
    }
    // The joint moments likewise, the attention-weighted one with the
    // attention-weighted moment: one group of every KV head, its square's
    // upper triangle.
    const int64_t jointSize = stats.kvHeads * stats.headDim;
    const char *oneGroup = "kv_heads (all in one group)";
    if (jointMoments) {
      KVRT_RETURN_IF_ERROR(r.moments(layer, path, "key_joint_moment", 1,
                                     jointSize, true, s.keyJointMoment,
                                     oneGroup));
      KVRT_RETURN_IF_ERROR(r.moments(layer, path, "value_joint_moment", 1,
                                     jointSize, true, s.valueJointMoment,
                                     oneGroup));
      if (attentionMoment)
        KVRT_RETURN_IF_ERROR(
            r.moments(layer, path, "value_attention_joint_moment", 1, jointSize,
                      true, s.valueAttentionJointMoment, oneGroup));
    } else if (layer.find("key_joint_moment")) {
      return r.fail(path + ".key_joint_moment",
                    "is present but layers[0] has none; the joint moments "
                    "must be in every layer or in none");
    }
    // The eviction loss curve likewise, of one length in every layer.
    if (evictLoss) {
      KVRT_RETURN_IF_ERROR(r.lossCurve(layer, path, "evict_loss", s.evictLoss));
      if (s.evictLoss.size() != stats.layers.front().evictLoss.size())
        return r.fail(
            path + ".evict_loss",
            "has " + std::to_string(s.evictLoss.size()) +
                " values but layers[0] has " +
                std::to_string(stats.layers.front().evictLoss.size()));
    } else if (layer.find("evict_loss")) {
      return r.fail(path + ".evict_loss",
                    "is present but layers[0] has none; it must be in every "
                    "layer or in none");
    }
    if (!stats.heads)
      continue;
    int64_t pairs = stats.headDim / 2;
    KVRT_RETURN_IF_ERROR(r.pairArrays(layer, path, "query_center", stats.heads,
                                      pairs, true, s.queryCenter));
    KVRT_RETURN_IF_ERROR(r.pairArrays(layer, path, "query_magnitude",
                                      stats.heads, pairs, false,
                                      s.queryMagnitude));
    KVRT_RETURN_IF_ERROR(r.pairArrays(layer, path, "key_center", stats.kvHeads,
                                      pairs, true, s.keyCenter));
    KVRT_RETURN_IF_ERROR(r.pairArrays(layer, path, "key_magnitude",
                                      stats.kvHeads, pairs, false,
                                      s.keyMagnitude));
  }
  return stats;
}

StatusOr<Statistics> readStatisticsFile(const std::string &path) {
  StatusOr<std::shared_ptr<kvrt::MappedFile>> file =
      kvrt::MappedFile::open(path);
  if (!file)
    return file.status();
  if ((*file)->size() > kMaxFileBytes)
    return Status::error(path + " holds " + std::to_string((*file)->size()) +
                         " bytes, more than the 256 MiB a calibration file "
                         "may have");
  return statisticsFromJson(
      std::string_view(reinterpret_cast<const char *>((*file)->data()),
                       (*file)->size()),
      path);
}

} // namespace kvopt::calibrate
