//===- KVDialect.cpp - The kv dialect -------------------------------------===//
#include "dialects/kv/IR/KVDialect.h"
#include "dialects/kv/IR/KVOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kv;

#include "dialects/kv/IR/KVDialect.cpp.inc"

void KVDialect::initialize() {
  registerAttributes();
  registerTypes();
  addOperations<
#define GET_OP_LIST
#include "dialects/kv/IR/KVOps.cpp.inc"
      >();
}

/// kv.key_absmax / kv.value_absmax: one finite, non-negative f32 per KV head
/// of the kv.cache op that carries it.
static LogicalResult verifyAbsMax(Operation *op, NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  auto cache = dyn_cast<CacheOp>(op);
  if (!cache)
    return op->emitOpError()
           << "carries '" << name << "', which belongs on a kv.cache op";
  auto values = dyn_cast<DenseF32ArrayAttr>(attribute.getValue());
  if (!values)
    return op->emitOpError() << "'" << name
                             << "' must be an array<f32: ...> with one value "
                                "per KV head";
  int64_t heads = cast<CacheType>(cache.getType()).getHeads();
  if (int64_t(values.size()) != heads)
    return op->emitOpError()
           << "'" << name << "' has " << values.size()
           << " values for a cache of " << heads << " KV heads";
  for (auto [head, value] : llvm::enumerate(values.asArrayRef()))
    if (!std::isfinite(value) || value < 0)
      return op->emitOpError()
             << "'" << name << "' of KV head " << head
             << " must be finite and non-negative, got " << formatDouble(value);
  return success();
}

/// kv.query_center / kv.key_center (tensor<H x head_dim/2 x 2 x f32>, any
/// finite values) and kv.query_magnitude / kv.key_magnitude (tensor<H x
/// head_dim/2 x f32>, finite and non-negative) on a kv.cache op: H is the
/// cache's KV heads for keys, a multiple of them for queries, and the same
/// for a query centre and magnitude on one op.
static LogicalResult verifyPreRope(Operation *op, NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  auto cache = dyn_cast<CacheOp>(op);
  if (!cache)
    return op->emitOpError()
           << "carries '" << name << "', which belongs on a kv.cache op";
  bool center = name == KVDialect::QueryCenterAttrHelper::getNameStr() ||
                name == KVDialect::KeyCenterAttrHelper::getNameStr();
  bool query = name == KVDialect::QueryCenterAttrHelper::getNameStr() ||
               name == KVDialect::QueryMagnitudeAttrHelper::getNameStr();
  auto cacheType = cast<CacheType>(cache.getType());
  int64_t kvHeads = cacheType.getHeads(), pairs = cacheType.getHeadDim() / 2;
  auto values = dyn_cast<DenseFPElementsAttr>(attribute.getValue());
  auto type = values ? dyn_cast<RankedTensorType>(values.getType())
                     : RankedTensorType();
  auto shapeText = [&] {
    return std::string(query ? "H" : std::to_string(kvHeads)) + "x" +
           std::to_string(pairs) + (center ? "x2" : "") + "xf32";
  };
  if (!type || !type.getElementType().isF32() ||
      type.getRank() != (center ? 3 : 2) || type.getDimSize(1) != pairs ||
      (center && type.getDimSize(2) != 2) || type.getDimSize(0) < 1 ||
      (query ? type.getDimSize(0) % kvHeads != 0
             : type.getDimSize(0) != kvHeads) ||
      cacheType.getHeadDim() % 2)
    return op->emitOpError() << "'" << name << "' must be a dense tensor<"
                             << shapeText() << "> for a cache of " << kvHeads
                             << " KV heads of " << cacheType.getHeadDim()
                             << (query ? ", H a multiple of the KV heads" : "");
  if (query) {
    StringRef other = center ? KVDialect::QueryMagnitudeAttrHelper::getNameStr()
                             : KVDialect::QueryCenterAttrHelper::getNameStr();
    auto sibling = op->getAttrOfType<DenseFPElementsAttr>(other);
    auto siblingType =
        sibling ? dyn_cast<RankedTensorType>(sibling.getType()) : nullptr;
    if (siblingType && siblingType.getRank() >= 1 &&
        siblingType.getDimSize(0) != type.getDimSize(0))
      return op->emitOpError() << "'" << name << "' describes "
                               << type.getDimSize(0) << " query heads but '"
                               << other << "' " << siblingType.getDimSize(0);
  }
  int64_t perHead = pairs * (center ? 2 : 1);
  for (auto [i, value] : llvm::enumerate(values.getValues<float>()))
    if (!std::isfinite(value) || (!center && value < 0))
      return op->emitOpError()
             << "'" << name << "' of head " << int64_t(i) / perHead
             << " must be finite" << (center ? "" : " and non-negative")
             << ", got " << formatDouble(value);
  return success();
}

