//===- PlanExport.cpp - @forward into the artifact's execution plan -------===//
//
// Walks @forward in order and emits one kernel call per op. SSA values of
// activations become plan slots (the shape of one token's row), weight
// constants become manifest tensors whose blobs point at the constants' own
// bytes, and kv.cache values become layer numbers. The batch inputs (token
// ids, positions) are implicit in the runtime, so an op may only use them
// as @forward's arguments. Anything the runtime has no kernel for is an
// error naming the op, never silently dropped.
//
//===----------------------------------------------------------------------===//
#include "compiler/export/Export.h"

#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"
#include "kvrt/Artifact.h"
#include "runtime/src/cache/Codec.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

using namespace mlir;
using kvrt::Status;
using kvrt::StatusOr;
namespace schema = kvrt::schema;

namespace kvopt::exporter {
namespace {

std::string locationText(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  std::string text;
  llvm::raw_string_ostream os(text);
  loc.print(os);
  return text;
}

/// "'kv.linear' (model.layers.0.mlp.up_proj)", for error messages.
std::string describe(Operation *op) {
  return "'" + op->getName().getStringRef().str() + "' (" +
         locationText(op->getLoc()) + ")";
}

StatusOr<schema::DType> dtypeOf(Type element, Operation *op) {
  if (element.isF32())
    return schema::DTYPE_F32;
  if (element.isF16())
    return schema::DTYPE_F16;
  if (element.isBF16())
    return schema::DTYPE_BF16;
  std::string name;
  llvm::raw_string_ostream os(name);
  element.print(os);
  return Status::error(describe(op) + " holds " + name +
                       " weights; the artifact stores f32, f16 or bf16");
}

Status encodingOf(Attribute attr, schema::Encoding &out, Operation *op,
                  const char *side) {
  if (isa<kv::F32EncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_F32);
  } else if (isa<kv::Bf16EncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_BF16);
  } else if (auto fp8 = dyn_cast<kv::Fp8EncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_FP8);
    out.set_fp8_format(fp8.getFormat() == kv::Fp8Format::E4M3
                           ? schema::FP8_FORMAT_E4M3
                           : schema::FP8_FORMAT_E5M2);
    out.set_scale_mode(fp8.getScale() == kv::ScaleMode::PerHead
                           ? schema::SCALE_MODE_PER_HEAD
                           : schema::SCALE_MODE_DYNAMIC);
    out.set_sinks(fp8.getSinks());
    out.set_residual(fp8.getWindow());
  } else if (auto nvfp4 = dyn_cast<kv::Nvfp4EncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_NVFP4);
    out.set_sinks(nvfp4.getSinks());
    out.set_residual(nvfp4.getWindow());
  } else if (auto kivi = dyn_cast<kv::IntEncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_INT);
    out.set_bits(kivi.getBits());
    out.set_group(kivi.getGroup());
    out.set_residual(kivi.getResidual());
  } else if (auto polar = dyn_cast<kv::PolarEncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_POLAR);
    out.set_bits(polar.getBits());
    out.set_rotation(schema::ROTATION_HADAMARD);
    out.set_seed(polar.getSeed());
    out.set_qjl(polar.getQjl());
    out.set_sinks(polar.getSinks());
    out.set_residual(polar.getWindow());
  } else if (auto lowRank = dyn_cast<kv::LowRankEncodingAttr>(attr)) {
    out.set_kind(schema::ENCODING_LOWRANK);
    out.set_rank(lowRank.getRank());
    if (lowRank.getGroup() > 1)
      out.set_group(lowRank.getGroup());
    out.set_sinks(lowRank.getSinks());
    out.set_residual(lowRank.getWindow());
    out.set_folded(lowRank.getFolded());
    return encodingOf(lowRank.getLatent(), *out.mutable_latent(), op, side);
  } else {
    return Status::error(describe(op) + ": the " + side +
                         " encoding is not one the artifact can describe");
  }
  return Status::ok();
}

/// Largest magnitudes of the fp8 formats and of nvfp4's e2m1 values.
constexpr float kFp8E4M3Max = 448.0f;
constexpr float kFp8E5M2Max = 57344.0f;
constexpr float kFp4E2M1Max = 6.0f;

/// The scale that maps `absMax` to the code `largestCode`. A head that only
/// ever held zeros (or values too small for a normal f32 scale) gets 1: its
/// zeros encode exactly under any scale, and encoding divides by the scale.
float scaleFor(float absMax, float largestCode) {
  float scale = absMax / largestCode;
  return std::isnormal(scale) ? scale : 1.0f;
}

/// Whether `values` (f32, of `shape`) are exactly what `blocks` decode to,
/// rows of whole blocks: then the artifact may store the blocks instead. A
/// pass that changed the weight in place would make them differ.
bool holdsValuesOf(const import::WeightBlocks &blocks,
                   const std::vector<int64_t> &shape, ArrayRef<char> values) {
  const uint64_t perBlock = kvrt::dtypeBlockElements(blocks.dtype);
  if (shape.size() != 2 || shape[1] % int64_t(perBlock) != 0)
    return false;
  const uint64_t columns = uint64_t(shape[1]);
  const uint64_t rowBytes = kvrt::tensorBytes(blocks.dtype, columns);
  if (blocks.bytes->size() != rowBytes * uint64_t(shape[0]) ||
      values.size() != columns * sizeof(float) * uint64_t(shape[0]))
    return false;
  std::vector<float> row(columns);
  for (int64_t r = 0; r < shape[0]; ++r) {
    kvrt::decodeValues(blocks.dtype, blocks.bytes->data() + r * rowBytes,
                       columns, row.data());
    if (std::memcmp(row.data(), values.data() + r * columns * sizeof(float),
                    columns * sizeof(float)) != 0)
      return false;
  }
  return true;
}

