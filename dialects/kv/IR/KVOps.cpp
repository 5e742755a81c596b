//===- KVOps.cpp - Operations of the kv dialect ---------------------------===//
#include "dialects/kv/IR/KVOps.h"

#include "llvm/ADT/TypeSwitch.h"

#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kv;

/// Enum attributes inside op syntax print as a bare keyword (`half`); in
/// generic form they keep their full spelling (`#kv.rope_style<half>`).
template <typename EnumAttrT>
static ParseResult parseEnumKeyword(OpAsmParser &parser, EnumAttrT &attr) {
  using Enum = decltype(std::declval<EnumAttrT>().getValue());
  llvm::SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  if (std::optional<Enum> value = symbolizeEnum<Enum>(keyword)) {
    attr = EnumAttrT::get(parser.getContext(), *value);
    return success();
  }
  InFlightDiagnostic diag = parser.emitError(loc);
  diag << "unknown keyword '" << keyword << "'; allowed:";
  // The cases are numbered from 0; stringifying past the last gives "".
  StringRef separator = " ";
  for (uint32_t i = 0; !stringifyEnum(static_cast<Enum>(i)).empty(); ++i) {
    diag << separator << stringifyEnum(static_cast<Enum>(i));
    separator = ", ";
  }
  return diag;
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

/// `1 token`, `2 tokens`, `? tokens`.
static std::string count(int64_t n, llvm::StringRef one, llvm::StringRef many) {
  return extent(n) + " " + (n == 1 ? one : many).str();
}
static std::string count(int64_t n, llvm::StringRef one) {
  return count(n, one, (one + "s").str());
}

/// The verb for an operand name: the plural ones (`positions`, `the
/// queries`) end in s.
static llvm::StringRef has(llvm::StringRef name) {
  return name.ends_with("s") ? "have" : "has";
}

static LogicalResult verifyTokenCount(Operation *op, Value tokens,
                                      llvm::StringRef tokensName, Value other,
                                      llvm::StringRef otherName) {
  if (!compatible(dim(tokens, 0), dim(other, 0)))
    return op->emitOpError()
           << tokensName << " " << has(tokensName) << " "
           << count(dim(tokens, 0), "entry", "entries") << " but " << otherName
           << " " << has(otherName) << " " << count(dim(other, 0), "token");
  return success();
}

/// Checks y = x W^T shapes shared by kv.linear and kv.lm_head.
static LogicalResult verifyProjection(Operation *op, Value input, Value weight,
                                      Value result) {
  if (!compatible(dim(input, 1), dim(weight, 1)))
    return op->emitOpError()
           << "weight is (out x in) = " << extent(dim(weight, 0)) << "x"
           << extent(dim(weight, 1)) << " but the input has "
           << count(dim(input, 1), "feature");
  if (!compatible(dim(result, 1), dim(weight, 0)))
    return op->emitOpError()
           << "result has " << count(dim(result, 1), "feature")
           << " but the weight produces " << extent(dim(weight, 0));
  return verifyTokenCount(op, result, "result", input, "the input");
}

LogicalResult EmbeddingOp::verify() {
  if (!compatible(dim(getResult(), 1), dim(getTable(), 1)))
    return emitOpError() << "result rows have "
                         << count(dim(getResult(), 1), "feature")
                         << " but the table has " << extent(dim(getTable(), 1));
  return verifyTokenCount(*this, getTokens(), "tokens", getResult(),
                          "the result");
}

LogicalResult RMSNormOp::verify() {
  RankedTensorType type = getInput().getType();
  if (type.getRank() < 1)
    return emitOpError() << "input must have at least one dimension";
  if (!compatible(type.getShape().back(), dim(getWeight(), 0)))
    return emitOpError() << "weight has "
                         << count(dim(getWeight(), 0), "entry", "entries")
                         << " but the normalised (last) dimension has "
                         << extent(type.getShape().back());
  if (!(getEpsilon().convertToDouble() > 0))
    return emitOpError() << "epsilon must be positive";
  return success();
}

LogicalResult LinearOp::verify() {
  if (getBias() && !compatible(dim(getBias(), 0), dim(getWeight(), 0)))
    return emitOpError() << "bias has "
                         << count(dim(getBias(), 0), "entry", "entries")
                         << " but the weight has "
                         << count(dim(getWeight(), 0), "output");
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
  double theta = getTheta().convertToDouble();
  if (!std::isfinite(theta) || theta <= 0)
    return emitOpError() << "theta must be finite and positive, got "
                         << formatDouble(theta);
  return verifyTokenCount(*this, getPositions(), "positions", getInput(),
                          "the input");
}

LogicalResult CacheOp::verify() {
  // getLayer() is unsigned: read the attribute's signed value.
  if (int64_t layer = getLayerAttr().getInt(); layer < 0)
    return emitOpError() << "layer must be a non-negative layer index, got "
                         << layer;
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
           << count(queryHeads, "query head") << " cannot share "
           << count(cache.getHeads(), "KV head")
           << ": the query heads must be a multiple of the KV heads";
  return verifyHeads(op, queries, "queries", cache);
}

/// A selection (tokens x KV heads x entries) lists entries per KV head.
static LogicalResult verifySelectionHeads(Operation *op, Value selection,
                                          CacheType cache) {
  if (!compatible(dim(selection, 1), cache.getHeads()))
    return op->emitOpError()
           << "selection has " << count(dim(selection, 1), "head")
           << " but the cache has " << count(cache.getHeads(), "KV head");
  return success();
}

LogicalResult AppendOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  for (auto [value, name] :
       {std::pair<Value, llvm::StringRef>{getKeys(), "keys"},
        {getValues(), "values"}}) {
    if (!compatible(dim(value, 1), cache.getHeads()))
      return emitOpError() << name << " have " << count(dim(value, 1), "head")
                           << " but the cache has "
                           << count(cache.getHeads(), "KV head");
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
  // getSlidingWindow() is unsigned: read the attribute's signed value.
  if (IntegerAttr window = getSlidingWindowAttr();
      window && window.getInt() <= 0)
    return emitOpError() << "sliding_window must be a positive token count, "
                            "got "
                         << window.getInt();
  if (Value sel = getSelection()) {
    if (failed(verifySelectionHeads(*this, sel, cache)) ||
        failed(verifyTokenCount(*this, sel, "selection", getQueries(),
                                "the queries")))
      return failure();
  }
  return verifyTokenCount(*this, getPositions(), "positions", getQueries(),
                          "the queries");
}

LogicalResult ScoreOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  if (failed(verifyQueryGroups(*this, getQueries(), cache)))
    return failure();
  if (!compatible(dim(getScores(), 1), cache.getHeads()))
    return emitOpError() << "scores must have one column per KV head ("
                         << cache.getHeads() << "), got "
                         << extent(dim(getScores(), 1));
  return success();
}

