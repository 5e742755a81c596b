//===- ValueFold.cpp - A value basis folded into v_proj and o_proj --------===//
#include "passes/ValueFold.h"
#include "passes/CacheTypes.h"
#include "runtime/src/backends/cpu/Float16.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/APFloat.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace mlir::kv {

double orthonormalityError(const HeadAxes &axes) {
  const int64_t d = axes.headDim, s = axes.stride;
  double worst = 0;
  for (int64_t h = 0; h < axes.kvHeads; ++h) {
    const float *q = axes.values.data() + h * d * s;
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = a; b < d; ++b) {
        double dot = 0;
        for (int64_t i = 0; i < d; ++i)
          dot += double(q[i * s + a]) * double(q[i * s + b]);
        worst = std::max(worst, std::abs(dot - (a == b ? 1.0 : 0.0)));
      }
  }
  return worst;
}

void foldValueAxes(const HeadAxes &axes, int64_t qHeads,
                   std::vector<float> &valueWeight,
                   std::vector<float> &valueBias,
                   std::vector<float> &outputWeight) {
  const int64_t d = axes.headDim, s = axes.stride, kvHeads = axes.kvHeads;
  const int64_t inputs = int64_t(valueWeight.size()) / (kvHeads * d);
  const int64_t outputs = int64_t(outputWeight.size()) / (qHeads * d);
  const int64_t perKv = qHeads / kvHeads;
  auto axis = [&](int64_t h, int64_t i, int64_t k) {
    return double(axes.values[size_t((h * d + i) * s + k)]);
  };
  // v_proj: row (h, k) becomes sum_i Q_h[i][k] row (h, i).
  std::vector<double> rows(size_t(d * inputs));
  for (int64_t h = 0; h < kvHeads; ++h) {
    std::fill(rows.begin(), rows.end(), 0.0);
    const float *w = valueWeight.data() + h * d * inputs;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t k = 0; k < d; ++k) {
        const double q = axis(h, i, k);
        double *row = rows.data() + k * inputs;
        for (int64_t c = 0; c < inputs; ++c)
          row[c] += q * double(w[i * inputs + c]);
      }
    std::transform(rows.begin(), rows.end(),
                   valueWeight.begin() + h * d * inputs,
                   [](double v) { return float(v); });
    if (valueBias.empty())
      continue;
    std::vector<double> bias(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t k = 0; k < d; ++k)
        bias[size_t(k)] += axis(h, i, k) * double(valueBias[size_t(h * d + i)]);
    for (int64_t k = 0; k < d; ++k)
      valueBias[size_t(h * d + k)] = float(bias[size_t(k)]);
  }
  // o_proj: in each output row, query head q's columns become Q_h^T's
  // product with them, h = q / perKv: column k = sum_i W[., (q, i)] Q_h[i][k].
  std::vector<double> columns(static_cast<size_t>(d));
  for (int64_t r = 0; r < outputs; ++r)
    for (int64_t q = 0; q < qHeads; ++q) {
      float *w = outputWeight.data() + (r * qHeads + q) * d;
      const int64_t h = q / perKv;
      std::fill(columns.begin(), columns.end(), 0.0);
      for (int64_t i = 0; i < d; ++i) {
        const double x = w[i];
        for (int64_t k = 0; k < d; ++k)
          columns[size_t(k)] += x * axis(h, i, k);
      }
      for (int64_t k = 0; k < d; ++k)
        w[k] = float(columns[size_t(k)]);
    }
}