class PlanExporter {
public:
  PlanExporter(const ExportOptions &options, kvrt::ArtifactWriter &writer)
      : float32Cache(options.float32Cache), deferred(options.deferred),
        blocks(options.blocks), writer(writer), manifest(writer.manifest()),
        plan(*writer.manifest().mutable_plan()) {}

  Status run(ModuleOp module);

private:
  Status exportOp(Operation *op);
  /// The basis tensor of a low-rank `encoding` of the keys (`keys`) or
  /// values of `op`, named in `out`.
  Status addBasis(kv::CacheOp op, Attribute encoding, bool keys,
                  schema::Encoding &out);
  /// The slot an activation operand lives in.
  StatusOr<uint32_t> slotOf(Value value, Operation *user);
  /// The manifest tensor of a weight operand.
  StatusOr<uint32_t> tensorOf(Value value, Operation *user);
  /// A new slot for the op's single result; its shape is one token's row.
  StatusOr<uint32_t> resultSlot(Operation *op);
  StatusOr<uint32_t> layerOf(Value cache, Operation *user);
  /// Checks that `value` is @forward's argument `expected`, which the
  /// runtime supplies itself (token ids or positions).
  Status requireBatchInput(Value value, Value expected, Operation *op,
                           const char *what);
  Status addCacheLayout(kv::CacheOp op);
  /// Adds the scale tensor an fp8 per_head or nvfp4 `encoding` needs from
  /// the op's `absMax` statistics (null when uncalibrated).
  Status addScales(kv::CacheOp op, Attribute encoding, DenseF32ArrayAttr absMax,
                   const std::string &side, schema::Encoding &out);
  /// A new f32 manifest tensor holding `values`; returns its index.
  uint32_t addF32Tensor(const std::string &name, std::vector<int64_t> shape,
                        std::vector<float> values);
  Status exportEvict(kv::EvictOp op);
  Status exportPrefetch(kv::PrefetchOp op);
  /// The kv.select that `selection`, read by `attention`, comes from.
  Status exportSelection(kv::AttentionOp attention, Value selection,
                         schema::AttentionParams &params);
  /// The calibrated query statistics of `layer` that TriAttention reads,
  /// as new tensors for `queryHeads` query heads.
  Status addQueryStatistics(kv::EvictOp op, uint32_t layer, int64_t queryHeads,
                            schema::KernelCall &c);
  schema::KernelCall &call(const char *kernel, Operation *op,
                           std::initializer_list<uint32_t> inputs,
                           std::initializer_list<uint32_t> outputs,
                           std::initializer_list<uint32_t> tensors = {});
  /// Calls a kernel on the op's operands (all activations) giving its one
  /// result.
  Status elementwise(const char *kernel, Operation *op);

  bool float32Cache;
  const import::DeferredWeights *deferred;
  const import::BlockWeights *blocks;
  kvrt::ArtifactWriter &writer;
  schema::Manifest &manifest;
  schema::Plan &plan;
  Value tokens, positions;
  llvm::DenseMap<Value, uint32_t> slots, tensors, layers;
  std::map<int64_t, schema::CacheLayout> cacheLayouts;
  std::map<int64_t, kv::CacheOp> cacheOps;
  /// Layers whose attention the plan calls already, and those of them that
  /// attend through a sliding window.
  std::set<uint32_t> attended, slidingWindow;
  bool sawLogits = false;
};

StatusOr<uint32_t> PlanExporter::slotOf(Value value, Operation *user) {
  auto found = slots.find(value);
  if (found != slots.end())
    return found->second;
  std::string producer =
      value.getDefiningOp() ? describe(value.getDefiningOp()) : "an argument";
  return Status::error(describe(user) + " reads a value made by " + producer +
                       ", which is not an activation the runtime computes");
}

