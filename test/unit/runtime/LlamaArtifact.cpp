//===- LlamaArtifact.cpp - A .kvpkg from a Hugging Face Llama folder ------===//
#include "LlamaArtifact.h"

#include "kvrt/ArtifactWriter.h"
#include "kvrt/Json.h"
#include "kvrt/MappedFile.h"

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <tuple>
#include <vector>

namespace kvrt::test {
namespace {

StatusOr<std::string> readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error("cannot read '" + path + "'");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A safetensors file: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}}, then the data.
struct Safetensors {
  std::shared_ptr<MappedFile> file;
  Weights tensors;
};

StatusOr<Safetensors> readSafetensors(const std::string &path) {
  StatusOr<std::shared_ptr<MappedFile>> file = MappedFile::open(path);
  if (!file)
    return file.status();
  Safetensors st;
  st.file = *file;
  const uint8_t *bytes = st.file->data();
  uint64_t headerBytes = 0;
  if (!st.file->contains(0, 8))
    return Status::error(path + " is too short for a safetensors header");
  for (int i = 7; i >= 0; --i)
    headerBytes = headerBytes << 8 | bytes[i];
  if (!st.file->contains(8, headerBytes))
    return Status::error(path + ": the header runs past the end of the file");
  StatusOr<json::Value> header = json::parse(
      std::string_view(reinterpret_cast<const char *>(bytes + 8), headerBytes),
      path);
  if (!header)
    return header.status();
  uint64_t dataStart = 8 + headerBytes;
  for (const auto &[name, info] : header->members()) {
    if (name == "__metadata__")
      continue;
    const std::string &dtype = info.find("dtype")->asString();
    WeightRef e;
    e.dtype = dtype == "F32"    ? schema::DTYPE_F32
              : dtype == "F16"  ? schema::DTYPE_F16
              : dtype == "BF16" ? schema::DTYPE_BF16
                                : schema::DTYPE_UNSPECIFIED;
    if (e.dtype == schema::DTYPE_UNSPECIFIED)
      return Status::error(path + ": tensor " + name + " has dtype " + dtype);
    for (const json::Value &d : info.find("shape")->items())
      e.shape.push_back(*d.asInt());
    const auto &offsets = info.find("data_offsets")->items();
    uint64_t begin = uint64_t(*offsets[0].asInt());
    uint64_t end = uint64_t(*offsets[1].asInt());
    if (end < begin || !st.file->contains(dataStart + begin, end - begin))
      return Status::error(path + ": tensor " + name +
                           " lies outside the file");
    e.data = bytes + dataStart + begin;
    st.tensors.emplace(name, e);
  }
  return st;
}

/// Builds the manifest's plan slot by slot, as the compiler's exporter does
/// from the kv module.
class PlanBuilder {
public:
  PlanBuilder(ArtifactWriter &writer, const Weights &weights)
      : writer(writer), weights(weights),
        plan(*writer.manifest().mutable_plan()) {}

  uint32_t slot(const std::string &name, std::vector<int64_t> shape) {
    schema::Slot *s = plan.add_slots();
    s->set_name(name);
    for (int64_t d : shape)
      s->add_shape(d);
    return uint32_t(plan.slots_size() - 1);
  }

  StatusOr<uint32_t> tensor(const std::string &name) {
    auto known = tensorIndex.find(name);
    if (known != tensorIndex.end())
      return known->second;
    auto it = weights.find(name);
    if (it == weights.end())
      return Status::error("the weights have no tensor " + name);
    uint32_t index = writer.addTensor(name, it->second.dtype, it->second.shape,
                                      it->second.data);
    tensorIndex[name] = index;
    return index;
  }

  schema::KernelCall *call(const std::string &kernel, const std::string &name,
                           std::vector<uint32_t> inputs,
                           std::vector<uint32_t> outputs,
                           std::vector<uint32_t> tensors = {}) {
    schema::KernelCall *c = plan.add_calls();
    c->set_kernel(kernel);
    c->set_name(name);
    for (uint32_t i : inputs)
      c->add_inputs(i);
    for (uint32_t o : outputs)
      c->add_outputs(o);
    for (uint32_t t : tensors)
      c->add_tensors(t);
    return c;
  }