namespace {

/// A weight constant's values as floats; its bytes stay where they are.
struct WeightValues {
  arith::ConstantOp op;
  std::vector<float> values;
};

/// The f32, f16 or bf16 element at `p`.
float loadElement(Type element, const char *p) {
  if (element.isF32()) {
    float v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  uint16_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return element.isBF16() ? kvrt::cpu::bf16ToFloat(bits)
                          : kvrt::cpu::f16ToFloat(bits);
}

/// `v` as an element of type `element` at `p`, rounded to nearest even.
void storeElement(Type element, float v, char *p) {
  if (element.isF32()) {
    std::memcpy(p, &v, sizeof v);
    return;
  }
  uint16_t bits = kvrt::cpu::floatToBf16(v);
  if (element.isF16()) {
    bool lost;
    llvm::APFloat half(v);
    half.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
                 &lost);
    bits = uint16_t(half.bitcastToAPInt().getZExtValue());
  }
  std::memcpy(p, &bits, sizeof bits);
}

/// The values of the constant that `value` is, or an error on `cache`
/// saying why not (`what` names the weight).
FailureOr<WeightValues> readWeight(Value value, CacheOp cache, StringRef what) {
  auto fail = [&]() {
    return cache.emitError()
           << "kv-lowrank: fold=true rewrites layer "
           << cache.getLayerAttr().getInt() << "'s " << what << ", but ";
  };
  auto op = value.getDefiningOp<arith::ConstantOp>();
  if (!op)
    return fail() << "it is not a constant";
  auto type = cast<ShapedType>(op.getType());
  Type element = type.getElementType();
  if (!element.isF32() && !element.isF16() && !element.isBF16())
    return fail() << "it holds " << element << ", not f32, f16 or bf16";
  WeightValues weight{op, {}};
  weight.values.reserve(size_t(type.getNumElements()));
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(op.getValue())) {
    const AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob)
      return fail() << "its bytes are not here (a synthetic model's weights "
                       "are generated at run time; fold a model read from "
                       "a file)";
    ArrayRef<char> data = blob->getData();
    const size_t size = element.getIntOrFloatBitWidth() / 8;
    if (data.size() != size * size_t(type.getNumElements()))
      return fail() << "its blob holds " << data.size() << " bytes for "
                    << type;
    for (size_t i = 0; i < data.size(); i += size)
      weight.values.push_back(loadElement(element, data.data() + i));
    return weight;
  }
  auto dense = dyn_cast<DenseFPElementsAttr>(op.getValue());
  if (!dense)
    return fail() << "its value is neither dense nor a dense resource";
  for (const APFloat &v : dense.getValues<APFloat>()) {
    APFloat single = v;
    bool lost;
    single.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &lost);
    weight.values.push_back(single.convertToFloat());
  }
  return weight;
}

/// A new constant beside `weight.op` holding `values` in its type and kind
/// (a dense resource named after the old one plus `.folded`, or dense);
/// `user`'s operand `operand` takes it, and the old constant goes when
/// nothing else reads it.
void replaceWeight(const WeightValues &weight, ArrayRef<float> values,
                   OpOperand &operand) {
  arith::ConstantOp old = weight.op;
  auto type = cast<RankedTensorType>(old.getType());
  Type element = type.getElementType();
  Attribute attr;
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(old.getValue())) {
    const size_t size = element.getIntOrFloatBitWidth() / 8;
    std::vector<char> bytes(values.size() * size);
    for (size_t i = 0; i < values.size(); ++i)
      storeElement(element, values[i], bytes.data() + i * size);
    attr = DenseResourceElementsAttr::get(
        type, (resource.getRawHandle().getKey() + ".folded").str(),
        HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, size,
                                                      /*dataIsMutable=*/false));
  } else {
    std::vector<APFloat> elements;
    elements.reserve(values.size());
    for (float v : values) {
      APFloat e(v);
      bool lost;
      e.convert(cast<FloatType>(element).getFloatSemantics(),
                APFloat::rmNearestTiesToEven, &lost);
      elements.push_back(e);
    }
    attr = DenseElementsAttr::get(type, elements);
  }
  OpBuilder builder(old);
  auto folded = arith::ConstantOp::create(builder, old.getLoc(), type,
                                          cast<TypedAttr>(attr));
  operand.set(folded.getResult());
  if (old->use_empty())
    old->erase();
}

} // namespace