StatusOr<uint32_t> PlanExporter::tensorOf(Value value, Operation *user) {
  auto found = tensors.find(value);
  if (found != tensors.end())
    return found->second;
  auto constant = value.getDefiningOp<arith::ConstantOp>();
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!constant || !type || !type.hasStaticShape())
    return Status::error(describe(user) +
                         " takes a weight that is not a constant tensor of "
                         "static shape");
  StatusOr<schema::DType> dtype = dtypeOf(type.getElementType(), constant);
  if (!dtype)
    return dtype.status();
  std::string name = locationText(constant.getLoc());
  std::vector<int64_t> shape(type.getShape());
  ArrayRef<char> bytes;
  if (auto resource =
          dyn_cast<DenseResourceElementsAttr>(constant.getValue())) {
    DenseResourceElementsHandle handle = resource.getRawHandle();
    name = handle.getKey().str();
    const AsmResourceBlob *blob = handle.getBlob();
    if (!blob) {
      // A weight the importer defers rather than holds.
      if (!deferred || !deferred->count(name))
        return Status::error(describe(constant) + ": weight '" + name +
                             "' has no data (an "
                             "elided resource cannot be compiled)");
      const import::DeferredBytes &later = deferred->at(name);
      uint32_t index;
      if (later.generated) {
        schema::SyntheticValues values;
        values.set_seed(later.generated->seed);
        values.set_bound(later.generated->bound);
        values.set_constant(later.generated->constant);
        index = writer.addSyntheticTensor(name, *dtype, shape, values);
      } else {
        index = writer.addTensor(name, *dtype, shape, later.producer);
      }
      tensors[value] = index;
      return index;
    }
    bytes = blob->getData();
  } else if (auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
             dense && !dense.isSplat()) {
    bytes = dense.getRawData();
  } else {
    return Status::error(describe(constant) +
                         ": a weight must be a dense_resource or a non-splat "
                         "dense constant");
  }
  uint64_t expected = kvrt::dtypeBlockBytes(*dtype);
  for (int64_t d : type.getShape())
    expected *= uint64_t(d);
  if (bytes.size() != expected)
    return Status::error(describe(constant) + ": weight '" + name + "' holds " +
                         std::to_string(bytes.size()) + " bytes, its type " +
                         std::to_string(expected));
  const import::WeightBlocks *source = nullptr;
  if (blocks && *dtype == schema::DTYPE_F32) {
    auto found = blocks->find(name);
    if (found != blocks->end() && holdsValuesOf(found->second, shape, bytes))
      source = &found->second;
  }
  uint32_t index = source ? writer.addTensor(name, source->dtype, shape,
                                             source->bytes->data())
                          : writer.addTensor(name, *dtype, shape, bytes.data());
  tensors[value] = index;
  return index;
}

StatusOr<uint32_t> PlanExporter::resultSlot(Operation *op) {
  Value result = op->getResult(0);
  auto type = dyn_cast<RankedTensorType>(result.getType());
  if (!type || type.getRank() < 2 || !type.isDynamicDim(0))
    return Status::error(describe(op) +
                         " must produce a tensor of shape [tokens, ...] with "
                         "a dynamic token dimension");
  schema::Slot *slot = plan.add_slots();
  slot->set_name(locationText(op->getLoc()));
  for (int64_t d : type.getShape().drop_front()) {
    if (ShapedType::isDynamic(d))
      return Status::error(describe(op) +
                           " has a dynamic dimension besides the tokens");
    slot->add_shape(d);
  }
  uint32_t index = uint32_t(plan.slots_size() - 1);
  slots[result] = index;
  return index;
}

Status PlanExporter::requireBatchInput(Value value, Value expected,
                                       Operation *op, const char *what) {
  if (value == expected)
    return Status::ok();
  return Status::error(describe(op) + " must read the batch's " + what +
                       " (@forward's argument) directly: the runtime supplies "
                       "them, it does not compute them");
}

StatusOr<uint32_t> PlanExporter::layerOf(Value cache, Operation *user) {
  auto found = layers.find(cache);
  if (found == layers.end())
    return Status::error(describe(user) +
                         " uses a cache that no kv.cache op in @forward made");
  return found->second;
}

Status PlanExporter::addCacheLayout(kv::CacheOp op) {
  int64_t layer = op.getLayer();
  auto type = cast<kv::CacheType>(op.getType());
  if (layer < 0 || layer > int64_t(UINT32_MAX))
    return Status::error(describe(op) + " has layer " + std::to_string(layer));
  if (cacheLayouts.count(layer))
    return Status::error(describe(op) + " opens the cache of layer " +
                         std::to_string(layer) + " a second time");
  schema::CacheLayout &c = cacheLayouts[layer];
  cacheOps[layer] = op;
  c.set_layer(uint32_t(layer));
  c.set_kv_heads(uint32_t(type.getHeads()));
  c.set_head_dim(uint32_t(type.getHeadDim()));
  c.set_page_size(uint32_t(type.getPage()));
  layers[op.getResult()] = uint32_t(layer);
  if (float32Cache) {
    c.mutable_key()->set_kind(schema::ENCODING_F32);
    c.mutable_value()->set_kind(schema::ENCODING_F32);
    return Status::ok();
  }
  auto *dialect = op->getContext()->getLoadedDialect<kv::KVDialect>();
  KVRT_RETURN_IF_ERROR(encodingOf(type.getKey(), *c.mutable_key(), op, "key"));
  KVRT_RETURN_IF_ERROR(addBasis(op, type.getKey(), true, *c.mutable_key()));
  KVRT_RETURN_IF_ERROR(addScales(op, type.getKey(),
                                 dialect->getKeyAbsmaxAttrHelper().getAttr(op),
                                 "key", *c.mutable_key()));
  KVRT_RETURN_IF_ERROR(
      encodingOf(type.getValue(), *c.mutable_value(), op, "value"));
  KVRT_RETURN_IF_ERROR(
      addBasis(op, type.getValue(), false, *c.mutable_value()));
  return addScales(op, type.getValue(),
                   dialect->getValueAbsmaxAttrHelper().getAttr(op), "value",
                   *c.mutable_value());
}

