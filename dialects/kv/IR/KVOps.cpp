//===- KVOps.cpp - Operations of the kv dialect ---------------------------===//
#include "dialects/kv/IR/KVOps.h"

#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::kv;

/// Enum attributes inside op syntax print as a bare keyword (`half`); in
/// generic form they keep their full spelling (`#kv.rope_style<half>`).
template <typename EnumAttrT>
static ParseResult parseEnumKeyword(OpAsmParser &parser, EnumAttrT &attr) {
  llvm::SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  using Enum = decltype(std::declval<EnumAttrT>().getValue());
  std::optional<Enum> value;
  if constexpr (std::is_same_v<Enum, RopeStyle>)
    value = symbolizeRopeStyle(keyword);
  else
    value = symbolizePrefetchMode(keyword);
  if (!value)
    return parser.emitError(loc) << "unknown keyword '" << keyword << "'";
  attr = EnumAttrT::get(parser.getContext(), *value);
  return success();
}

template <typename EnumAttrT>
static void printEnumKeyword(OpAsmPrinter &printer, Operation *,
                             EnumAttrT attr) {
  printer << stringifyEnum(attr.getValue());
}

#define GET_OP_CLASSES
#include "dialects/kv/IR/KVOps.cpp.inc"

/// Two extents agree when equal or when either is only known at run time.
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

static int64_t dim(Value v, unsigned i) {
  return llvm::cast<ShapedType>(v.getType()).getDimSize(i);
}

/// Prints a possibly dynamic extent as the IR writes it.
static std::string extent(int64_t d) {
  return ShapedType::isDynamic(d) ? "?" : std::to_string(d);
}

static LogicalResult verifyTokenCount(Operation *op, Value tokens,
                                      llvm::StringRef tokensName, Value other,
                                      llvm::StringRef otherName) {
  if (!compatible(dim(tokens, 0), dim(other, 0)))
    return op->emitOpError()
           << tokensName << " has " << extent(dim(tokens, 0)) << " entries but "
           << otherName << " has " << extent(dim(other, 0)) << " tokens";
  return success();
}

/// Checks y = x W^T shapes shared by kv.linear and kv.lm_head.
static LogicalResult verifyProjection(Operation *op, Value input, Value weight,
                                      Value result) {
  if (!compatible(dim(input, 1), dim(weight, 1)))
    return op->emitOpError()
           << "weight is (out x in) = " << extent(dim(weight, 0)) << "x"
           << extent(dim(weight, 1)) << " but the input has "
           << extent(dim(input, 1)) << " features";
  if (!compatible(dim(result, 1), dim(weight, 0)))
    return op->emitOpError()
           << "result has " << extent(dim(result, 1))
           << " features but the weight produces " << extent(dim(weight, 0));
  return verifyTokenCount(op, result, "result", input, "the input");
}

LogicalResult EmbeddingOp::verify() {
  if (!compatible(dim(getResult(), 1), dim(getTable(), 1)))
    return emitOpError() << "result rows have " << extent(dim(getResult(), 1))
                         << " features but the table has "
                         << extent(dim(getTable(), 1));
  return verifyTokenCount(*this, getTokens(), "tokens", getResult(),
                          "the result");
}

LogicalResult RMSNormOp::verify() {
  auto type = getInput().getType();
  if (type.getRank() < 1)
    return emitOpError() << "input must have at least one dimension";
  if (!compatible(type.getShape().back(), dim(getWeight(), 0)))
    return emitOpError() << "weight has " << extent(dim(getWeight(), 0))
                         << " entries but the normalised dimension has "
                         << extent(type.getShape().back());
  if (!(getEpsilon().convertToDouble() > 0))
    return emitOpError() << "epsilon must be positive";
  return success();
}

LogicalResult LinearOp::verify() {
  if (getBias() && !compatible(dim(getBias(), 0), dim(getWeight(), 0)))
    return emitOpError() << "bias has " << extent(dim(getBias(), 0))
                         << " entries but the weight has "
                         << extent(dim(getWeight(), 0)) << " outputs";
  return verifyProjection(*this, getInput(), getWeight(), getResult());
}

LogicalResult LMHeadOp::verify() {
  return verifyProjection(*this, getInput(), getWeight(), getResult());
}

LogicalResult RopeOp::verify() {
  int64_t headDim = dim(getInput(), 2);
  if (!ShapedType::isDynamic(headDim) && headDim % 2 != 0)
    return emitOpError() << "rotates pairs of coordinates, so head_dim must "
                            "be even, got "
                         << headDim;
  if (!(getTheta().convertToDouble() > 0))
    return emitOpError() << "theta must be positive";
  return verifyTokenCount(*this, getPositions(), "positions", getInput(),
                          "the input");
}

LogicalResult CacheOp::verify() {
  if (getLayer() < 0)
    return emitOpError() << "layer must be non-negative, got " << getLayer();
  return success();
}

/// Keys, values and queries are tokens x heads x head_dim; checks the
/// head_dim against the cache and returns the head count.
static LogicalResult verifyHeads(Operation *op, Value tensor,
                                 llvm::StringRef name, CacheType cache) {
  if (!compatible(dim(tensor, 2), cache.getHeadDim()))
    return op->emitOpError()
           << name << " have head_dim " << extent(dim(tensor, 2))
           << " but the cache stores head_dim " << cache.getHeadDim();
  return success();
}

