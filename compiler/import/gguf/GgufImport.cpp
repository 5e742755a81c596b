//===- GgufImport.cpp - GGUF files into kv modules ------------------------===//
#include "compiler/import/gguf/GgufImport.h"
#include "compiler/import/DecoderBuilder.h"
#include "compiler/import/formats/DType.h"
#include "compiler/import/gguf/GgufFile.h"
#include "compiler/import/gguf/GgufTokenizer.h"

#include <cstring>
#include <map>

namespace kvopt::import {

namespace {

using formats::GgufFile;

/// Hugging Face names of a decoder's weights and their GGUF names.
std::string ggufName(const std::string &hf) {
  static const std::map<std::string, std::string> globals = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  if (auto it = globals.find(hf); it != globals.end())
    return it->second;
  static const std::map<std::string, std::string> perLayer = {
      {"input_layernorm", "attn_norm"},
      {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"},
      {"self_attn.k_norm", "attn_k_norm"},
      {"post_attention_layernorm", "ffn_norm"},
      {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) != 0)
    return hf;
  size_t dot = hf.find('.', prefix.size());
  size_t last = hf.rfind('.');
  if (dot == std::string::npos || last <= dot)
    return hf;
  std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  std::string module = hf.substr(dot + 1, last - dot - 1);
  auto it = perLayer.find(module);
  if (it == perLayer.end())
    return hf;
  return "blk." + layer + "." + it->second + hf.substr(last);
}

/// Weights dequantized to f32, and those in a block format also as their
/// blocks (Weight::blocks), which the artifact keeps. llama.cpp's converter
/// permutes the rows of the query and key projections so that RoPE pairs
/// are adjacent (interleaved); they are put back in Hugging Face order, in
/// both forms, so that every importer produces the same module with
/// `rotate_half` RoPE.
class GgufWeights : public WeightSource {
public:
  GgufWeights(std::shared_ptr<GgufFile> file, const ModelConfig &config)
      : file(std::move(file)), config(config) {}

  bool has(const std::string &name) const override {
    return file->find(ggufName(name)) != nullptr;
  }

  kvrt::StatusOr<Weight> get(const std::string &name,
                             const std::vector<int64_t> &shape) override {
    std::string gguf = ggufName(name);
    const formats::TensorInfo *info = file->find(gguf);
    if (!info)
      return kvrt::Status::error(file->path() + ": no tensor '" + gguf + "' (" +
                                 name + ")");
    if (info->shape != shape)
      return kvrt::Status::error(file->path() + ": tensor '" + gguf +
                                 "' has shape " + formatShape(info->shape) +
                                 ", expected " + formatShape(shape) +
                                 " from the metadata");
    auto values = std::make_shared<std::vector<float>>(info->numElements());
    KVRT_RETURN_IF_ERROR(formats::dequantizeToF32(
        info->dtype, file->data(*info), info->numElements(), values->data()));
    std::shared_ptr<std::vector<uint8_t>> blocks;
    // Only matrices whose rows are whole blocks can be stored as blocks.
    const uint64_t perBlock = formats::dtypeBlockElements(info->dtype);
    if (perBlock > 1 && shape.size() == 2 &&
        uint64_t(shape[1]) % perBlock == 0) {
      const uint8_t *data = file->data(*info);
      blocks = std::make_shared<std::vector<uint8_t>>(
          data,
          data + *formats::dtypeByteSize(info->dtype, info->numElements()));
    }
    int64_t permutedHeads = 0;
    if (name.find("self_attn.q_proj.weight") != std::string::npos)
      permutedHeads = config.numHeads;
    else if (name.find("self_attn.k_proj.weight") != std::string::npos)
      permutedHeads = config.numKvHeads;
    if (permutedHeads) {
      unpermuteRows(reinterpret_cast<uint8_t *>(values->data()), shape[0],
                    shape[1] * int64_t(sizeof(float)), permutedHeads);
      if (blocks)
        unpermuteRows(blocks->data(), shape[0],
                      int64_t(blocks->size()) / shape[0], permutedHeads);
    }
    Weight w;
    w.type = WeightType::F32;
    w.shape = shape;
    w.data = reinterpret_cast<const uint8_t *>(values->data());
    w.byteSize = values->size() * sizeof(float);
    w.owner = values;
    if (blocks)
      w.blocks = WeightBlocks{*formats::artifactDType(info->dtype), blocks};
    return w;
  }

private:
  /// Row h*D + 2j + s of the GGUF matrix is row h*D + s*D/2 + j in HF;
  /// `rows` rows of `rowBytes` bytes each, in place.
  static void unpermuteRows(uint8_t *w, int64_t rows, int64_t rowBytes,
                            int64_t heads) {
    int64_t headDim = rows / heads;
    std::vector<uint8_t> in(w, w + rows * rowBytes);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < headDim / 2; ++j)
        for (int64_t s = 0; s < 2; ++s)
          std::memcpy(w + (h * headDim + s * headDim / 2 + j) * rowBytes,
                      in.data() + (h * headDim + 2 * j + s) * rowBytes,
                      size_t(rowBytes));
  }

  std::shared_ptr<GgufFile> file;
  const ModelConfig &config;
};

kvrt::StatusOr<ModelConfig> readConfig(const GgufFile &f) {
  ModelConfig cfg;
  std::string arch;
  KVRT_ASSIGN_OR_RETURN(arch, f.getString("general.architecture"));
  if (arch != "llama")
    return kvrt::Status::error(f.path() +
                               ": metadata 'general.architecture' "
                               "is '" +
                               arch +
                               "'; kvopt imports GGUF files of the "
                               "llama architecture");
  cfg.architecture = arch;
  std::string p = arch + ".";
  KVRT_ASSIGN_OR_RETURN(cfg.hiddenSize,
                        f.getPositiveInt(p + "embedding_length"));
  KVRT_ASSIGN_OR_RETURN(cfg.intermediateSize,
                        f.getPositiveInt(p + "feed_forward_length"));
  KVRT_ASSIGN_OR_RETURN(cfg.numLayers, f.getPositiveInt(p + "block_count"));
  KVRT_ASSIGN_OR_RETURN(cfg.numHeads,
                        f.getPositiveInt(p + "attention.head_count"));
  cfg.numKvHeads = cfg.numHeads;
  if (f.has(p + "attention.head_count_kv"))
    KVRT_ASSIGN_OR_RETURN(cfg.numKvHeads,
                          f.getPositiveInt(p + "attention.head_count_kv"));
  if (cfg.numHeads % cfg.numKvHeads != 0)
    return kvrt::Status::error(
        f.path() + ": metadata '" + p +
        "attention.head_count_kv' must divide attention.head_count");
  cfg.headDim = cfg.hiddenSize / cfg.numHeads;
  if (f.has(p + "attention.key_length"))
    KVRT_ASSIGN_OR_RETURN(cfg.headDim,
                          f.getPositiveInt(p + "attention.key_length"));
  if (cfg.headDim % 2 != 0)
    return kvrt::Status::error(f.path() + ": the head dimension " +
                               std::to_string(cfg.headDim) +
                               " must be even for rotary embeddings");
  KVRT_ASSIGN_OR_RETURN(cfg.maxPositions,
                        f.getPositiveInt(p + "context_length"));
  KVRT_ASSIGN_OR_RETURN(cfg.rmsNormEps,
                        f.getFloat(p + "attention.layer_norm_rms_epsilon"));
  if (f.has(p + "rope.freq_base"))
    KVRT_ASSIGN_OR_RETURN(cfg.ropeTheta, f.getFloat(p + "rope.freq_base"));
  // GGUF writers store these as float32: read them as the decimal the
  // model's config.json holds.
  for (double *value : {&cfg.rmsNormEps, &cfg.ropeTheta})
    if (double(float(*value)) == *value)
      *value = formats::widenFloat32(float(*value));
  if (f.has(p + "rope.scaling.type")) {
    std::string type;
    KVRT_ASSIGN_OR_RETURN(type, f.getString(p + "rope.scaling.type"));
    if (type == "linear" || type == "yarn") {
      cfg.ropeScaling.kind =
          type == "linear" ? RopeScalingKind::Linear : RopeScalingKind::Yarn;
      KVRT_ASSIGN_OR_RETURN(cfg.ropeScaling.factor,
                            f.getFloat(p + "rope.scaling.factor"));
      if (type == "yarn")
        KVRT_ASSIGN_OR_RETURN(
            cfg.ropeScaling.originalMaxPosition,
            f.getPositiveInt(p + "rope.scaling.original_context_length"));
    } else if (type != "none") {
      return kvrt::Status::error(f.path() + ": metadata '" + p +
                                 "rope.scaling.type' is '" + type +
                                 "'; supported: none, linear, yarn");
    }
  }
  if (f.find("rope_freqs.weight"))
    return kvrt::Status::error(
        f.path() + ": tensor 'rope_freqs.weight' (Llama 3.1 frequency "
                   "factors baked into GGUF) is not supported yet; import the "
                   "Hugging Face folder instead");
  const formats::TensorInfo *embed = f.find("token_embd.weight");
  if (!embed || embed->shape.size() != 2)
    return kvrt::Status::error(f.path() + ": tensor 'token_embd.weight' is "
                                          "missing or not a matrix");
  cfg.vocabSize = embed->shape[0];
  cfg.tieWordEmbeddings = f.find("output.weight") == nullptr;
  // Ids index the vocabulary (the runtime masks and stops on them).
  for (auto [key, bos] : {std::pair{"tokenizer.ggml.bos_token_id", true},
                          {"tokenizer.ggml.eos_token_id", false}}) {
    if (!f.has(key))
      continue;
    int64_t id;
    KVRT_ASSIGN_OR_RETURN(id, f.getInt(key));
    if (id < 0 || id >= cfg.vocabSize)
      return kvrt::Status::error(f.path() + ": " + key + " holds " +
                                 std::to_string(id) +
                                 ", outside the vocabulary of " +
                                 std::to_string(cfg.vocabSize) + " tokens");
    if (bos)
      cfg.bosId = id;
    else
      cfg.eosIds.push_back(id);
  }
  return cfg;
}

} // namespace

kvrt::StatusOr<ImportedModel> importGguf(mlir::MLIRContext &context,
                                         const std::string &path) {
  auto opened = GgufFile::open(path);
  if (!opened)
    return opened.status();
  auto file = std::make_shared<GgufFile>(std::move(*opened));
  kvrt::StatusOr<ModelConfig> config = readConfig(*file);
  if (!config)
    return config.status();
  GgufWeights weights(file, *config);
  ImportedModel imported;
  auto module = buildDecoderModule(context, *config, weights, path, nullptr,
                                   &imported.blocks);
  if (!module)
    return module.status();
  imported.module = std::move(*module);
  imported.config = *config;
  imported.keepAlive = file;
  kvrt::StatusOr<kvrt::GgufTokenizerFields> tokenizer =
      formats::readGgufTokenizerFields(*file);
  if (!tokenizer)
    return tokenizer.status();
  imported.tokenizer.gguf = std::move(*tokenizer);
  imported.tokenizer.sourceName = file->path();
  return imported;
}

} // namespace kvopt::import