Status PlanExporter::addBasis(kv::CacheOp op, Attribute encoding, bool keys,
                              schema::Encoding &out) {
  auto lowRank = dyn_cast<kv::LowRankEncodingAttr>(encoding);
  if (!lowRank)
    return Status::ok();
  const char *side = keys ? "key" : "value";
  if (!kvrt::lowRankLatentSupported(out.latent()))
    return Status::error(describe(op) +
                         " stores a low-rank latent the runtime does not: "
                         "it takes bf16, f32, fp8 with dynamic scales, nvfp4, "
                         "KIVI int without a residual or polar without QJL");
  // Folded values arrive on the axes already: the runtime needs none.
  if (lowRank.getFolded())
    return Status::ok();
  auto *dialect = op->getContext()->getLoadedDialect<kv::KVDialect>();
  const bool attention = lowRank.getBasis() == kv::LowRankBasis::Attention;
  if (keys && attention)
    return Status::error(describe(op) +
                         " stores its keys as #kv.lowrank with basis = "
                         "attention, which only values have");
  auto type = cast<kv::CacheType>(op.getType());
  const int64_t heads = type.getHeads(), d = type.getHeadDim();
  const int64_t rank = lowRank.getRank();
  std::string tensorName =
      "cache." + std::to_string(op.getLayer()) + "." + side + "_basis";
  // A key's row ends with the mean its latent is taken around: the
  // calibrated one when centred, else 0.
  std::vector<float> keyMean;
  if (keys) {
    keyMean.assign(size_t(heads * d), 0.0f);
    if (lowRank.getCentred()) {
      DenseFPElementsAttr mean = dialect->getKeyMeanAttrHelper().getAttr(op);
      if (!mean)
        return Status::error(describe(op) +
                             " stores its keys as #kv.lowrank with centred = "
                             "true but has no calibrated kv.key_mean");
      keyMean.assign(mean.getValues<float>().begin(),
                     mean.getValues<float>().end());
    }
  }
  const int64_t columns = keys ? rank + 2 : rank + 1;
  const bool lrkv = lowRank.getBasis() == kv::LowRankBasis::Lrkv;
  if (const int64_t group = lowRank.getGroup(); group > 1 || lrkv) {
    // [groups][G d][G d + 1], the last column the weights or 0, as
    // kv-lowrank{group=G} (or, in groups of one head, kv-lowrank{method=lrkv})
    // put it; the basis takes its first `rank` axes.
    DenseFPElementsAttr axes =
        keys ? dialect->getKeyGroupAxesAttrHelper().getAttr(op)
             : dialect->getValueGroupAxesAttrHelper().getAttr(op);
    const int64_t size = group * d;
    const std::string pass =
        lrkv ? "kv-lowrank{method=lrkv}"
             : "kv-lowrank{group=" + std::to_string(group) + "}";
    if (!axes || cast<ShapedType>(axes.getType()).getDimSize(1) != size)
      return Status::error(
          describe(op) + " stores its " + side + "s as #kv.lowrank with " +
          (lrkv ? std::string("basis = lrkv")
                : "group = " + std::to_string(group)) +
          " but has no kv." + side + "_group_axes of groups " + "of " +
          std::to_string(group) + " heads (" + pass + " puts them there)");
    std::vector<float> axisValues(axes.getValues<float>().begin(),
                                  axes.getValues<float>().end());
    std::vector<float> basis;
    basis.reserve(size_t(heads * d * columns));
    for (int64_t i = 0; i < heads * d; ++i) {
      const float *row = &axisValues[size_t(i * (size + 1))];
      basis.insert(basis.end(), row, row + rank);
      basis.push_back(row[size]);
      if (keys)
        basis.push_back(keyMean[size_t(i)]);
    }
    out.set_basis_tensor(addF32Tensor(
        tensorName, {heads / group, size, columns}, std::move(basis)));
    return Status::ok();
  }
  // Keys on query-weighted axes carry their weights as a last column;
  // method=svd's keys are on the plain second moment's (weights 1).
  const bool keyMoment = keys && lowRank.getBasis() == kv::LowRankBasis::Svd;
  DenseFPElementsAttr axes =
      keyMoment   ? dialect->getKeyMomentAxesAttrHelper().getAttr(op)
      : keys      ? dialect->getKeyAxesAttrHelper().getAttr(op)
      : attention ? dialect->getValueAttentionAxesAttrHelper().getAttr(op)
                  : dialect->getValueAxesAttrHelper().getAttr(op);
  if (!axes)
    return Status::error(describe(op) + " stores its " + side +
                         "s as #kv.lowrank but has no calibrated kv." + side +
                         (attention   ? "_attention_axes"
                          : keyMoment ? "_moment_axes"
                                      : "_axes"));
  // [heads][d][columns]: the first `rank` axes (columns of the axes), then
  // for keys the coordinates' weights (kv.key_axes' last column, or 1) and
  // mean, for values the point the latent is taken around: 0, since the
  // axes are those of an uncentred second moment, plain or
  // attention-weighted (calibrate/Statistics.cpp says why). The dialect
  // verified the attribute's shape.
  const bool weighted = keys && !keyMoment;
  const int64_t axisColumns = weighted ? d + 1 : d;
  std::vector<float> axisValues(axes.getValues<float>().begin(),
                                axes.getValues<float>().end());
  std::vector<float> basis;
  basis.reserve(size_t(heads * d * columns));
  for (int64_t i = 0; i < heads * d; ++i) {
    const float *row = &axisValues[size_t(i * axisColumns)];
    basis.insert(basis.end(), row, row + rank);
    basis.push_back(weighted ? row[d] : keys ? 1.0f : 0.0f);
    if (keys)
      basis.push_back(keyMean[size_t(i)]);
  }
  out.set_basis_tensor(
      addF32Tensor(tensorName, {heads, d, columns}, std::move(basis)));
  return Status::ok();
}