/// A calibrated f32 tensor on a kv.cache op whose shape `shape(heads,
/// head_dim)` gives; every element must pass `valid(index, value)`, else
/// the error names the head (`perHead` elements) and says it must be
/// `what`.
static LogicalResult
verifyCacheTensor(Operation *op, NamedAttribute attribute,
                  function_ref<SmallVector<int64_t>(int64_t, int64_t)> shape,
                  function_ref<bool(int64_t, float)> valid, StringRef what) {
  StringRef name = attribute.getName().getValue();
  auto cache = dyn_cast<CacheOp>(op);
  if (!cache)
    return op->emitOpError()
           << "carries '" << name << "', which belongs on a kv.cache op";
  auto cacheType = cast<CacheType>(cache.getType());
  SmallVector<int64_t> expected =
      shape(cacheType.getHeads(), cacheType.getHeadDim());
  auto values = dyn_cast<DenseFPElementsAttr>(attribute.getValue());
  auto type = values ? dyn_cast<RankedTensorType>(values.getType())
                     : RankedTensorType();
  if (!type || !type.getElementType().isF32() ||
      type.getShape() != ArrayRef<int64_t>(expected)) {
    InFlightDiagnostic diag = op->emitOpError()
                              << "'" << name << "' must be a dense tensor<";
    for (int64_t extent : expected)
      diag << extent << "x";
    return diag << "f32>";
  }
  int64_t perHead = type.getNumElements() / expected.front();
  for (auto [i, value] : llvm::enumerate(values.getValues<float>()))
    if (!valid(int64_t(i), value))
      return op->emitOpError()
             << "'" << name << "' of head " << int64_t(i) / perHead
             << " must be " << what << ", got " << formatDouble(value);
  return success();
}

/// kv.value_axes (kv.key_axes): tensor<kv_heads x head_dim x head_dim (+ 1)
/// x f32> of finite values, the keys' last column (their weights) positive.
static LogicalResult verifyAxes(Operation *op, NamedAttribute attribute,
                                bool keys) {
  int64_t columns = 0;
  return verifyCacheTensor(
      op, attribute,
      [&](int64_t heads, int64_t dim) {
        columns = keys ? dim + 1 : dim;
        return SmallVector<int64_t>{heads, dim, columns};
      },
      [&](int64_t i, float value) {
        bool weight = keys && i % columns == columns - 1;
        return std::isfinite(value) && (!weight || value > 0);
      },
      keys ? "finite with positive weights" : "finite");
}

/// kv.value_spectrum (kv.key_spectrum): tensor<kv_heads x head_dim x f32>
/// of finite, non-negative values.
static LogicalResult verifySpectrum(Operation *op, NamedAttribute attribute) {
  return verifyCacheTensor(
      op, attribute,
      [](int64_t heads, int64_t dim) {
        return SmallVector<int64_t>{heads, dim};
      },
      [](int64_t, float value) { return std::isfinite(value) && value >= 0; },
      "finite and non-negative");
}

/// kv.*_joint_moment: tensor<1 x (kv_heads x head_dim) x (kv_heads x
/// head_dim) x f32> (one group of every KV head) of finite values.
static LogicalResult verifyJointMoment(Operation *op,
                                       NamedAttribute attribute) {
  return verifyCacheTensor(
      op, attribute,
      [](int64_t heads, int64_t dim) {
        return SmallVector<int64_t>{1, heads * dim, heads * dim};
      },
      [](int64_t, float value) { return std::isfinite(value); }, "finite");
}

