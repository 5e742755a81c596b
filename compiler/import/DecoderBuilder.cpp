//===- DecoderBuilder.cpp - A kv module for a Llama-family decoder --------===//
#include "compiler/import/DecoderBuilder.h"

#include "dialects/kv/IR/KVOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <cmath>

using namespace mlir;
using kvrt::Status;
using kvrt::StatusOr;

namespace kvopt::import {

std::string formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

class DecoderBuilder {
public:
  DecoderBuilder(MLIRContext &context, const ModelConfig &config,
                 WeightSource &weights, DeferredWeights *deferred,
                 BlockWeights *blocks)
      : ctx(context), builder(&context), cfg(config), weights(weights),
        deferred(deferred), blocks(blocks), f32(builder.getF32Type()) {}

  StatusOr<OwningOpRef<ModuleOp>> build(const std::string &sourceName);

private:
  Location at(const std::string &name) {
    return NameLoc::get(builder.getStringAttr(name));
  }

  /// An `arith.constant dense_resource<name>` sharing the weight's memory.
  StatusOr<Value> constant(const std::string &name,
                           const std::vector<int64_t> &shape);
  /// `x W^T (+ b)` for the projection `prefix`.weight (and .bias).
  StatusOr<Value> linear(Value x, const std::string &prefix, int64_t out,
                         int64_t in, bool bias);
  StatusOr<Value> rmsNorm(Value x, const std::string &name, int64_t size);
  Value rope(Value x, Value positions, Location loc);
  /// Splits [tokens, heads * head_dim] into [tokens, heads, head_dim].
  Value splitHeads(Value x, int64_t heads, Location loc);
  Value mergeHeads(Value x, Location loc);
  Status buildLayer(int64_t layer, Value &hidden, Value positions);