Status PlanExporter::addScales(kv::CacheOp op, Attribute encoding,
                               DenseF32ArrayAttr absMax,
                               const std::string &side, schema::Encoding &out) {
  auto fp8 = dyn_cast<kv::Fp8EncodingAttr>(encoding);
  bool perHead = fp8 && fp8.getScale() == kv::ScaleMode::PerHead;
  bool nvfp4 = isa<kv::Nvfp4EncodingAttr>(encoding);
  if (!perHead && !nvfp4)
    return Status::ok();
  // Without statistics nvfp4 keeps the runtime's per-tensor scale of 1.
  if (!absMax && nvfp4)
    return Status::ok();
  if (!absMax)
    return Status::error(
        describe(op) + " stores " + side +
        "s as fp8 with per_head scales, which come from calibration, and the "
        "cache has no kv." +
        side +
        "_absmax statistics; pass --calibrate FILE (or --calibration "
        "stats.json) to kvopt compile, or use scale=dynamic");
  std::vector<float> scales;
  if (perHead) {
    // The largest calibrated coordinate of each head maps to the format's
    // largest code.
    float largestCode =
        fp8.getFormat() == kv::Fp8Format::E4M3 ? kFp8E4M3Max : kFp8E5M2Max;
    for (float headMax : absMax.asArrayRef())
      scales.push_back(scaleFor(headMax, largestCode));
  } else {
    // nvfp4 stores each block's scale as e4m3(block_absmax / 6 / tensor
    // scale): the largest block then uses the top of e4m3's range.
    float tensorMax = 0;
    for (float headMax : absMax.asArrayRef())
      tensorMax = std::max(tensorMax, headMax);
    scales.push_back(scaleFor(tensorMax, kFp4E2M1Max * kFp8E4M3Max));
  }
  int64_t count = int64_t(scales.size());
  out.set_scale_tensor(addF32Tensor("cache." + std::to_string(op.getLayer()) +
                                        "." + side + "_scales",
                                    {count}, std::move(scales)));
  return Status::ok();
}

uint32_t PlanExporter::addF32Tensor(const std::string &name,
                                    std::vector<int64_t> shape,
                                    std::vector<float> values) {
  uint64_t bytes = values.size() * sizeof(float);
  schema::Tensor &tensor = *manifest.add_tensors();
  tensor.set_name(name);
  tensor.set_dtype(schema::DTYPE_F32);
  for (int64_t d : shape)
    tensor.add_shape(d);
  tensor.set_blob(writer.addBlob(
      bytes, [values = std::move(values), bytes](const kvrt::BlobSink &sink) {
        return sink(values.data(), bytes);
      }));
  return uint32_t(manifest.tensors_size() - 1);
}

Status PlanExporter::addQueryStatistics(kv::EvictOp op, uint32_t layer,
                                        int64_t queryHeads,
                                        schema::KernelCall &c) {
  kv::CacheOp cache = cacheOps.at(layer);
  auto *dialect = op->getContext()->getLoadedDialect<kv::KVDialect>();
  DenseFPElementsAttr center =
      dialect->getQueryCenterAttrHelper().getAttr(cache);
  DenseFPElementsAttr magnitude =
      dialect->getQueryMagnitudeAttrHelper().getAttr(cache);
  std::string layerText = std::to_string(layer);
  if (!center || !magnitude)
    return Status::error(
        describe(op) + " evicts from layer " + layerText +
        " by TriAttention, which scores with calibrated query centres, and "
        "the layer's kv.cache has no kv.query_center and kv.query_magnitude "
        "statistics; pass --calibrate FILE (or --calibration stats.json) to "
        "kvopt compile, or evict with another method");
  // The dialect verifier checked both shapes against the cache; the heads
  // must also be those of the queries the call reads.
  int64_t heads = center.getType().getDimSize(0);
  if (heads != queryHeads)
    return Status::error(describe(op) +
                         ": the calibrated query centres of "
                         "layer " +
                         layerText + " describe " + std::to_string(heads) +
                         " query heads but the layer's attention has " +
                         std::to_string(queryHeads));
  for (auto [attr, what] : {std::pair(center, "query_center"),
                            std::pair(magnitude, "query_magnitude")}) {
    auto values = attr.getValues<float>();
    c.add_tensors(
        addF32Tensor("layers." + layerText + ".evict." + what,
                     std::vector<int64_t>(attr.getType().getShape()),
                     std::vector<float>(values.begin(), values.end())));
  }
  return Status::ok();
}

schema::KernelCall &
PlanExporter::call(const char *kernel, Operation *op,
                   std::initializer_list<uint32_t> inputs,
                   std::initializer_list<uint32_t> outputs,
                   std::initializer_list<uint32_t> weights) {
  schema::KernelCall &c = *plan.add_calls();
  c.set_kernel(kernel);
  c.set_name(locationText(op->getLoc()));
  for (uint32_t i : inputs)
    c.add_inputs(i);
  for (uint32_t o : outputs)
    c.add_outputs(o);
  for (uint32_t t : weights)
    c.add_tensors(t);
  return c;
}

