//===- KVAttrs.cpp - Attributes of the kv dialect -------------------------===//
#include "dialects/kv/IR/KVAttrs.h"
#include "dialects/kv/IR/KVDialect.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"

#include <charconv>
#include <cmath>

using namespace mlir;
using namespace mlir::kv;

/// Most tokens a low-rank cache keeps exact per sequence, at either end.
static constexpr unsigned kMaxExactTokens = 4096;

/// Exact tokens are per sequence; more than a few pages of them is a
/// mistake, not a policy.
static LogicalResult
verifyExactTokens(function_ref<InFlightDiagnostic()> emitError,
                  StringRef encoding, unsigned sinks, unsigned window) {
  if (sinks > kMaxExactTokens || window > kMaxExactTokens)
    return emitError() << encoding << " keeps "
                       << (sinks > window ? sinks : window) << " "
                       << (sinks > window ? "sink" : "window")
                       << " tokens exact; at most " << kMaxExactTokens
                       << " are allowed";
  return success();
}

std::pair<unsigned, unsigned> mlir::kv::exactTokensOf(Attribute encoding) {
  if (auto polar = llvm::dyn_cast<PolarEncodingAttr>(encoding))
    return {polar.getSinks(), polar.getWindow()};
  if (auto fp8 = llvm::dyn_cast<Fp8EncodingAttr>(encoding))
    return {fp8.getSinks(), fp8.getWindow()};
  if (auto nvfp4 = llvm::dyn_cast<Nvfp4EncodingAttr>(encoding))
    return {nvfp4.getSinks(), nvfp4.getWindow()};
  if (auto lowRank = llvm::dyn_cast<LowRankEncodingAttr>(encoding))
    return {lowRank.getSinks(), lowRank.getWindow()};
  return {0, 0};
}

#include "dialects/kv/IR/KVAttrInterfaces.cpp.inc"
#include "dialects/kv/IR/KVEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/kv/IR/KVAttrs.cpp.inc"

void KVDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/kv/IR/KVAttrs.cpp.inc"
      >();
}

FailureOr<llvm::APFloat> mlir::kv::parseDouble(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return llvm::APFloat(value);
}

std::string mlir::kv::formatDouble(double value) {
  // The longest shortest form of a double, `-2.2250738585072014e-308`, has 24
  // characters.
  char buffer[32];
  char *end = std::to_chars(buffer, buffer + sizeof(buffer), value).ptr;
  return std::string(buffer, end);
}

void mlir::kv::printDouble(AsmPrinter &printer, const llvm::APFloat &apValue) {
  // The parser reads infinities and NaNs only as their bit pattern in hex.
  if (!apValue.isFinite()) {
    printer << llvm::format_hex(apValue.bitcastToAPInt().getZExtValue(), 18);
    return;
  }
  // The lexer reads `8` as an integer and `1e-05` as the integer 1 followed by
  // an identifier: a float literal needs a fraction before its exponent.
  std::string text = formatDouble(apValue.convertToDouble());
  if (text.find('.') == std::string::npos)
    text.insert(std::min(text.find('e'), text.size()), ".0");
  printer << text;
}

//===----------------------------------------------------------------------===//
// Encodings
//===----------------------------------------------------------------------===//

double Bf16EncodingAttr::getBitsPerCoordinate(int64_t) const { return 16; }
LogicalResult
Bf16EncodingAttr::verifyVectorSize(int64_t, StringRef,
                                   function_ref<InFlightDiagnostic()>) const {
  return success();
}

double F32EncodingAttr::getBitsPerCoordinate(int64_t) const { return 32; }
LogicalResult
F32EncodingAttr::verifyVectorSize(int64_t, StringRef,
                                  function_ref<InFlightDiagnostic()>) const {
  return success();
}

LogicalResult
Fp8EncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError, Fp8Format,
                        ScaleMode, unsigned sinks, unsigned window) {
  return verifyExactTokens(emitError, "#kv.fp8", sinks, window);
}
double Fp8EncodingAttr::getBitsPerCoordinate(int64_t headDim) const {
  // A dynamic scale is one fp32 per stored vector.
  return getScale() == ScaleMode::Dynamic ? 8.0 + 32.0 / headDim : 8.0;
}
LogicalResult
Fp8EncodingAttr::verifyVectorSize(int64_t, StringRef,
                                  function_ref<InFlightDiagnostic()>) const {
  return success();
}

