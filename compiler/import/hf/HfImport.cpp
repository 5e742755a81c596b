//===- HfImport.cpp - Hugging Face folders into kv modules ----------------===//
#include "compiler/import/hf/HfImport.h"
#include "compiler/import/DecoderBuilder.h"
#include "compiler/import/hf/HfConfig.h"
#include "compiler/import/hf/HfTokenizer.h"
#include "compiler/import/safetensors/SafetensorsFile.h"

#include "kvrt/MappedFile.h"

namespace kvopt::import {

kvrt::StatusOr<std::string> readHfText(const std::string &path) {
  kvrt::StatusOr<std::shared_ptr<kvrt::MappedFile>> file =
      kvrt::MappedFile::open(path);
  if (!file)
    return file.status();
  return std::string(reinterpret_cast<const char *>((*file)->data()),
                     (*file)->size());
}

namespace {

/// Weights straight out of the mapped safetensors shards: no copy.
class SafetensorsWeights : public WeightSource {
public:
  explicit SafetensorsWeights(std::shared_ptr<formats::SafetensorsModel> model)
      : model(std::move(model)) {}

  bool has(const std::string &name) const override {
    return model->find(name).has_value();
  }

  kvrt::StatusOr<Weight> get(const std::string &name,
                             const std::vector<int64_t> &shape) override {
    auto found = model->find(name);
    // Tied checkpoints may store the shared matrix under either name.
    if (!found && name == "model.embed_tokens.weight")
      found = model->find("lm_head.weight");
    if (!found)
      return kvrt::Status::error(model->folder() + ": no tensor '" + name +
                                 "' in the safetensors files");
    const formats::TensorInfo &info = *found->info;
    if (info.shape != shape)
      return kvrt::Status::error(found->file->file()->path() + ": tensor '" +
                                 name + "' has shape " +
                                 formatShape(info.shape) + ", expected " +
                                 formatShape(shape) + " from config.json");
    Weight w;
    switch (info.dtype) {
    case formats::DType::F32:
      w.type = WeightType::F32;
      break;
    case formats::DType::F16:
      w.type = WeightType::F16;
      break;
    case formats::DType::BF16:
      w.type = WeightType::BF16;
      break;
    default:
      return kvrt::Status::error(found->file->file()->path() + ": tensor '" +
                                 name + "' has dtype " +
                                 formats::dtypeName(info.dtype) +
                                 "; weights must be F32, F16 or BF16");
    }
    w.shape = info.shape;
    w.data = found->file->data(info);
    w.byteSize = info.byteSize;
    w.owner = model;
    return w;
  }

private:
  std::shared_ptr<formats::SafetensorsModel> model;
};

} // namespace

kvrt::StatusOr<ImportedModel> importHuggingFace(mlir::MLIRContext &context,
                                                const std::string &dir) {
  std::string configPath = dir + "/config.json";
  kvrt::StatusOr<std::string> configText = readHfText(configPath);
  if (!configText)
    return kvrt::Status::error(dir + " is not a Hugging Face model folder: " +
                               configText.status().message());
  kvrt::StatusOr<ModelConfig> config = parseHfConfig(*configText, configPath);
  if (!config)
    return config.status();

  auto model = formats::SafetensorsModel::open(dir);
  if (!model)
    return model.status();
  auto shared = std::make_shared<formats::SafetensorsModel>(std::move(*model));
  SafetensorsWeights weights(shared);
  if (!config->tieWordEmbeddings && !weights.has("lm_head.weight"))
    config->tieWordEmbeddings = true; // HF ties when lm_head is absent.

  auto module = buildDecoderModule(context, *config, weights, dir);
  if (!module)
    return module.status();

  ImportedModel imported;
  imported.module = std::move(*module);
  imported.config = *config;
  imported.keepAlive = shared;
  kvrt::StatusOr<TokenizerSource> tokenizer = readHfTokenizer(dir);
  if (!tokenizer)
    return tokenizer.status();
  imported.tokenizer = std::move(*tokenizer);
  return imported;
}

} // namespace kvopt::import