/// kv.*_group_axes: tensor<groups x G head_dim x (G head_dim + 1) x f32>,
/// G = kv_heads / groups, of finite values, the keys' last column (their
/// weights) positive.
static LogicalResult verifyGroupAxes(Operation *op, NamedAttribute attribute,
                                     bool keys) {
  auto typed = dyn_cast<TypedAttr>(attribute.getValue());
  auto type = typed ? dyn_cast<ShapedType>(typed.getType()) : ShapedType();
  int64_t groups =
      type && type.hasRank() && type.getRank() == 3 && type.getDimSize(0) > 0
          ? type.getDimSize(0)
          : 1;
  int64_t columns = 0;
  return verifyCacheTensor(
      op, attribute,
      [&](int64_t heads, int64_t dim) {
        int64_t size = heads % groups ? heads * dim : heads / groups * dim;
        columns = size + 1;
        return SmallVector<int64_t>{heads % groups ? 1 : groups, size, columns};
      },
      [&](int64_t i, float value) {
        bool weight = keys && i % columns == columns - 1;
        return std::isfinite(value) && (!weight || value > 0);
      },
      keys ? "finite with positive weights" : "finite");
}

/// kv.evict_loss: on a kv.cache op, at least one f32 in [0, 1], none above
/// the one before it (the loss at 1/G, 2/G, ..., 1 of the entries).
static LogicalResult verifyEvictLoss(Operation *op, NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (!isa<CacheOp>(op))
    return op->emitOpError()
           << "carries '" << name << "', which belongs on a kv.cache op";
  auto values = dyn_cast<DenseF32ArrayAttr>(attribute.getValue());
  if (!values || values.empty())
    return op->emitOpError()
           << "'" << name
           << "' must be a non-empty array<f32: ...>: the attention lost at "
              "1/G, 2/G, ..., 1 of the entries";
  ArrayRef<float> loss = values.asArrayRef();
  for (auto [i, value] : llvm::enumerate(loss))
    if (!(value >= 0 && value <= 1) || (i && value > loss[i - 1]))
      return op->emitOpError()
             << "'" << name << "' value " << i << " is " << formatDouble(value)
             << "; the values must be in [0, 1] and none above the one "
                "before it";
  return success();
}

LogicalResult KVDialect::verifyOperationAttribute(Operation *op,
                                                  NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name == KeyAbsmaxAttrHelper::getNameStr() ||
      name == ValueAbsmaxAttrHelper::getNameStr())
    return verifyAbsMax(op, attribute);
  if (name == QueryCenterAttrHelper::getNameStr() ||
      name == QueryMagnitudeAttrHelper::getNameStr() ||
      name == KeyCenterAttrHelper::getNameStr() ||
      name == KeyMagnitudeAttrHelper::getNameStr())
    return verifyPreRope(op, attribute);
  if (name == ValueSpectrumAttrHelper::getNameStr() ||
      name == KeySpectrumAttrHelper::getNameStr() ||
      name == ValueAttentionSpectrumAttrHelper::getNameStr() ||
      name == KeyMomentSpectrumAttrHelper::getNameStr())
    return verifySpectrum(op, attribute);
  if (name == ValueAxesAttrHelper::getNameStr() ||
      name == KeyAxesAttrHelper::getNameStr() ||
      name == ValueAttentionAxesAttrHelper::getNameStr() ||
      name == KeyMomentAxesAttrHelper::getNameStr())
    return verifyAxes(op, attribute, name == KeyAxesAttrHelper::getNameStr());
  if (name == KeyJointMomentAttrHelper::getNameStr() ||
      name == ValueJointMomentAttrHelper::getNameStr() ||
      name == ValueAttentionJointMomentAttrHelper::getNameStr())
    return verifyJointMoment(op, attribute);
  if (name == KeyGroupAxesAttrHelper::getNameStr() ||
      name == ValueGroupAxesAttrHelper::getNameStr())
    return verifyGroupAxes(op, attribute,
                           name == KeyGroupAxesAttrHelper::getNameStr());
  if (name == KeyMeanAttrHelper::getNameStr())
    return verifyCacheTensor(
        op, attribute,
        [](int64_t heads, int64_t d) { return SmallVector<int64_t>{heads, d}; },
        [](int64_t, float value) { return std::isfinite(value); }, "finite");
  if (name == EvictLossAttrHelper::getNameStr())
    return verifyEvictLoss(op, attribute);
  if (name == CalibrationAttrHelper::getNameStr()) {
    if (!isa<ModuleOp>(op))
      return op->emitOpError()
             << "carries '" << name << "', which belongs on the module";
    if (!isa<CalibrationAttr>(attribute.getValue()))
      return op->emitOpError()
             << "'" << name << "' must be a #kv.calibration attribute";
    return success();
  }
  // Other kv.* attributes (e.g. the importer's model summary) are not this
  // verifier's.
  return success();
}