LogicalResult
Nvfp4EncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          unsigned sinks, unsigned window) {
  return verifyExactTokens(emitError, "#kv.nvfp4", sinks, window);
}
double Nvfp4EncodingAttr::getBitsPerCoordinate(int64_t) const {
  // An E2M1 value each, and an E4M3 scale per 16 values.
  return 4.0 + 8.0 / 16.0;
}
LogicalResult Nvfp4EncodingAttr::verifyVectorSize(
    int64_t size, StringRef sizeName,
    function_ref<InFlightDiagnostic()> emitError) const {
  if (size % 16 != 0)
    return emitError() << "#kv.nvfp4 scales blocks of 16 coordinates, but "
                       << sizeName << " " << size << " is not a multiple of 16";
  return success();
}

LogicalResult
IntEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        unsigned bits, unsigned group, unsigned residual) {
  if (bits != 2 && bits != 4)
    return emitError() << "#kv.int bits must be 2 or 4, got " << bits;
  if (group != 32 && group != 64 && group != 128)
    return emitError() << "#kv.int group must be 32, 64 or 128, got " << group;
  if (residual % group != 0)
    return emitError() << "#kv.int residual window (" << residual
                       << " tokens) must be a multiple of the group (" << group
                       << ") so that whole key groups leave it";
  return success();
}
double IntEncodingAttr::getBitsPerCoordinate(int64_t) const {
  // An fp16 scale and an fp16 zero per group of `group` coordinates.
  return getBits() + 32.0 / getGroup();
}
LogicalResult IntEncodingAttr::verifyVectorSize(
    int64_t size, StringRef sizeName,
    function_ref<InFlightDiagnostic()> emitError) const {
  if (size % getGroup() != 0) {
    InFlightDiagnostic diag = emitError();
    diag << "#kv.int groups values along channels, but group " << getGroup()
         << " does not divide " << sizeName << " " << size
         << "; allowed groups:";
    bool any = false;
    for (unsigned g : {32u, 64u, 128u})
      if (size % g == 0) {
        diag << " " << g;
        any = true;
      }
    if (!any)
      diag << " none (" << sizeName << " must be a multiple of 32)";
    return diag;
  }
  return success();
}

LogicalResult
PolarEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          unsigned bits, Rotation, uint64_t, bool,
                          unsigned sinks, unsigned window) {
  if (bits < 2 || bits > 4)
    return emitError() << "#kv.polar bits must be 2, 3 or 4, got " << bits;
  return verifyExactTokens(emitError, "#kv.polar", sinks, window);
}
double PolarEncodingAttr::getBitsPerCoordinate(int64_t headDim) const {
  // One fp16 norm per vector; the QJL residual adds a sign bit per
  // coordinate and a second fp16 norm.
  double bits = getBits() + 16.0 / headDim;
  if (getQjl())
    bits += 1.0 + 16.0 / headDim;
  return bits;
}
LogicalResult PolarEncodingAttr::verifyVectorSize(
    int64_t size, StringRef sizeName,
    function_ref<InFlightDiagnostic()> emitError) const {
  if (size < 2 || !llvm::isPowerOf2_64(size))
    return emitError() << "#kv.polar rotates with a Hadamard transform, which "
                          "needs a power-of-two "
                       << sizeName << ", got " << size;
  return success();
}

