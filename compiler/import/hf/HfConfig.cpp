//===- HfConfig.cpp - Hugging Face config.json ----------------------------===//
#include "compiler/import/hf/HfConfig.h"

#include "kvrt/Json.h"
#include "kvrt/Quote.h"

#include <cmath>

using kvrt::Status;
using kvrt::StatusOr;
using kvrt::json::Value;

namespace kvopt::import {

namespace {

/// Typed reads of config.json fields with messages naming the field.
class Fields {
public:
  Fields(const Value &object, const std::string &path, std::string prefix = "")
      : object(object), path(path), prefix(std::move(prefix)) {}

  Status error(const std::string &key, const std::string &what) const {
    return Status::error(path + ": field '" + prefix + key + "' " + what);
  }

  /// A positive integer, or `fallback` when absent and a fallback is given.
  StatusOr<int64_t> positive(const std::string &key,
                             std::optional<int64_t> fallback = {}) const {
    const Value *v = object.find(key);
    if (!v || v->isNull()) {
      if (fallback)
        return *fallback;
      return error(key, "is missing");
    }
    if (!v->isNumber() || !v->asInt() || *v->asInt() <= 0 ||
        *v->asInt() > (int64_t(1) << 40))
      return error(key, "must be a positive integer");
    return *v->asInt();
  }

  StatusOr<double> number(const std::string &key, double fallback,
                          bool positiveOnly = true) const {
    const Value *v = object.find(key);
    if (!v || v->isNull())
      return fallback;
    if (!v->isNumber() || !std::isfinite(v->asDouble()) ||
        (positiveOnly && !(v->asDouble() > 0)))
      return error(key, positiveOnly ? "must be a positive number"
                                     : "must be a number");
    return v->asDouble();
  }

  StatusOr<bool> boolean(const std::string &key, bool fallback) const {
    const Value *v = object.find(key);
    if (!v || v->isNull())
      return fallback;
    if (!v->isBool())
      return error(key, "must be true or false");
    return v->asBool();
  }