  ArtifactWriter &writer;
  const Weights &weights;
  schema::Plan &plan;
  std::map<std::string, uint32_t> tensorIndex;
};

#define TRY_ASSIGN(var, expr)                                                  \
  auto var##OrError = (expr);                                                  \
  if (!var##OrError)                                                           \
    return var##OrError.status();                                              \
  auto var = *var##OrError;

int64_t intField(const json::Value &config, const char *key, int64_t dflt) {
  const json::Value *v = config.find(key);
  return v && v->asInt() ? *v->asInt() : dflt;
}

} // namespace

Status writeLlamaArtifact(const std::string &modelDir, const std::string &path,
                          const LlamaArtifactOptions &options) {
  TRY_ASSIGN(configText, readFile(modelDir + "/config.json"));
  TRY_ASSIGN(config, json::parse(configText, modelDir + "/config.json"));
  TRY_ASSIGN(weights, readSafetensors(modelDir + "/model.safetensors"));
  const json::Value *scaling = config.find("rope_scaling");
  if (scaling && !scaling->isNull())
    return Status::error("this test helper does not read rope_scaling");

  schema::ModelConfig c;
  c.set_architecture("llama");
  c.set_vocab_size(intField(config, "vocab_size", 0));
  c.set_hidden_size(intField(config, "hidden_size", 0));
  c.set_intermediate_size(intField(config, "intermediate_size", 0));
  c.set_num_layers(intField(config, "num_hidden_layers", 0));
  c.set_num_heads(intField(config, "num_attention_heads", 0));
  c.set_num_kv_heads(intField(config, "num_key_value_heads", c.num_heads()));
  c.set_head_dim(intField(config, "head_dim", c.hidden_size() / c.num_heads()));
  c.set_rms_norm_eps(config.find("rms_norm_eps")->asDouble());
  c.set_max_positions(options.maxPositions
                          ? int64_t(options.maxPositions)
                          : intField(config, "max_position_embeddings", 0));
  const json::Value *tied = config.find("tie_word_embeddings");
  c.set_tie_word_embeddings(tied && tied->asBool());
  if (const json::Value *bos = config.find("bos_token_id"); bos && bos->asInt())
    c.set_bos_token_id(*bos->asInt());
  if (const json::Value *eos = config.find("eos_token_id"); eos && eos->asInt())
    c.add_eos_token_ids(*eos->asInt());
  c.mutable_rope()->set_theta(config.find("rope_theta")->asDouble());
  c.mutable_rope()->set_style(schema::ROPE_STYLE_HALF);

  ArtifactWriter writer;
  TRY_ASSIGN(tokenizer, readFile(modelDir + "/tokenizer.json"));
  writer.manifest().mutable_tokenizer()->mutable_hf()->set_tokenizer_json(
      tokenizer);
  KVRT_RETURN_IF_ERROR(buildLlama(writer, c, weights.tensors, options));
  return writer.write(path);
}