LogicalResult
LowRankEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                            unsigned rank, Attribute latent, unsigned sinks,
                            unsigned window, LowRankBasis basis, unsigned group,
                            bool folded, bool centred) {
  if (rank == 0)
    return emitError() << "#kv.lowrank rank must be positive";
  if (folded && group != 1)
    return emitError() << "#kv.lowrank folded = true needs group = 1: a "
                          "group's latent mixes its heads, which o_proj "
                          "reads apart; got group "
                       << group;
  if (basis == LowRankBasis::Lrkv && group != 1)
    return emitError() << "#kv.lowrank basis = lrkv keeps a latent per head "
                          "(its shared basis spans the layer's heads "
                          "already); group must be 1, got "
                       << group;
  if (group == 0 || rank % group != 0)
    return emitError() << "#kv.lowrank group must be positive and divide its "
                          "rank (the group's latent, split evenly over its "
                          "heads), got rank "
                       << rank << " and group " << group;
  if (failed(verifyExactTokens(emitError, "#kv.lowrank", sinks, window)))
    return failure();
  if (exactTokensOf(latent) != std::pair{0u, 0u})
    return emitError() << "#kv.lowrank keeps its own exact tokens; its latent "
                       << latent << " may not keep any";
  if (auto kivi = llvm::dyn_cast<IntEncodingAttr>(latent);
      kivi && kivi.getResidual() != 0)
    return emitError() << "#kv.lowrank keeps its own recent tokens exact "
                          "(window); its KIVI latent keeps no bf16 residual, "
                          "so it needs residual = 0 (kv-quantize{... "
                          "residual=0}), got "
                       << latent;
  if (!llvm::isa<EncodingAttrInterface>(latent) ||
      llvm::isa<LowRankEncodingAttr>(latent))
    return emitError()
           << "#kv.lowrank latent must be #kv.f32, #kv.bf16, #kv.fp8, "
              "#kv.nvfp4, #kv.int or #kv.polar, got "
           << latent;
  return success();
}
double LowRankEncodingAttr::getBitsPerCoordinate(int64_t headDim) const {
  // Each head stores its share of the group's latent.
  auto latent = llvm::cast<EncodingAttrInterface>(getLatent());
  const unsigned share = getRank() / getGroup();
  return latent.getBitsPerCoordinate(share) * share / headDim;
}
/// Whether `rank` fits in vectors of `size` coordinates of `group` heads.
static LogicalResult
verifyRankFits(LowRankEncodingAttr lowRank, int64_t size, StringRef sizeName,
               function_ref<InFlightDiagnostic()> emitError) {
  if (lowRank.getRank() < lowRank.getGroup() * size)
    return success();
  return emitError() << "#kv.lowrank rank " << lowRank.getRank()
                     << " must be smaller than "
                     << (lowRank.getGroup() > 1 ? "group x " : "") << sizeName
                     << " " << lowRank.getGroup() * size;
}
/// What each head's area stores of the latent, for diagnostics.
static StringRef latentSizeName(LowRankEncodingAttr lowRank) {
  return lowRank.getGroup() > 1 ? "#kv.lowrank rank / group"
                                : "#kv.lowrank rank";
}
LogicalResult LowRankEncodingAttr::verifyVectorSize(
    int64_t size, StringRef sizeName,
    function_ref<InFlightDiagnostic()> emitError) const {
  if (failed(verifyRankFits(*this, size, sizeName, emitError)))
    return failure();
  // The latent stores rank / group coordinates per vector, not head_dim.
  return llvm::cast<EncodingAttrInterface>(getLatent())
      .verifyVectorSize(getRank() / getGroup(), latentSizeName(*this),
                        emitError);
}
LogicalResult LowRankEncodingAttr::verifyKeySize(
    int64_t headDim, function_ref<InFlightDiagnostic()> emitError) const {
  if (!llvm::isa<IntEncodingAttr>(getLatent()))
    return verifyVectorSize(headDim, "head_dim", emitError);
  if (failed(verifyRankFits(*this, headDim, "head_dim", emitError)))
    return failure();
  if ((getRank() / getGroup()) % 8 == 0)
    return success();
  return emitError() << "#kv.int packs a key's codes 8 coordinates at a "
                        "time, but "
                     << latentSizeName(*this) << " " << getRank() / getGroup()
                     << " is not a multiple of 8";
}

//===----------------------------------------------------------------------===//
// Policies
//===----------------------------------------------------------------------===//

