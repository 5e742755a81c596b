//===- ManifestExport.cpp - Model, tokenizer and provenance ---------------===//
#include "compiler/export/Export.h"

#include "dialects/kv/IR/KVDialect.h"
#include "kvrt/Tokenizer.h"

using kvrt::Status;
namespace schema = kvrt::schema;

namespace kvopt::exporter {
namespace {

void exportConfig(const import::ModelConfig &c, schema::ModelConfig &out) {
  out.set_architecture(c.architecture);
  out.set_vocab_size(c.vocabSize);
  out.set_hidden_size(c.hiddenSize);
  out.set_intermediate_size(c.intermediateSize);
  out.set_num_layers(c.numLayers);
  out.set_num_heads(c.numHeads);
  out.set_num_kv_heads(c.numKvHeads);
  out.set_head_dim(c.headDim);
  out.set_rms_norm_eps(c.rmsNormEps);
  out.set_max_positions(c.maxPositions);
  out.set_tie_word_embeddings(c.tieWordEmbeddings);
  if (c.bosId)
    out.set_bos_token_id(*c.bosId);
  for (int64_t eos : c.eosIds)
    out.add_eos_token_ids(eos);
  if (c.slidingWindow)
    out.set_sliding_window(*c.slidingWindow);
  schema::Rope &rope = *out.mutable_rope();
  rope.set_theta(c.ropeTheta);
  rope.set_style(c.ropeLayout == import::RopeLayout::Half
                     ? schema::ROPE_STYLE_HALF
                     : schema::ROPE_STYLE_INTERLEAVED);
  const import::RopeScaling &s = c.ropeScaling;
  schema::RopeScaling &scaling = *rope.mutable_scaling();
  switch (s.kind) {
  case import::RopeScalingKind::None:
    scaling.set_kind(schema::ROPE_SCALING_NONE);
    return;
  case import::RopeScalingKind::Linear:
    scaling.set_kind(schema::ROPE_SCALING_LINEAR);
    break;
  case import::RopeScalingKind::Llama3:
    scaling.set_kind(schema::ROPE_SCALING_LLAMA3);
    break;
  case import::RopeScalingKind::Yarn:
    scaling.set_kind(schema::ROPE_SCALING_YARN);
    break;
  }
  scaling.set_factor(s.factor);
  scaling.set_low_freq_factor(s.lowFreqFactor);
  scaling.set_high_freq_factor(s.highFreqFactor);
  scaling.set_original_max_position(s.originalMaxPosition);
  scaling.set_beta_fast(s.betaFast);
  scaling.set_beta_slow(s.betaSlow);
  scaling.set_attention_factor(s.attentionFactor);
}

void exportTokenizer(const import::TokenizerSource &t, schema::Tokenizer &out) {
  if (!t.tokenizerJson.empty()) {
    out.mutable_hf()->set_tokenizer_json(t.tokenizerJson);
    out.mutable_hf()->set_tokenizer_config_json(t.tokenizerConfigJson);
    return;
  }
  if (!t.gguf)
    return;
  const kvrt::GgufTokenizerFields &g = *t.gguf;
  schema::GgufVocabulary &v = *out.mutable_gguf();
  v.set_model(g.model);
  v.set_pre(g.pre);
  *v.mutable_tokens() = {g.tokens.begin(), g.tokens.end()};
  *v.mutable_scores() = {g.scores.begin(), g.scores.end()};
  *v.mutable_token_types() = {g.tokenTypes.begin(), g.tokenTypes.end()};
  *v.mutable_merges() = {g.merges.begin(), g.merges.end()};
  // The importer checked that the ids fit the vocabulary (int32).
  if (g.bosId)
    v.set_bos_id(int32_t(*g.bosId));
  if (g.eosId)
    v.set_eos_id(int32_t(*g.eosId));
  if (g.unknownId)
    v.set_unk_id(int32_t(*g.unknownId));
  if (g.paddingId)
    v.set_pad_id(int32_t(*g.paddingId));
  if (g.addBosToken)
    v.set_add_bos(*g.addBosToken);
  if (g.addEosToken)
    v.set_add_eos(*g.addEosToken);
  if (g.addSpacePrefix)
    v.set_add_space_prefix(*g.addSpacePrefix);
  out.set_chat_template(g.chatTemplate);
}

} // namespace

Status exportModule(mlir::ModuleOp module, const import::ModelConfig &config,
                    const import::TokenizerSource &tokenizer,
                    const ExportOptions &options,
                    kvrt::ArtifactWriter &writer) {
  schema::Manifest &m = writer.manifest();
  m.set_producer("kvopt " KVOPT_VERSION);
  exportConfig(config, *m.mutable_model());
  m.mutable_target()->set_name(options.target);
  for (const auto &[name, passOptions] : options.passes) {
    schema::PassRecord &record = *m.add_passes();
    record.set_name(name);
    record.set_options(passOptions);
  }
  exportTokenizer(tokenizer, *m.mutable_tokenizer());
  // Refuse a tokenizer the runtime could not rebuild now, not on the
  // serving host.
  if (m.tokenizer().source_case() != schema::Tokenizer::SOURCE_NOT_SET) {
    kvrt::StatusOr<kvrt::TokenizerSpec> spec =
        kvrt::tokenizerSpecFromArtifact(m.tokenizer(), tokenizer.sourceName);
    if (!spec)
      return spec.status();
    kvrt::StatusOr<kvrt::Tokenizer> rebuilt =
        kvrt::Tokenizer::create(std::move(*spec));
    if (!rebuilt)
      return rebuilt.status();
  }
  if (auto calibration = module->getAttrOfType<mlir::kv::CalibrationAttr>(
          mlir::kv::KVDialect::CalibrationAttrHelper::getNameStr())) {
    schema::Calibration &c = *m.mutable_calibration();
    c.set_source(calibration.getSource().str());
    c.set_source_xxh64(calibration.getXxh64());
    c.set_tokens(uint64_t(calibration.getTokens()));
    c.set_window(uint64_t(calibration.getWindow()));
  }
  return exportPlan(module, options, writer);
}

} // namespace kvopt::exporter