Status PlanExporter::elementwise(const char *kernel, Operation *op) {
  std::vector<uint32_t> inputs;
  for (Value operand : op->getOperands()) {
    StatusOr<uint32_t> slot = slotOf(operand, op);
    if (!slot)
      return slot.status();
    inputs.push_back(*slot);
  }
  StatusOr<uint32_t> out = resultSlot(op);
  if (!out)
    return out.status();
  schema::KernelCall &c = call(kernel, op, {}, {*out});
  for (uint32_t i : inputs)
    c.add_inputs(i);
  return Status::ok();
}

#define ASSIGN_OR_RETURN(var, expr)                                            \
  auto var##OrError = (expr);                                                  \
  if (!var##OrError)                                                           \
    return var##OrError.status();                                              \
  uint32_t var = *var##OrError;

Status PlanExporter::exportOp(Operation *op) {
  // Shape arithmetic (tensor.dim for the token count) has no kernel: the
  // runtime knows the batch size. Tensor constants are weights, exported
  // when an op first uses one; any other use of a constant fails in slotOf.
  if (isa<tensor::DimOp, arith::ConstantOp>(op))
    return Status::ok();

  if (auto embedding = dyn_cast<kv::EmbeddingOp>(op)) {
    KVRT_RETURN_IF_ERROR(
        requireBatchInput(embedding.getTokens(), tokens, op, "token ids"));
    ASSIGN_OR_RETURN(table, tensorOf(embedding.getTable(), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    call("embedding", op, {}, {out}, {table});
    return Status::ok();
  }
  if (auto norm = dyn_cast<kv::RMSNormOp>(op)) {
    ASSIGN_OR_RETURN(in, slotOf(norm.getInput(), op));
    ASSIGN_OR_RETURN(weight, tensorOf(norm.getWeight(), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    call("rms_norm", op, {in}, {out}, {weight})
        .mutable_rms_norm()
        ->set_epsilon(norm.getEpsilon().convertToDouble());
    return Status::ok();
  }
  if (auto linear = dyn_cast<kv::LinearOp>(op)) {
    ASSIGN_OR_RETURN(in, slotOf(linear.getInput(), op));
    ASSIGN_OR_RETURN(weight, tensorOf(linear.getWeight(), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    schema::KernelCall &c = call("linear", op, {in}, {out}, {weight});
    if (linear.getBias()) {
      ASSIGN_OR_RETURN(bias, tensorOf(linear.getBias(), op));
      c.add_tensors(bias);
    }
    return Status::ok();
  }
  if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(op)) {
    ASSIGN_OR_RETURN(in, slotOf(op->getOperand(0), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    call("reshape", op, {in}, {out});
    return Status::ok();
  }
  if (auto rope = dyn_cast<kv::RopeOp>(op)) {
    KVRT_RETURN_IF_ERROR(
        requireBatchInput(rope.getPositions(), positions, op, "positions"));
    ASSIGN_OR_RETURN(in, slotOf(rope.getInput(), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    schema::Rope &r =
        *call("rope", op, {in}, {out}).mutable_rope()->mutable_rope();
    r.set_theta(rope.getTheta().convertToDouble());
    r.set_style(rope.getStyle() == kv::RopeStyle::Half
                    ? schema::ROPE_STYLE_HALF
                    : schema::ROPE_STYLE_INTERLEAVED);
    schema::RopeScaling &s = *r.mutable_scaling();
    Attribute scaling = rope.getScalingAttr();
    if (!scaling) {
      s.set_kind(schema::ROPE_SCALING_NONE);
    } else if (auto linearScaling = dyn_cast<kv::RopeLinearAttr>(scaling)) {
      s.set_kind(schema::ROPE_SCALING_LINEAR);
      s.set_factor(linearScaling.getFactor().convertToDouble());
    } else if (auto llama3 = dyn_cast<kv::RopeLlama3Attr>(scaling)) {
      s.set_kind(schema::ROPE_SCALING_LLAMA3);
      s.set_factor(llama3.getFactor().convertToDouble());
      s.set_low_freq_factor(llama3.getLowFreqFactor().convertToDouble());
      s.set_high_freq_factor(llama3.getHighFreqFactor().convertToDouble());
      s.set_original_max_position(llama3.getOriginalMaxPosition());
    } else if (auto yarn = dyn_cast<kv::RopeYarnAttr>(scaling)) {
      s.set_kind(schema::ROPE_SCALING_YARN);
      s.set_factor(yarn.getFactor().convertToDouble());
      s.set_original_max_position(yarn.getOriginalMaxPosition());
      s.set_beta_fast(yarn.getBetaFast().convertToDouble());
      s.set_beta_slow(yarn.getBetaSlow().convertToDouble());
      s.set_attention_factor(yarn.getAttentionFactor().convertToDouble());
    }
    return Status::ok();
  }
  if (auto cache = dyn_cast<kv::CacheOp>(op))
    return addCacheLayout(cache);
  if (auto append = dyn_cast<kv::AppendOp>(op)) {
    KVRT_RETURN_IF_ERROR(
        requireBatchInput(append.getPositions(), positions, op, "positions"));
    ASSIGN_OR_RETURN(layer, layerOf(append.getCache(), op));
    ASSIGN_OR_RETURN(keys, slotOf(append.getKeys(), op));
    ASSIGN_OR_RETURN(values, slotOf(append.getValues(), op));
    call("append", op, {keys, values}, {}).mutable_append()->set_layer(layer);
    layers[append.getResult()] = layer;
    return Status::ok();
  }
  // A kv.score is exported with the kv.evict that reads it, a kv.select
  // with the kv.attention.
  if (isa<kv::ScoreOp, kv::SelectOp>(op))
    return Status::ok();
  if (auto evict = dyn_cast<kv::EvictOp>(op))
    return exportEvict(evict);
  if (auto prefetch = dyn_cast<kv::PrefetchOp>(op))
    return exportPrefetch(prefetch);
  if (auto attention = dyn_cast<kv::AttentionOp>(op)) {
    KVRT_RETURN_IF_ERROR(requireBatchInput(attention.getPositions(), positions,
                                           op, "positions"));
    ASSIGN_OR_RETURN(layer, layerOf(attention.getCache(), op));
    ASSIGN_OR_RETURN(queries, slotOf(attention.getQueries(), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    schema::AttentionParams &a =
        *call("attention", op, {queries}, {out}).mutable_attention();
    a.set_layer(layer);
    a.set_scale(attention.getScale().convertToDouble());
    if (std::optional<int64_t> window = attention.getSlidingWindow()) {
      a.set_sliding_window(*window);
      slidingWindow.insert(layer);
    }
    if (Value selection = attention.getSelection())
      KVRT_RETURN_IF_ERROR(exportSelection(attention, selection, a));
    attended.insert(layer);
    return Status::ok();
  }
  if (isa<arith::AddFOp>(op))
    return elementwise("add", op);
  if (isa<kv::SwiGLUOp>(op))
    return elementwise("swiglu", op);
  if (auto head = dyn_cast<kv::LMHeadOp>(op)) {
    ASSIGN_OR_RETURN(in, slotOf(head.getInput(), op));
    ASSIGN_OR_RETURN(weight, tensorOf(head.getWeight(), op));
    ASSIGN_OR_RETURN(out, resultSlot(op));
    call("lm_head", op, {in}, {out}, {weight});
    return Status::ok();
  }
  if (auto ret = dyn_cast<func::ReturnOp>(op)) {
    if (ret.getNumOperands() != 1 ||
        !ret.getOperand(0).getDefiningOp<kv::LMHeadOp>())
      return Status::error(describe(op) +
                           ": @forward must return the logits of a kv.lm_head");
    ASSIGN_OR_RETURN(logits, slotOf(ret.getOperand(0), op));
    plan.set_logits(logits);
    sawLogits = true;
    return Status::ok();
  }
  return Status::error(describe(op) +
                       " has no kernel in the runtime; the plan can hold "
                       "embedding, rms_norm, linear, reshape, rope, append, "
                       "attention, add, swiglu, lm_head, evict (kv.score "
                       "with kv.evict) and prefetch");
}

Status PlanExporter::exportSelection(kv::AttentionOp attention, Value selection,
                                     schema::AttentionParams &params) {
  auto select = selection.getDefiningOp<kv::SelectOp>();
  if (!select || select.getCache() != attention.getCache() ||
      select.getQueries() != attention.getQueries())
    return Status::error(
        describe(attention) +
        " attends to a selection that is not a kv.select of its own queries "
        "and cache; the runtime selects from the queries it attends with "
        "(the kv-sparse-select pass puts the pair there)");
  if (attention.getSlidingWindow())
    return Status::error(describe(attention) +
                         " selects from a sliding-window layer; block "
                         "summaries assume every cached entry is visible");
  kv::TwoLevelAttr policy = select.getPolicy();
  schema::SelectParams &s = *params.mutable_select();
  s.set_block(policy.getBlock());
  s.set_top_blocks(policy.getTopBlocks());
  s.set_top_tokens(policy.getTopTokens());
  return Status::ok();
}

Status PlanExporter::exportPrefetch(kv::PrefetchOp op) {
  ASSIGN_OR_RETURN(layer, layerOf(op.getCache(), op));
  auto select = op.getSelection()
                    ? op.getSelection().getDefiningOp<kv::SelectOp>()
                    : kv::SelectOp();
  bool readByAttention =
      select &&
      llvm::any_of(select.getSelection().getUsers(), [&](Operation *user) {
        auto attention = dyn_cast<kv::AttentionOp>(user);
        return attention && attention.getCache() == op.getCache();
      });
  if (!readByAttention)
    return Status::error(
        describe(op) + " prefetches for layer " + std::to_string(layer) +
        " without the selection its attention reads; the runtime predicts "
        "pages from that selection (kv-offload after kv-sparse-select puts "
        "it there)");
  if (!op.getDevicePagesAttr() && !op.getDeviceRatioAttr())
    return Status::error(describe(op) +
                         " has no device budget (device_pages or "
                         "device_ratio); kv-offload sets one");
  schema::PrefetchParams &p = *call("prefetch", op, {}, {}).mutable_prefetch();
  p.set_layer(layer);
  p.set_mode(op.getMode() == kv::PrefetchMode::NextStep
                 ? schema::PREFETCH_MODE_NEXT_STEP
                 : schema::PREFETCH_MODE_NEXT_LAYER);
  if (IntegerAttr pages = op.getDevicePagesAttr())
    p.set_device_pages(uint64_t(pages.getInt()));
  else
    p.set_device_ratio(op.getDeviceRatioAttr().getValueAsDouble());
  p.set_runners_up(op.getRunnersUp());
  return Status::ok();
}

Status PlanExporter::exportEvict(kv::EvictOp op) {
  ASSIGN_OR_RETURN(layer, layerOf(op.getCache(), op));
  std::string layerText = std::to_string(layer);
  if (!attended.count(layer))
    return Status::error(describe(op) + " evicts from layer " + layerText +
                         " before the layer's attention; the runtime compacts "
                         "a cache after the attention that reads it (the "
                         "kv-evict pass puts it there)");
  if (slidingWindow.count(layer))
    return Status::error(describe(op) + " evicts from layer " + layerText +
                         ", which attends through a sliding window; the "
                         "runtime's eviction assumes every cached entry is "
                         "visible to the next query");
  // The kv.evict verifier guarantees a kv.score of the same cache and policy.
  auto score = op.getScores().getDefiningOp<kv::ScoreOp>();
  Value queries = score.getQueries();
  if (!queries.getDefiningOp<kv::RopeOp>())
    return Status::error(describe(op) + " scores layer " + layerText +
                         " with queries that no kv.rope made; the runtime "
                         "reads the layer's RoPE from the rope call that "
                         "makes its attention's queries");
  ASSIGN_OR_RETURN(q, slotOf(queries, score));

  auto policy = cast<kv::EvictionPolicyAttrInterface>(op.getPolicy());
  schema::KernelCall c;
  c.set_kernel("evict");
  c.set_name(locationText(op.getLoc()));
  c.add_inputs(q);
  schema::EvictParams &e = *c.mutable_evict();
  e.set_layer(layer);
  e.set_method(
      llvm::TypeSwitch<Attribute, schema::EvictMethod>(policy)
          .Case<kv::SnapKVAttr>(
              [](auto) { return schema::EVICT_METHOD_SNAPKV; })
          .Case<kv::H2OAttr>([](auto) { return schema::EVICT_METHOD_H2O; })
          .Case<kv::StreamingAttr>(
              [](auto) { return schema::EVICT_METHOD_STREAMING; })
          .Default([](auto) { return schema::EVICT_METHOD_TRIATTENTION; }));
  if (auto count = dyn_cast<IntegerAttr>(policy.getBudget()))
    e.set_budget_tokens(count.getValue().getLimitedValue());
  else
    e.set_budget_fraction(
        cast<FloatAttr>(policy.getBudget()).getValueAsDouble());
  e.set_window(policy.getWindow());
  e.set_sinks(policy.getSinks());
  e.set_interval(policy.getInterval());
  if (auto snapkv = dyn_cast<kv::SnapKVAttr>(policy)) {
    e.set_observe(snapkv.getObserve());
    e.set_kernel(snapkv.getKernel());
  }
  // StreamingLLM keeps the same entries in every head: shared.
  std::optional<kv::EvictHeads> heads =
      llvm::TypeSwitch<Attribute, std::optional<kv::EvictHeads>>(policy)
          .Case<kv::TriAttentionAttr, kv::SnapKVAttr, kv::H2OAttr>(
              [](auto p) { return p.getHeads(); })
          .Default([](auto) { return std::nullopt; });
  e.set_heads(heads == kv::EvictHeads::Each ? schema::EVICT_HEADS_EACH
                                            : schema::EVICT_HEADS_SHARED);
  if (auto tri = dyn_cast<kv::TriAttentionAttr>(policy)) {
    e.set_horizon(tri.getHorizon());
    e.set_combine(tri.getCombine() == kv::EvictCombine::ZMax
                      ? schema::EVICT_COMBINE_ZMAX
                      : schema::EVICT_COMBINE_MEAN);
    KVRT_RETURN_IF_ERROR(addQueryStatistics(
        op, layer, cast<RankedTensorType>(queries.getType()).getDimSize(1), c));
  }
  *plan.add_calls() = std::move(c);
  layers[op.getResult()] = layer;
  return Status::ok();
}

#undef ASSIGN_OR_RETURN

Status PlanExporter::run(ModuleOp module) {
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward || forward.isExternal())
    return Status::error("the module has no @forward function to compile");
  FunctionType type = forward.getFunctionType();
  if (type.getNumInputs() != 2 || type.getNumResults() != 1)
    return Status::error("@forward must take (tokens, positions) and return "
                         "logits");
  if (!forward.getBody().hasOneBlock())
    return Status::error("@forward must be a single block: the plan has no "
                         "control flow");
  tokens = forward.getArgument(0);
  positions = forward.getArgument(1);
  for (Operation &op : forward.getBody().front())
    KVRT_RETURN_IF_ERROR(exportOp(&op));
  if (!sawLogits)
    return Status::error("@forward does not return logits");
  int64_t expected = 0;
  for (auto &[layer, layout] : cacheLayouts) {
    if (layer != expected)
      return Status::error("@forward has no kv.cache for layer " +
                           std::to_string(expected) +
                           "; the caches must be layers 0 to N-1");
    *manifest.add_cache() = layout;
    ++expected;
  }
  return Status::ok();
}

} // namespace

Status exportPlan(ModuleOp module, const ExportOptions &options,
                  kvrt::ArtifactWriter &writer) {
  return PlanExporter(options, writer).run(module);
}

} // namespace kvopt::exporter