static LogicalResult verifyQueryGroups(Operation *op, Value queries,
                                       CacheType cache) {
  int64_t queryHeads = dim(queries, 1);
  if (!ShapedType::isDynamic(queryHeads) && queryHeads % cache.getHeads() != 0)
    return op->emitOpError()
           << queryHeads << " query heads cannot share " << cache.getHeads()
           << " KV heads: the query heads must be a multiple of the KV heads";
  return verifyHeads(op, queries, "queries", cache);
}

LogicalResult AppendOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  for (auto [value, name] :
       {std::pair<Value, llvm::StringRef>{getKeys(), "keys"},
        {getValues(), "values"}}) {
    if (!compatible(dim(value, 1), cache.getHeads()))
      return emitOpError() << name << " have " << extent(dim(value, 1))
                           << " heads but the cache has " << cache.getHeads()
                           << " KV heads";
    if (failed(verifyHeads(*this, value, name, cache)))
      return failure();
  }
  if (!compatible(dim(getKeys(), 0), dim(getValues(), 0)))
    return emitOpError() << "keys and values differ in token count";
  return verifyTokenCount(*this, getPositions(), "positions", getKeys(),
                          "the keys");
}

LogicalResult AttentionOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  if (failed(verifyQueryGroups(*this, getQueries(), cache)))
    return failure();
  if (getResult().getType() != getQueries().getType())
    return emitOpError() << "result type must equal the queries' type "
                         << getQueries().getType();
  if (!(getScale().convertToDouble() > 0))
    return emitOpError() << "scale must be positive";
  if (auto window = getSlidingWindow(); window && *window <= 0)
    return emitOpError() << "sliding_window must be a positive token count";
  if (Value sel = getSelection()) {
    if (!compatible(dim(sel, 1), cache.getHeads()))
      return emitOpError() << "selection has " << extent(dim(sel, 1))
                           << " heads but the cache has " << cache.getHeads()
                           << " KV heads";
    if (failed(verifyTokenCount(*this, sel, "selection", getQueries(),
                                "the queries")))
      return failure();
  }
  return verifyTokenCount(*this, getPositions(), "positions", getQueries(),
                          "the queries");
}

/// SnapKV and H2O score by attention, so they need the queries.
static bool policyReadsQueries(Attribute policy) {
  return llvm::isa<SnapKVAttr, H2OAttr>(policy);
}

LogicalResult ScoreOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  Attribute policy = getPolicy();
  if (policyReadsQueries(policy) && !getQueries())
    return emitOpError() << policy
                         << " scores by attention weights and needs `queries`";
  if (auto tri = llvm::dyn_cast<TriAttentionAttr>(policy);
      tri && !tri.getCenters())
    return emitOpError() << "#kv.triattention needs calibrated query centres "
                            "(centers = ...): calibrate the model first "
                            "(kvopt calibrate, or kvopt compile --calibrate)";
  if (getQueries() && failed(verifyQueryGroups(*this, getQueries(), cache)))
    return failure();
  if (!compatible(dim(getScores(), 1), cache.getHeads()))
    return emitOpError() << "scores must have one column per KV head ("
                         << cache.getHeads() << "), got "
                         << extent(dim(getScores(), 1));
  return success();
}

LogicalResult EvictOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  if (!compatible(dim(getScores(), 1), cache.getHeads()))
    return emitOpError() << "scores must have one column per KV head ("
                         << cache.getHeads() << "), got "
                         << extent(dim(getScores(), 1));
  return success();
}

LogicalResult SelectOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  if (failed(verifyQueryGroups(*this, getQueries(), cache)))
    return failure();
  if (!compatible(dim(getSelection(), 1), cache.getHeads()))
    return emitOpError() << "selection must have one row per KV head ("
                         << cache.getHeads() << "), got "
                         << extent(dim(getSelection(), 1));
  if (!compatible(dim(getSelection(), 2), getPolicy().getTopTokens()))
    return emitOpError() << "selection holds " << extent(dim(getSelection(), 2))
                         << " tokens per head but the policy selects "
                         << getPolicy().getTopTokens();
  return verifyTokenCount(*this, getSelection(), "selection", getQueries(),
                          "the queries");
}

LogicalResult ProjectOp::verify() {
  if (!compatible(dim(getBasis(), 0), dim(getInput(), 1)) ||
      !compatible(dim(getBasis(), 1), dim(getInput(), 2)))
    return emitOpError() << "basis must be (heads x head_dim x rank) = "
                         << extent(dim(getInput(), 1)) << "x"
                         << extent(dim(getInput(), 2)) << "xR to match the "
                         << "input";
  if (!compatible(dim(getResult(), 1), dim(getInput(), 1)) ||
      !compatible(dim(getResult(), 2), dim(getBasis(), 2)))
    return emitOpError() << "result must be (tokens x heads x rank) with rank "
                         << extent(dim(getBasis(), 2));
  return verifyTokenCount(*this, getResult(), "result", getInput(),
                          "the input");
}