LogicalResult
mlir::kv::verifyBudget(Attribute budget, StringRef policy,
                       function_ref<InFlightDiagnostic()> emitError) {
  if (auto f = llvm::dyn_cast<FloatAttr>(budget)) {
    double v = f.getValueAsDouble();
    if (!(v > 0.0 && v <= 1.0))
      return emitError() << policy << " budget fraction must be in (0, 1], got "
                         << formatDouble(v);
    return success();
  }
  // `true` and `false` are i1 integers, but no token count.
  if (auto i = llvm::dyn_cast<IntegerAttr>(budget);
      i && !i.getType().isInteger(1)) {
    bool isSigned = !i.getType().isUnsignedInteger();
    const llvm::APInt &count = i.getValue();
    if (count.isZero() || (isSigned && count.isNegative()))
      return emitError() << policy
                         << " budget token count must be positive, got "
                         << llvm::toString(count, 10, isSigned);
    return success();
  }
  return emitError() << policy
                     << " budget must be a fraction in (0, 1] or a positive "
                        "token count, got "
                     << budget;
}

/// The settings every eviction policy shares: `policy` is its name in
/// diagnostics (`#kv.h2o`).
static LogicalResult
verifyEviction(function_ref<InFlightDiagnostic()> emitError, StringRef policy,
               Attribute budget, unsigned window, unsigned interval,
               unsigned sinks) {
  if (failed(verifyBudget(budget, policy, emitError)))
    return failure();
  if (interval == 0)
    return emitError() << policy
                       << " interval must be at least 1 decode step, got 0";
  // A token count must leave room beyond what is always kept; a fraction
  // depends on the sequence and is the runtime's to clip.
  if (auto count = llvm::dyn_cast<IntegerAttr>(budget)) {
    uint64_t kept = uint64_t(sinks) + window;
    if (count.getValue().ule(kept))
      return emitError() << policy << " always keeps sinks + window = " << sinks
                         << " + " << window << " = " << kept
                         << " entries, which reaches the budget of "
                         << count.getValue().getLimitedValue()
                         << " tokens and leaves no room for scored entries";
  }
  return success();
}

LogicalResult
TriAttentionAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         Attribute budget, unsigned window, unsigned interval,
                         unsigned sinks, EvictHeads, unsigned horizon,
                         EvictCombine) {
  if (failed(verifyEviction(emitError, "#kv.triattention", budget, window,
                            interval, sinks)))
    return failure();
  if (!llvm::isPowerOf2_32(horizon))
    return emitError() << "#kv.triattention horizon must be a power of two "
                          "(the last of the future distances 1, 2, 4, ...), "
                          "got "
                       << horizon;
  return success();
}

LogicalResult SnapKVAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 Attribute budget, unsigned window,
                                 unsigned interval, unsigned sinks,
                                 unsigned observe, unsigned kernel,
                                 EvictHeads) {
  if (failed(verifyEviction(emitError, "#kv.snapkv", budget, window, interval,
                            sinks)))
    return failure();
  if (observe == 0)
    return emitError() << "#kv.snapkv observe must be at least 1 query, got 0";
  if (kernel == 0 || kernel % 2 == 0)
    return emitError() << "#kv.snapkv pooling kernel must be odd and "
                          "positive, got "
                       << kernel;
  return success();
}

LogicalResult H2OAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                              Attribute budget, unsigned window,
                              unsigned interval, unsigned sinks, EvictHeads) {
  return verifyEviction(emitError, "#kv.h2o", budget, window, interval, sinks);
}

LogicalResult
StreamingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      Attribute budget, unsigned window, unsigned interval,
                      unsigned sinks) {
  return verifyEviction(emitError, "#kv.streaming", budget, window, interval,
                        sinks);
}