LogicalResult
mlir::kv::verifyEvictable(CacheType cache, Attribute policy,
                          function_ref<InFlightDiagnostic()> emitError) {
  auto evicting = llvm::cast<EvictionPolicyAttrInterface>(policy);
  for (auto [encoding, side] : {std::pair(cache.getKey(), "keys"),
                                std::pair(cache.getValue(), "values")})
    if (unsigned sinks = exactTokensOf(encoding).first;
        sinks > evicting.getSinks())
      return emitError() << "cannot evict from a cache whose " << side
                         << " keep their first " << sinks << " tokens exact ("
                         << encoding << ") under a "
                         << "policy that keeps " << evicting.getSinks()
                         << " sinks: compaction would move them; give the "
                            "policy sinks of at least "
                         << sinks;
  // Each head's page area holds its share of its group's latent: the
  // group's heads must keep the same entries.
  EvictHeads heads = llvm::TypeSwitch<Attribute, EvictHeads>(policy)
                         .Case<TriAttentionAttr, SnapKVAttr, H2OAttr>(
                             [](auto p) { return p.getHeads(); })
                         .Default([](Attribute) { return EvictHeads::Shared; });
  for (auto [encoding, side] : {std::pair(cache.getKey(), "keys"),
                                std::pair(cache.getValue(), "values")})
    if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(encoding);
        lowRank && lowRank.getGroup() > 1 && heads == EvictHeads::Each)
      return emitError() << "cannot evict per KV head (heads = each) from a "
                            "cache whose "
                         << side << " share one latent per group of "
                         << lowRank.getGroup()
                         << " KV heads: the group's heads must keep the same "
                            "entries; evict with heads = shared";
  // KIVI keys, or a latent of keys in KIVI, are encoded in groups.
  Attribute keys = cache.getKey();
  if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(keys))
    keys = lowRank.getLatent();
  if (auto kivi = llvm::dyn_cast<IntEncodingAttr>(keys))
    return emitError() << "cannot evict from a cache whose keys are "
                       << cache.getKey()
                       << ": KIVI quantizes keys in groups of "
                       << kivi.getGroup()
                       << " tokens, which eviction cannot split; evict with "
                          "keys in f32, bf16, fp8, nvfp4 or polar, or "
                          "quantize only values with int (side=value)";
  return success();
}