  MLIRContext &ctx;
  OpBuilder builder;
  const ModelConfig &cfg;
  WeightSource &weights;
  DeferredWeights *deferred;
  BlockWeights *blocks;
  Type f32;
  Value tokenCount;
};

StatusOr<Value> DecoderBuilder::constant(const std::string &name,
                                         const std::vector<int64_t> &shape) {
  StatusOr<Weight> weight = weights.get(name, shape);
  if (!weight)
    return weight.status();
  Type element;
  size_t elementBytes;
  switch (weight->type) {
  case WeightType::F32:
    element = builder.getF32Type();
    elementBytes = 4;
    break;
  case WeightType::F16:
    element = builder.getF16Type();
    elementBytes = 2;
    break;
  case WeightType::BF16:
    element = builder.getBF16Type();
    elementBytes = 2;
    break;
  }
  auto type = RankedTensorType::get(shape, element);
  if (weight->deferred) {
    if (!deferred)
      return Status::error("weight '" + name +
                           "' has deferred bytes, which this importer "
                           "cannot carry");
    // No blob: the exporter takes the bytes from `deferred`.
    DenseResourceElementsHandle handle =
        DenseResourceElementsHandle::getManagerInterface(&ctx).insert(name);
    (*deferred)[handle.getKey().str()] = weight->deferred;
    auto attr = DenseResourceElementsAttr::get(type, handle);
    return arith::ConstantOp::create(builder, at(name), type, attr).getResult();
  }
  // Mapped safetensors data need not be aligned to its element size; the
  // blob records the alignment it really has.
  size_t align = reinterpret_cast<uintptr_t>(weight->data) % elementBytes == 0
                     ? elementBytes
                     : 1;
  AsmResourceBlob blob(
      ArrayRef<char>(reinterpret_cast<const char *>(weight->data),
                     weight->byteSize),
      align, [owner = weight->owner](void *, size_t, size_t) {},
      /*dataIsMutable=*/false);
  auto attr = DenseResourceElementsAttr::get(type, name, std::move(blob));
  if (weight->blocks && blocks)
    (*blocks)[attr.getRawHandle().getKey().str()] = *weight->blocks;
  return arith::ConstantOp::create(builder, at(name), type, attr).getResult();
}

StatusOr<Value> DecoderBuilder::linear(Value x, const std::string &prefix,
                                       int64_t out, int64_t in, bool bias) {
  StatusOr<Value> w = constant(prefix + ".weight", {out, in});
  if (!w)
    return w.status();
  Value b;
  if (bias) {
    StatusOr<Value> bv = constant(prefix + ".bias", {out});
    if (!bv)
      return bv.status();
    b = *bv;
  }
  auto type = RankedTensorType::get({ShapedType::kDynamic, out}, f32);
  return kv::LinearOp::create(builder, at(prefix), type, x, *w, b).getResult();
}

StatusOr<Value> DecoderBuilder::rmsNorm(Value x, const std::string &name,
                                        int64_t size) {
  StatusOr<Value> w = constant(name + ".weight", {size});
  if (!w)
    return w.status();
  return kv::RMSNormOp::create(builder, at(name), x.getType(), x, *w,
                               builder.getF64FloatAttr(cfg.rmsNormEps))
      .getResult();
}

Value DecoderBuilder::rope(Value x, Value positions, Location loc) {
  const RopeScaling &s = cfg.ropeScaling;
  Attribute scaling;
  auto ap = [](double v) { return llvm::APFloat(v); };
  switch (s.kind) {
  case RopeScalingKind::None:
    break;
  case RopeScalingKind::Linear:
    scaling = kv::RopeLinearAttr::get(&ctx, ap(s.factor));
    break;
  case RopeScalingKind::Llama3:
    scaling =
        kv::RopeLlama3Attr::get(&ctx, ap(s.factor), ap(s.lowFreqFactor),
                                ap(s.highFreqFactor), s.originalMaxPosition);
    break;
  case RopeScalingKind::Yarn:
    scaling = kv::RopeYarnAttr::get(&ctx, ap(s.factor), s.originalMaxPosition,
                                    ap(s.betaFast), ap(s.betaSlow),
                                    ap(s.attentionFactor));
    break;
  }
  auto style = kv::RopeStyleAttr::get(&ctx, cfg.ropeLayout == RopeLayout::Half
                                                ? kv::RopeStyle::Half
                                                : kv::RopeStyle::Interleaved);
  return kv::RopeOp::create(builder, loc, x.getType(), x, positions,
                            builder.getF64FloatAttr(cfg.ropeTheta), style,
                            scaling);
}

Value DecoderBuilder::splitHeads(Value x, int64_t heads, Location loc) {
  auto type =
      RankedTensorType::get({ShapedType::kDynamic, heads, cfg.headDim}, f32);
  SmallVector<ReassociationIndices> groups = {{0}, {1, 2}};
  SmallVector<OpFoldResult> shape = {tokenCount, builder.getIndexAttr(heads),
                                     builder.getIndexAttr(cfg.headDim)};
  return tensor::ExpandShapeOp::create(builder, loc, type, x, groups, shape);
}

Value DecoderBuilder::mergeHeads(Value x, Location loc) {
  SmallVector<ReassociationIndices> groups = {{0}, {1, 2}};
  return tensor::CollapseShapeOp::create(builder, loc, x, groups);
}

Status DecoderBuilder::buildLayer(int64_t layer, Value &hidden,
                                  Value positions) {
  std::string p = "model.layers." + std::to_string(layer) + ".";
  int64_t h = cfg.hiddenSize, qDim = cfg.numHeads * cfg.headDim,
          kvDim = cfg.numKvHeads * cfg.headDim;
#define TRY(var, expr)                                                         \
  auto var##OrError = (expr);                                                  \
  if (!var##OrError)                                                           \
    return var##OrError.status();                                              \
  Value var = *var##OrError;

  TRY(normed, rmsNorm(hidden, p + "input_layernorm", h));
  TRY(q, linear(normed, p + "self_attn.q_proj", qDim, h, cfg.qkvBias));
  TRY(k, linear(normed, p + "self_attn.k_proj", kvDim, h, cfg.qkvBias));
  TRY(v, linear(normed, p + "self_attn.v_proj", kvDim, h, cfg.qkvBias));
  Location attnLoc = at(p + "self_attn");
  Value q3 = splitHeads(q, cfg.numHeads, attnLoc);
  Value k3 = splitHeads(k, cfg.numKvHeads, attnLoc);
  Value v3 = splitHeads(v, cfg.numKvHeads, attnLoc);
  if (cfg.qkNorm) {
    TRY(qn, rmsNorm(q3, p + "self_attn.q_norm", cfg.headDim));
    TRY(kn, rmsNorm(k3, p + "self_attn.k_norm", cfg.headDim));
    q3 = qn;
    k3 = kn;
  }
  Value qr = rope(q3, positions, attnLoc);
  Value kr = rope(k3, positions, attnLoc);
  auto cacheType = kv::CacheType::get(
      &ctx, cfg.numKvHeads, cfg.headDim, /*page=*/16,
      kv::Bf16EncodingAttr::get(&ctx), kv::Bf16EncodingAttr::get(&ctx));
  Value cache = kv::CacheOp::create(builder, attnLoc, cacheType,
                                    builder.getI64IntegerAttr(layer));
  Value appended = kv::AppendOp::create(builder, attnLoc, cacheType, kr, v3,
                                        positions, cache);
  IntegerAttr window;
  if (cfg.slidingWindow)
    window = builder.getI64IntegerAttr(*cfg.slidingWindow);
  Value attended = kv::AttentionOp::create(
      builder, attnLoc, q3.getType(), qr, appended, positions,
      builder.getF64FloatAttr(1.0 / std::sqrt(double(cfg.headDim))), window,
      Value());
  TRY(o, linear(mergeHeads(attended, attnLoc), p + "self_attn.o_proj", h, qDim,
                false));
  Value afterAttention = arith::AddFOp::create(builder, attnLoc, hidden, o);

  TRY(normed2, rmsNorm(afterAttention, p + "post_attention_layernorm", h));
  int64_t ffn = cfg.intermediateSize;
  TRY(gate, linear(normed2, p + "mlp.gate_proj", ffn, h, false));
  TRY(up, linear(normed2, p + "mlp.up_proj", ffn, h, false));
  Value act =
      kv::SwiGLUOp::create(builder, at(p + "mlp"), gate.getType(), gate, up);
  TRY(down, linear(act, p + "mlp.down_proj", h, ffn, false));
  hidden = arith::AddFOp::create(builder, at(p + "mlp"), afterAttention, down);
#undef TRY
  return Status::ok();
}

StatusOr<OwningOpRef<ModuleOp>>
DecoderBuilder::build(const std::string &sourceName) {
  ctx.loadDialect<kv::KVDialect, arith::ArithDialect, func::FuncDialect,
                  tensor::TensorDialect>();
  Location loc = FileLineColLoc::get(&ctx, sourceName, 0, 0);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);

  SmallVector<NamedAttribute> info = {
      builder.getNamedAttr("architecture",
                           builder.getStringAttr(cfg.architecture)),
      builder.getNamedAttr("vocab_size",
                           builder.getI64IntegerAttr(cfg.vocabSize)),
      builder.getNamedAttr("max_positions",
                           builder.getI64IntegerAttr(cfg.maxPositions)),
      builder.getNamedAttr("eos_token_ids",
                           builder.getI64ArrayAttr(cfg.eosIds)),
      builder.getNamedAttr("source", builder.getStringAttr(sourceName))};
  if (cfg.bosId)
    info.push_back(builder.getNamedAttr("bos_token_id",
                                        builder.getI64IntegerAttr(*cfg.bosId)));
  (*module)->setAttr("kv.model", builder.getDictionaryAttr(info));

  auto ids =
      RankedTensorType::get({ShapedType::kDynamic}, builder.getI32Type());
  auto logitsType =
      RankedTensorType::get({ShapedType::kDynamic, cfg.vocabSize}, f32);
  builder.setInsertionPointToEnd(module->getBody());
  auto func =
      func::FuncOp::create(builder, loc, "forward",
                           builder.getFunctionType({ids, ids}, {logitsType}));
  func.setArgAttr(0, "kv.name", builder.getStringAttr("tokens"));
  func.setArgAttr(1, "kv.name", builder.getStringAttr("positions"));
  Block *body = func.addEntryBlock();
  builder.setInsertionPointToStart(body);
  Value tokens = body->getArgument(0), positions = body->getArgument(1);
  Value zero = arith::ConstantIndexOp::create(builder, loc, 0);
  tokenCount = tensor::DimOp::create(builder, loc, tokens, zero);

  StatusOr<Value> table =
      constant("model.embed_tokens.weight", {cfg.vocabSize, cfg.hiddenSize});
  if (!table)
    return table.status();
  auto hiddenType =
      RankedTensorType::get({ShapedType::kDynamic, cfg.hiddenSize}, f32);
  Value hidden = kv::EmbeddingOp::create(builder, at("model.embed_tokens"),
                                         hiddenType, *table, tokens);
  for (int64_t layer = 0; layer < cfg.numLayers; ++layer)
    KVRT_RETURN_IF_ERROR(buildLayer(layer, hidden, positions));

  StatusOr<Value> normed = rmsNorm(hidden, "model.norm", cfg.hiddenSize);
  if (!normed)
    return normed.status();
  Value head = *table;
  if (!cfg.tieWordEmbeddings) {
    StatusOr<Value> w =
        constant("lm_head.weight", {cfg.vocabSize, cfg.hiddenSize});
    if (!w)
      return w.status();
    head = *w;
  }
  Value logits =
      kv::LMHeadOp::create(builder, at("lm_head"), logitsType, *normed, head);
  func::ReturnOp::create(builder, loc, logits);
  return std::move(module);
}

} // namespace

StatusOr<OwningOpRef<ModuleOp>>
buildDecoderModule(MLIRContext &context, const ModelConfig &config,
                   WeightSource &weights, const std::string &sourceName,
                   DeferredWeights *deferred, BlockWeights *blocks) {
  return DecoderBuilder(context, config, weights, deferred, blocks)
      .build(sourceName);
}

} // namespace kvopt::import