LogicalResult TwoLevelAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   unsigned block, unsigned topBlocks,
                                   unsigned topTokens) {
  if (block == 0 || !llvm::isPowerOf2_32(block))
    return emitError() << "#kv.twolevel block must be a positive power of two, "
                          "got "
                       << block;
  if (topBlocks == 0 || topTokens == 0)
    return emitError() << "#kv.twolevel top_blocks and top_tokens must be "
                          "positive";
  if (static_cast<uint64_t>(topTokens) >
      static_cast<uint64_t>(topBlocks) * block)
    return emitError() << "#kv.twolevel top_tokens (" << topTokens
                       << ") exceeds the tokens in top_blocks x block ("
                       << static_cast<uint64_t>(topBlocks) * block << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// RoPE scaling
//===----------------------------------------------------------------------===//

/// Scaling parameters must be finite numbers: inf and NaN reach the
/// frequency formulas unchecked otherwise.
static bool isFinitePositive(double value) {
  return std::isfinite(value) && value > 0;
}

LogicalResult
RopeLinearAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                       llvm::APFloat factorValue) {
  double factor = factorValue.convertToDouble();
  if (!isFinitePositive(factor))
    return emitError() << "#kv.rope_linear factor must be finite and "
                          "positive, got "
                       << formatDouble(factor);
  return success();
}

LogicalResult
RopeLlama3Attr::verify(function_ref<InFlightDiagnostic()> emitError,
                       llvm::APFloat factorValue, llvm::APFloat lowFreqValue,
                       llvm::APFloat highFreqValue,
                       int64_t originalMaxPosition) {
  double factor = factorValue.convertToDouble();
  double lowFreqFactor = lowFreqValue.convertToDouble();
  double highFreqFactor = highFreqValue.convertToDouble();
  if (!isFinitePositive(factor))
    return emitError() << "#kv.rope_llama3 factor must be finite and "
                          "positive, got "
                       << formatDouble(factor);
  if (!isFinitePositive(lowFreqFactor) || !std::isfinite(highFreqFactor) ||
      !(highFreqFactor > lowFreqFactor))
    return emitError() << "#kv.rope_llama3 needs finite 0 < low_freq_factor "
                          "< high_freq_factor, got "
                       << formatDouble(lowFreqFactor) << " and "
                       << formatDouble(highFreqFactor);
  if (originalMaxPosition <= 0)
    return emitError() << "#kv.rope_llama3 original_max_position must be "
                          "positive, got "
                       << originalMaxPosition;
  return success();
}

LogicalResult RopeYarnAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   llvm::APFloat factorValue,
                                   int64_t originalMaxPosition,
                                   llvm::APFloat betaFastValue,
                                   llvm::APFloat betaSlowValue,
                                   llvm::APFloat attentionFactorValue) {
  double factor = factorValue.convertToDouble();
  double betaFast = betaFastValue.convertToDouble();
  double betaSlow = betaSlowValue.convertToDouble();
  double attentionFactor = attentionFactorValue.convertToDouble();
  if (!isFinitePositive(factor))
    return emitError() << "#kv.rope_yarn factor must be finite and positive, "
                          "got "
                       << formatDouble(factor);
  if (originalMaxPosition <= 0)
    return emitError() << "#kv.rope_yarn original_max_position must be "
                          "positive, got "
                       << originalMaxPosition;
  // The betas count rotations; YaRN divides by them.
  if (!isFinitePositive(betaSlow) || !std::isfinite(betaFast) ||
      !(betaFast > betaSlow))
    return emitError() << "#kv.rope_yarn needs finite beta_fast > beta_slow "
                          "> 0, got "
                       << formatDouble(betaFast) << " and "
                       << formatDouble(betaSlow);
  if (!std::isfinite(attentionFactor) || attentionFactor < 0)
    return emitError() << "#kv.rope_yarn attention_factor must be finite and "
                          "positive (or 0 to derive it from the factor), got "
                       << formatDouble(attentionFactor);
  return success();
}

//===----------------------------------------------------------------------===//
// Calibration
//===----------------------------------------------------------------------===//

LogicalResult
CalibrationAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        StringRef source, uint64_t, int64_t tokens,
                        int64_t window) {
  // The artifact's manifest (protobuf) holds the name as a UTF-8 string.
  if (source.empty() || !llvm::json::isUTF8(source))
    return emitError() << "#kv.calibration source must be a non-empty UTF-8 "
                          "file name";
  if (window <= 0 || tokens < window)
    return emitError() << "#kv.calibration needs a positive window and at "
                          "least one window of tokens, got "
                       << tokens << " tokens in windows of " << window;
  return success();
}