Status buildLlama(ArtifactWriter &writer, const schema::ModelConfig &config,
                  const Weights &weights, const LlamaArtifactOptions &options) {
  schema::Manifest &m = writer.manifest();
  m.set_producer("kvrt test LlamaArtifact");
  m.mutable_target()->set_name(options.target);
  *m.mutable_model() = config;
  const schema::ModelConfig &c = config;
  const schema::Rope &rope = c.rope();
  int64_t h = c.hidden_size(), d = c.head_dim(), heads = c.num_heads(),
          kvHeads = c.num_kv_heads(), ffn = c.intermediate_size();
  for (int64_t l = 0; l < c.num_layers(); ++l) {
    schema::CacheLayout *cache = m.add_cache();
    cache->set_layer(uint32_t(l));
    cache->set_kv_heads(uint32_t(kvHeads));
    cache->set_head_dim(uint32_t(d));
    cache->set_page_size(options.pageSize);
    auto orF32 = [](schema::Encoding encoding) {
      if (encoding.kind() == schema::ENCODING_UNSPECIFIED)
        encoding.set_kind(schema::ENCODING_F32);
      return encoding;
    };
    *cache->mutable_key() = orF32(options.cacheEncoding);
    *cache->mutable_value() = orF32(
        options.valueEncoding ? *options.valueEncoding : options.cacheEncoding);
  }

  PlanBuilder b(writer, weights);
  auto linear = [&](uint32_t x, const std::string &prefix,
                    int64_t out) -> StatusOr<uint32_t> {
    TRY_ASSIGN(w, b.tensor(prefix + ".weight"));
    std::vector<uint32_t> tensors = {w};
    if (weights.count(prefix + ".bias")) {
      TRY_ASSIGN(bias, b.tensor(prefix + ".bias"));
      tensors.push_back(bias);
    }
    uint32_t y = b.slot(prefix, {out});
    b.call("linear", prefix, {x}, {y}, tensors);
    return y;
  };
  auto rmsNorm = [&](uint32_t x, const std::string &name,
                     std::vector<int64_t> shape) -> StatusOr<uint32_t> {
    TRY_ASSIGN(w, b.tensor(name + ".weight"));
    uint32_t y = b.slot(name, shape);
    b.call("rms_norm", name, {x}, {y}, {w})
        ->mutable_rms_norm()
        ->set_epsilon(c.rms_norm_eps());
    return y;
  };
  auto reshape = [&](uint32_t x, const std::string &name,
                     std::vector<int64_t> shape) {
    uint32_t y = b.slot(name, shape);
    b.call("reshape", name, {x}, {y});
    return y;
  };
  auto ropeCall = [&](uint32_t x, const std::string &name, int64_t n) {
    uint32_t y = b.slot(name, {n, d});
    *b.call("rope", name, {x}, {y})->mutable_rope()->mutable_rope() = rope;
    return y;
  };

  // Tied checkpoints may keep the shared matrix under lm_head.weight only
  // (safetensors stores a shared tensor once).
  std::string tableName = "model.embed_tokens.weight";
  if (!weights.count(tableName) && c.tie_word_embeddings())
    tableName = "lm_head.weight";
  TRY_ASSIGN(table, b.tensor(tableName));
  uint32_t hidden = b.slot("model.embed_tokens", {h});
  b.call("embedding", "model.embed_tokens", {}, {hidden}, {table});
  for (int64_t l = 0; l < c.num_layers(); ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    TRY_ASSIGN(x, rmsNorm(hidden, p + "input_layernorm", {h}));
    TRY_ASSIGN(q, linear(x, p + "self_attn.q_proj", heads * d));
    TRY_ASSIGN(k, linear(x, p + "self_attn.k_proj", kvHeads * d));
    TRY_ASSIGN(v, linear(x, p + "self_attn.v_proj", kvHeads * d));
    std::string attn = p + "self_attn";
    uint32_t q3 = reshape(q, attn + ".q_heads", {heads, d});
    uint32_t k3 = reshape(k, attn + ".k_heads", {kvHeads, d});
    uint32_t v3 = reshape(v, attn + ".v_heads", {kvHeads, d});
    uint32_t qr = ropeCall(q3, attn + ".q_rope", heads);
    uint32_t kr = ropeCall(k3, attn + ".k_rope", kvHeads);
    b.call("append", attn, {kr, v3}, {})
        ->mutable_append()
        ->set_layer(uint32_t(l));
    uint32_t o3 = b.slot(attn + ".attention", {heads, d});
    schema::AttentionParams *a =
        b.call("attention", attn, {qr}, {o3})->mutable_attention();
    a->set_layer(uint32_t(l));
    a->set_scale(1.0 / std::sqrt(double(d)));
    if (options.select)
      *a->mutable_select() = *options.select;
    if (options.prefetch) {
      schema::PrefetchParams *f =
          b.call("prefetch", attn, {}, {})->mutable_prefetch();
      *f = *options.prefetch;
      f->set_layer(uint32_t(l));
    }
    if (options.evict) {
      std::vector<uint32_t> centres;
      if (options.evict->method() == schema::EVICT_METHOD_TRIATTENTION) {
        for (const auto &[name, data, shape] :
             {std::tuple("query_center", &options.queryCentre,
                         std::vector<int64_t>{heads, d / 2, 2}),
              std::tuple("query_magnitude", &options.queryMagnitude,
                         std::vector<int64_t>{heads, d / 2})})
          centres.push_back(b.writer.addTensor(
              attn + ".evict." + name, schema::DTYPE_F32, shape, data->data()));
      }
      schema::EvictParams *e =
          b.call("evict", attn, {qr}, {}, centres)->mutable_evict();
      *e = *options.evict;
      e->set_layer(uint32_t(l));
    }
    uint32_t o = reshape(o3, attn + ".merged", {heads * d});
    TRY_ASSIGN(projected, linear(o, p + "self_attn.o_proj", h));
    uint32_t afterAttention = b.slot(attn + ".residual", {h});
    b.call("add", attn, {hidden, projected}, {afterAttention});
    TRY_ASSIGN(x2,
               rmsNorm(afterAttention, p + "post_attention_layernorm", {h}));
    TRY_ASSIGN(gate, linear(x2, p + "mlp.gate_proj", ffn));
    TRY_ASSIGN(up, linear(x2, p + "mlp.up_proj", ffn));
    uint32_t act = b.slot(p + "mlp.act", {ffn});
    b.call("swiglu", p + "mlp", {gate, up}, {act});
    TRY_ASSIGN(down, linear(act, p + "mlp.down_proj", h));
    hidden = b.slot(p + "mlp.residual", {h});
    b.call("add", p + "mlp", {afterAttention, down}, {hidden});
  }
  TRY_ASSIGN(normed, rmsNorm(hidden, "model.norm", {h}));
  uint32_t head = table;
  if (!c.tie_word_embeddings()) {
    TRY_ASSIGN(w, b.tensor("lm_head.weight"));
    head = w;
  }
  uint32_t logits = b.slot("logits", {c.vocab_size()});
  b.call("lm_head", "lm_head", {normed}, {logits}, {head});
  b.plan.set_logits(logits);
  return Status::ok();
}