LogicalResult foldValueProjections(CacheOp cache, const HeadAxes &axes) {
  const int64_t layer = cache.getLayerAttr().getInt();
  auto refuse = [&]() {
    return cache.emitError() << "kv-lowrank: fold=true rewrites layer " << layer
                             << "'s v_proj and o_proj, but ";
  };
  // The append that stores the values, and the attention that reads them.
  AppendOp append;
  AttentionOp attention;
  WalkResult walk = cache->getParentOp()->walk([&](Operation *op) {
    if (auto a = dyn_cast<AppendOp>(op); a && cacheOf(a.getCache()) == cache) {
      if (append)
        return WalkResult::interrupt();
      append = a;
    }
    if (auto a = dyn_cast<AttentionOp>(op);
        a && cacheOf(a.getCache()) == cache) {
      if (attention)
        return WalkResult::interrupt();
      attention = a;
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted() || !append || !attention)
    return refuse() << "its cache is not appended and attended once each";
  // values = expand_shape(linear(x, W_v, b_v)), read by the append alone.
  auto expand = append.getValues().getDefiningOp<tensor::ExpandShapeOp>();
  auto valueProjection =
      expand ? expand.getSrc().getDefiningOp<LinearOp>() : LinearOp();
  if (!valueProjection || !expand->hasOneUse() || !valueProjection->hasOneUse())
    return refuse() << "its values are not one kv.linear's output, split "
                       "into heads and read by the append alone";
  // o_proj = linear(collapse_shape(attention)), attention read by it alone.
  auto collapse =
      attention->hasOneUse()
          ? dyn_cast<tensor::CollapseShapeOp>(*attention->getUsers().begin())
          : tensor::CollapseShapeOp();
  auto outputProjection =
      collapse && collapse->hasOneUse()
          ? dyn_cast<LinearOp>(*collapse->getUsers().begin())
          : LinearOp();
  if (!outputProjection || outputProjection.getInput() != collapse.getResult())
    return refuse() << "its attention's output is not read by one kv.linear "
                       "alone, through its heads merged";

  const int64_t d = axes.headDim, kvHeads = axes.kvHeads;
  const int64_t qHeads =
      cast<ShapedType>(attention.getQueries().getType()).getDimSize(1);
  auto valueType = cast<ShapedType>(valueProjection.getWeight().getType());
  auto outputType = cast<ShapedType>(outputProjection.getWeight().getType());
  if (qHeads % kvHeads || valueType.getDimSize(0) != kvHeads * d ||
      outputType.getDimSize(1) != qHeads * d)
    return refuse() << "their shapes (" << valueType << ", " << outputType
                    << ") are not those of " << kvHeads << " KV heads and "
                    << qHeads << " query heads of " << d;
  if (double error = orthonormalityError(axes); !(error < 1e-4))
    return refuse() << "its value axes are not orthonormal (|Q^T Q - I| "
                       "reaches "
                    << error << "), so o_proj cannot undo them";

  FailureOr<WeightValues> valueWeight =
      readWeight(valueProjection.getWeight(), cache, "v_proj");
  FailureOr<WeightValues> outputWeight =
      readWeight(outputProjection.getWeight(), cache, "o_proj");
  if (failed(valueWeight) || failed(outputWeight))
    return failure();
  FailureOr<WeightValues> valueBias = WeightValues{};
  if (Value bias = valueProjection.getBias())
    valueBias = readWeight(bias, cache, "v_proj's bias");
  if (failed(valueBias))
    return failure();
  std::vector<float> &vw = valueWeight->values, &vb = valueBias->values,
                     &ow = outputWeight->values;
  foldValueAxes(axes, qHeads, vw, vb, ow);
  replaceWeight(*valueWeight, vw, valueProjection.getWeightMutable());
  replaceWeight(*outputWeight, ow, outputProjection.getWeightMutable());
  if (!vb.empty())
    replaceWeight(*valueBias, vb, valueProjection.getBiasMutable()[0]);
  return success();
}

} // namespace mlir::kv