  const Value *find(const std::string &key) const { return object.find(key); }

private:
  const Value &object;
  const std::string &path;
  std::string prefix;
};

Status parseRopeScaling(const Value &v, const std::string &path,
                        ModelConfig &cfg) {
  if (v.isNull())
    return Status::ok();
  if (!v.isObject())
    return Status::error(path + ": field 'rope_scaling' must be an object or "
                                "null");
  Fields f(v, path, "rope_scaling.");
  const Value *type = v.find("rope_type");
  if (!type)
    type = v.find("type");
  if (!type || !type->isString())
    return f.error("rope_type", "is missing or not a string");
  const std::string &kind = type->asString();
  RopeScaling &s = cfg.ropeScaling;
  if (kind == "default")
    return Status::ok();
  KVRT_ASSIGN_OR_RETURN(s.factor, f.number("factor", 1.0));
  if (kind == "linear") {
    s.kind = RopeScalingKind::Linear;
  } else if (kind == "llama3") {
    s.kind = RopeScalingKind::Llama3;
    KVRT_ASSIGN_OR_RETURN(s.lowFreqFactor, f.number("low_freq_factor", 1.0));
    KVRT_ASSIGN_OR_RETURN(s.highFreqFactor, f.number("high_freq_factor", 4.0));
    KVRT_ASSIGN_OR_RETURN(s.originalMaxPosition,
                          f.positive("original_max_position_embeddings"));
    if (!(s.highFreqFactor > s.lowFreqFactor))
      return f.error("high_freq_factor", "must exceed low_freq_factor");
  } else if (kind == "yarn") {
    s.kind = RopeScalingKind::Yarn;
    KVRT_ASSIGN_OR_RETURN(
        s.originalMaxPosition,
        f.positive("original_max_position_embeddings", cfg.maxPositions));
    KVRT_ASSIGN_OR_RETURN(s.betaFast, f.number("beta_fast", 32.0));
    KVRT_ASSIGN_OR_RETURN(s.betaSlow, f.number("beta_slow", 1.0));
    KVRT_ASSIGN_OR_RETURN(s.attentionFactor, f.number("attention_factor", 0.0,
                                                      /*positiveOnly=*/false));
  } else {
    return f.error("rope_type", "is " + kvrt::quote(kind) +
                                    "; supported: default, linear, llama3, "
                                    "yarn");
  }
  return Status::ok();
}

Status parseTokenIds(const Fields &f, ModelConfig &cfg) {
  // Ids index the vocabulary (the runtime masks and stops on them).
  auto inVocabulary = [&](const char *key, int64_t id) {
    return id >= 0 && id < cfg.vocabSize
               ? Status::ok()
               : f.error(key, "holds " + std::to_string(id) +
                                  ", outside the vocabulary of " +
                                  std::to_string(cfg.vocabSize) + " tokens");
  };
  if (const Value *bos = f.find("bos_token_id"); bos && bos->asInt()) {
    KVRT_RETURN_IF_ERROR(inVocabulary("bos_token_id", *bos->asInt()));
    cfg.bosId = *bos->asInt();
  }
  const Value *eos = f.find("eos_token_id");
  if (!eos || eos->isNull())
    return Status::ok();
  if (eos->isNumber() && eos->asInt()) {
    KVRT_RETURN_IF_ERROR(inVocabulary("eos_token_id", *eos->asInt()));
    cfg.eosIds.push_back(*eos->asInt());
    return Status::ok();
  }
  if (!eos->isArray())
    return f.error("eos_token_id", "must be an integer or a list of integers");
  for (const Value &id : eos->items()) {
    if (!id.isNumber() || !id.asInt())
      return f.error("eos_token_id", "must be an integer or a list of "
                                     "integers");
    KVRT_RETURN_IF_ERROR(inVocabulary("eos_token_id", *id.asInt()));
    cfg.eosIds.push_back(*id.asInt());
  }
  return Status::ok();
}

} // namespace

StatusOr<ModelConfig> parseHfConfig(std::string_view text,
                                    const std::string &path) {
  StatusOr<Value> doc = kvrt::json::parse(text, path);
  if (!doc)
    return doc.status();
  if (!doc->isObject())
    return Status::error(path + ": the top level must be a JSON object");
  Fields f(*doc, path);
  ModelConfig cfg;

  const Value *archs = doc->find("architectures");
  if (!archs || !archs->isArray() || archs->items().size() != 1 ||
      !archs->items()[0].isString())
    return f.error("architectures", "must list exactly one architecture");
  const std::string &arch = archs->items()[0].asString();
  if (arch == "LlamaForCausalLM")
    cfg.architecture = "llama";
  else if (arch == "MistralForCausalLM")
    cfg.architecture = "mistral";
  else if (arch == "Qwen2ForCausalLM")
    cfg.architecture = "qwen2";
  else if (arch == "Qwen3ForCausalLM")
    cfg.architecture = "qwen3";
  else
    return f.error("architectures",
                   "names " + kvrt::quote(arch) +
                       ", which kvopt does not import; supported: "
                       "LlamaForCausalLM, MistralForCausalLM, "
                       "Qwen2ForCausalLM, Qwen3ForCausalLM");

  KVRT_ASSIGN_OR_RETURN(cfg.vocabSize, f.positive("vocab_size"));
  KVRT_ASSIGN_OR_RETURN(cfg.hiddenSize, f.positive("hidden_size"));
  KVRT_ASSIGN_OR_RETURN(cfg.intermediateSize, f.positive("intermediate_size"));
  KVRT_ASSIGN_OR_RETURN(cfg.numLayers, f.positive("num_hidden_layers"));
  KVRT_ASSIGN_OR_RETURN(cfg.numHeads, f.positive("num_attention_heads"));
  KVRT_ASSIGN_OR_RETURN(cfg.numKvHeads,
                        f.positive("num_key_value_heads", cfg.numHeads));
  if (cfg.hiddenSize % cfg.numHeads != 0 && !f.find("head_dim"))
    return f.error("head_dim", "is missing and hidden_size is not a multiple "
                               "of num_attention_heads");
  KVRT_ASSIGN_OR_RETURN(cfg.headDim,
                        f.positive("head_dim", cfg.hiddenSize / cfg.numHeads));
  if (cfg.numHeads % cfg.numKvHeads != 0)
    return f.error("num_key_value_heads",
                   "(" + std::to_string(cfg.numKvHeads) +
                       ") must divide num_attention_heads (" +
                       std::to_string(cfg.numHeads) + ")");
  if (cfg.headDim % 2 != 0)
    return f.error("head_dim", "must be even for rotary embeddings");
  KVRT_ASSIGN_OR_RETURN(cfg.maxPositions,
                        f.positive("max_position_embeddings", int64_t(4096)));
  KVRT_ASSIGN_OR_RETURN(cfg.rmsNormEps, f.number("rms_norm_eps", 1e-6));
  KVRT_ASSIGN_OR_RETURN(cfg.ropeTheta, f.number("rope_theta", 10000.0));
  KVRT_ASSIGN_OR_RETURN(cfg.tieWordEmbeddings,
                        f.boolean("tie_word_embeddings", false));
  if (const Value *scaling = doc->find("rope_scaling"))
    KVRT_RETURN_IF_ERROR(parseRopeScaling(*scaling, path, cfg));

  cfg.qkNorm = cfg.architecture == "qwen3";
  // Qwen2 always has q/k/v biases; Llama and Qwen3 when attention_bias says.
  bool attentionBias;
  KVRT_ASSIGN_OR_RETURN(attentionBias, f.boolean("attention_bias", false));
  cfg.qkvBias = cfg.architecture == "qwen2" || attentionBias;

  // Mistral applies its sliding window always; Qwen2/3 only when enabled.
  bool useWindow = cfg.architecture == "mistral";
  if (cfg.architecture != "llama" && cfg.architecture != "mistral")
    KVRT_ASSIGN_OR_RETURN(useWindow, f.boolean("use_sliding_window", false));
  if (const Value *w = doc->find("sliding_window");
      useWindow && w && !w->isNull()) {
    int64_t window;
    KVRT_ASSIGN_OR_RETURN(window, f.positive("sliding_window"));
    cfg.slidingWindow = window;
  }
  KVRT_RETURN_IF_ERROR(parseTokenIds(f, cfg));
  return cfg;
}

} // namespace kvopt::import