RandomLlama makeRandomLlama(uint64_t seed) {
  RandomLlama r;
  schema::ModelConfig &c = r.config;
  c.set_architecture("llama");
  c.set_vocab_size(40);
  c.set_hidden_size(16);
  c.set_intermediate_size(24);
  c.set_num_layers(2);
  c.set_num_heads(4);
  c.set_num_kv_heads(2);
  c.set_head_dim(4);
  c.set_rms_norm_eps(1e-5);
  c.set_max_positions(64);
  c.set_tie_word_embeddings(true);
  c.set_bos_token_id(1);
  c.add_eos_token_ids(2);
  c.mutable_rope()->set_theta(10000);
  c.mutable_rope()->set_style(schema::ROPE_STYLE_HALF);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto add = [&](const std::string &name, std::vector<int64_t> shape,
                 bool norm) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    std::vector<float> &v = r.storage[name];
    float scale = norm ? 0.1f : 1.0f / std::sqrt(float(shape.back()));
    for (int64_t i = 0; i < n; ++i)
      v.push_back(norm ? 1.0f + scale * normal(rng) : scale * normal(rng));
    r.weights[name] = {schema::DTYPE_F32, shape, v.data()};
  };
  int64_t h = c.hidden_size(), q = c.num_heads() * c.head_dim(),
          kv = c.num_kv_heads() * c.head_dim(), f = c.intermediate_size();
  add("model.embed_tokens.weight", {c.vocab_size(), h}, false);
  add("model.norm.weight", {h}, true);
  for (int64_t l = 0; l < c.num_layers(); ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {h}, true);
    add(p + "self_attn.q_proj.weight", {q, h}, false);
    add(p + "self_attn.k_proj.weight", {kv, h}, false);
    add(p + "self_attn.v_proj.weight", {kv, h}, false);
    add(p + "self_attn.o_proj.weight", {h, q}, false);
    add(p + "post_attention_layernorm.weight", {h}, true);
    add(p + "mlp.gate_proj.weight", {f, h}, false);
    add(p + "mlp.up_proj.weight", {f, h}, false);
    add(p + "mlp.down_proj.weight", {h, f}, false);
  }
  return r;
}

} // namespace kvrt::test