LogicalResult EvictOp::verify() {
  auto cache = llvm::cast<CacheType>(getCache().getType());
  if (!compatible(dim(getScores(), 1), cache.getHeads()))
    return emitOpError() << "scores must have one column per KV head ("
                         << cache.getHeads() << "), got "
                         << extent(dim(getScores(), 1));
  if (failed(
          verifyEvictable(cache, getPolicy(), [&] { return emitOpError(); })))
    return failure();
  auto score = getScores().getDefiningOp<ScoreOp>();
  if (!score)
    return emitOpError() << "scores must come from a kv.score of the same "
                            "cache and policy";
  if (score.getCache() != getCache())
    return emitOpError() << "scores come from a kv.score of another cache "
                            "value; score the cache this op evicts from";
  if (score.getPolicy() != getPolicy())
    return emitOpError() << "evicts by " << getPolicy()
                         << " but its scores come from a kv.score by "
                         << score.getPolicy() << "; use one policy for both";
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
    return emitOpError() << "selection holds "
                         << count(dim(getSelection(), 2), "token")
                         << " per head but the policy selects "
                         << getPolicy().getTopTokens();
  unsigned block = getPolicy().getBlock();
  if (cache.getPage() % block != 0)
    return emitOpError() << "selects blocks of " << block
                         << " entries from a cache of " << cache.getPage()
                         << "-entry pages; block summaries are page "
                            "metadata, so the page must be a multiple of the "
                            "block";
  if (auto polar = llvm::dyn_cast<PolarEncodingAttr>(cache.getKey());
      polar && polar.getQjl())
    return emitOpError() << "cannot select over keys with the QJL residual ("
                         << polar
                         << "): block summaries bound the stored vectors, "
                            "not the residual's correction; select over "
                            "keys without qjl";
  if (llvm::isa<LowRankEncodingAttr>(cache.getKey()))
    return emitOpError() << "cannot select over #kv.lowrank keys";
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

LogicalResult PrefetchOp::verify() {
  if (getDevicePagesAttr() && getDeviceRatioAttr())
    return emitOpError() << "takes device_pages or device_ratio, not both";
  if (IntegerAttr pages = getDevicePagesAttr(); pages && pages.getInt() < 1)
    return emitOpError() << "device_pages must be at least 1, got "
                         << pages.getInt();
  if (FloatAttr ratio = getDeviceRatioAttr()) {
    double r = ratio.getValueAsDouble();
    if (!(r > 0 && r <= 1))
      return emitOpError() << "device_ratio must be in (0, 1], got " << r;
  }
  if (getRunnersUpAttr().getInt() < 0)
    return emitOpError() << "runners_up must not be negative";
  Value sel = getSelection();
  if (!sel)
    return success();
  return verifySelectionHeads(*this, sel,
                              llvm::cast<CacheType>(getCache().getType()));
}
