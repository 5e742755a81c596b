//===- KVAttrs.td - Encodings, policies and RoPE of the kv dialect -*- tablegen -*-===//
#ifndef KV_ATTRS_TD
#define KV_ATTRS_TD

include "dialects/kv/IR/KVBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

// A double (held as an APFloat, which hashes) printed in its shortest exact
// form (`8.0`, `1.1386`).
class KV_DoubleParameter<string desc = ""> : APFloatParameter<desc> {
  let parser = "::mlir::kv::parseDouble($_parser)";
  let printer = "::mlir::kv::printDouble($_printer, $_self)";
}
class KV_DefaultDoubleParameter<string value> : KV_DoubleParameter {
  let defaultValue = "::llvm::APFloat(" # value # ")";
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def KV_RopeStyle : I32Enum<"RopeStyle", "how RoPE pairs coordinates", [
    I32EnumCase<"Half", 0, "half">,
    I32EnumCase<"Interleaved", 1, "interleaved">]> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    `half`: coordinate i pairs with i + d/2 (Hugging Face `rotate_half`,
    GPT-NeoX). `interleaved`: coordinate 2i pairs with 2i + 1 (GPT-J, the
    original Llama and GGUF's llama layout).
  }];
}
def KV_RopeStyleAttr : EnumAttr<KV_Dialect, KV_RopeStyle, "rope_style">;

def KV_Fp8Format : I32Enum<"Fp8Format", "an 8-bit float format", [
    I32EnumCase<"E4M3", 0, "e4m3">,
    I32EnumCase<"E5M2", 1, "e5m2">]> {
  let cppNamespace = "::mlir::kv";
}

def KV_ScaleMode : I32Enum<"ScaleMode", "where a quantization scale comes from", [
    I32EnumCase<"PerHead", 0, "per_head">,
    I32EnumCase<"Dynamic", 1, "dynamic">]> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    `per_head`: one scale per layer, KV head and K/V, from calibration.
    `dynamic`: one scale per stored vector, computed on append.
  }];
}

def KV_LowRankBasis : I32Enum<"LowRankBasis", "which calibrated axes a low-rank latent is taken on", [
    I32EnumCase<"SecondMoment", 0, "second_moment">,
    I32EnumCase<"Attention", 1, "attention">,
    I32EnumCase<"Svd", 2, "svd">,
    I32EnumCase<"Lrkv", 3, "lrkv">]> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    `second_moment`: the values' `kv.value_axes` (keys: `kv.key_axes`).
    `attention`: the values' `kv.value_attention_axes`, of their second
    moment weighted by the attention each token gets; values only.
    `svd`: Palu's whitened SVD of the projection that writes the side,
    whose right singular vectors are the eigenvectors of the uncentred
    second moment of what it writes (docs/lowrank.md proves it): the
    values' `kv.value_axes`, the keys' `kv.key_moment_axes` (before RoPE,
    unweighted).
    `lrkv`: an LRKV-style retrofit (kv-lowrank{method=lrkv}): per head a
    basis shared by the layer's KV heads plus a residual of the head's own,
    which the pass fits and puts on the cache as `kv.key_group_axes` or
    `kv.value_group_axes`, in groups of one head; group 1 only.
  }];
}

def KV_Rotation : I32Enum<"Rotation", "a random orthogonal rotation", [
    I32EnumCase<"Hadamard", 0, "hadamard">]> {
  let cppNamespace = "::mlir::kv";
}

def KV_EvictHeads : I32Enum<"EvictHeads", "whose entries an eviction keeps", [
    I32EnumCase<"Each", 0, "each">,
    I32EnumCase<"Shared", 1, "shared">]> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    `each`: one selection per KV head, on its own scores; every head keeps
    as many entries. `shared`: one selection for all KV heads of the layer,
    on the mean of their scores.
  }];
}

def KV_EvictCombine : I32Enum<"EvictCombine",
    "how TriAttention combines the scores of a KV group's query heads", [
    I32EnumCase<"Mean", 0, "mean">,
    I32EnumCase<"ZMax", 1, "zmax">]> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    `mean`: the mean over the group's query heads. `zmax`: each query
    head's scores standardised over the keys scored, then the maximum (the
    reference runtime's default).
  }];
}

def KV_PrefetchMode : I32Enum<"PrefetchMode", "what a prefetch predicts", [
    I32EnumCase<"NextLayer", 0, "next_layer">,
    I32EnumCase<"NextStep", 1, "next_step">]> {
  let cppNamespace = "::mlir::kv";
}
def KV_PrefetchModeAttr : EnumAttr<KV_Dialect, KV_PrefetchMode, "prefetch_mode">;

//===----------------------------------------------------------------------===//
// Cache encodings
//===----------------------------------------------------------------------===//

def KV_EncodingAttrInterface : AttrInterface<"EncodingAttrInterface"> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    How one key or value vector of a KV head is stored in the cache.
  }];
  let methods = [
    InterfaceMethod<[{
        Bits per coordinate for vectors of `headDim` coordinates, counting
        every byte of metadata (scales, zeros, norms) amortised over the
        coordinates it serves.
      }], "double", "getBitsPerCoordinate", (ins "int64_t":$headDim)>,
    InterfaceMethod<[{
        Checks that the encoding can store vectors of `size` coordinates.
        Diagnostics call that size `sizeName`: `head_dim` in a cache, the
        rank when the encoding stores a `#kv.lowrank` latent.
      }], "::llvm::LogicalResult", "verifyVectorSize",
      (ins "int64_t":$size, "::llvm::StringRef":$sizeName,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>
  ];
}

class KV_EncodingAttr<string name, string mnemonic>
    : KV_Attr<name, mnemonic, [DeclareAttrInterfaceMethods<KV_EncodingAttrInterface>]>;

def KV_Bf16EncodingAttr : KV_EncodingAttr<"Bf16Encoding", "bf16"> {
  let summary = "Uncompressed bfloat16 cache entries";
  let description = [{
    The reference encoding: 16 bits per coordinate, no metadata.

    Example: `#kv.bf16`
  }];
}

def KV_F32EncodingAttr : KV_EncodingAttr<"F32Encoding", "f32"> {
  let summary = "Uncompressed float32 cache entries";
  let description = [{
    32 bits per coordinate, exactly what the model computed: the reference
    that every other encoding is measured against, and the float32 path of
    the peer comparisons.

    Example: `#kv.f32`
  }];
}

def KV_Fp8EncodingAttr : KV_EncodingAttr<"Fp8Encoding", "fp8"> {
  let summary = "8-bit floating-point cache entries with a scale";
  let description = [{
    Each coordinate is an FP8 value (e4m3 by default) multiplied by a scale:
    one per layer, KV head and K/V from calibration (`per_head`), or one fp32
    scale per stored vector computed on append (`dynamic`). `sinks` and
    `window` keep each sequence's first and most recent tokens exact (bf16),
    as `#kv.polar` can.

    Example: `#kv.fp8<e4m3, scale = per_head, window = 64>`
  }];
  let parameters = (ins EnumParameter<KV_Fp8Format>:$format,
                        DefaultValuedParameter<"ScaleMode", "ScaleMode::PerHead">:$scale,
                        DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"unsigned", "0">:$window);
  let assemblyFormat = "`<` $format (`,` `scale` `=` $scale^)? (`,` `sinks` `=` $sinks^)? (`,` `window` `=` $window^)? `>`";
  let genVerifyDecl = 1;
}

def KV_Nvfp4EncodingAttr : KV_EncodingAttr<"Nvfp4Encoding", "nvfp4"> {
  let summary = "NVFP4: E2M1 values, an E4M3 scale per 16, an fp32 scale per tensor";
  let description = [{
    NVIDIA's 4-bit format: each coordinate is an E2M1 value, each block of 16
    coordinates has an E4M3 scale, and the tensor has one fp32 scale. Native
    on Blackwell, decoded in registers on Hopper. Needs a head dimension that
    is a multiple of 16. `sinks` and `window` keep each sequence's first and
    most recent tokens exact (bf16), as `#kv.polar` can.

    Example: `#kv.nvfp4`, `#kv.nvfp4<window = 128>`
  }];
  let parameters = (ins DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"unsigned", "0">:$window);
  let assemblyFormat = "(`<` struct(params)^ `>`)?";
  let genVerifyDecl = 1;
}

def KV_IntEncodingAttr : KV_EncodingAttr<"IntEncoding", "int"> {
  let summary = "KIVI: asymmetric integer quantization, keys per channel, values per token";
  let description = [{
    Keys are quantized per channel over groups of `group` tokens; values per
    token over groups of `group` channels (so `group` must divide the head
    dimension). Each group stores an fp16 scale and zero. The `residual` most
    recent tokens stay in bf16 until a whole key group can be quantized.

    Example: `#kv.int<bits = 2, group = 32, residual = 128>`
  }];
  let parameters = (ins "unsigned":$bits, "unsigned":$group,
                        DefaultValuedParameter<"unsigned", "128">:$residual);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KV_PolarEncodingAttr : KV_EncodingAttr<"PolarEncoding", "polar"> {
  let summary = "Random rotation plus a Lloyd-Max codebook (PolarQuant / TurboQuant)";
  let description = [{
    Each vector is rotated by a seeded randomized Hadamard transform, its
    norm stored as fp16, and every coordinate of the rotated unit vector
    quantized with the Lloyd-Max codebook of `bits` bits for the coordinate
    distribution of a random unit vector. Attention runs in the rotated
    domain. `qjl = true` adds TurboQuant's 1-bit QJL residual for keys.
    Each sequence's first `sinks` tokens and its `window` most recent ones
    can be kept exact (bf16) and attended instead of their codes, as
    `#kv.lowrank` does: most of the attention goes to them (docs/
    kv-encodings.md measures it). Needs a power-of-two head dimension.

    Example: `#kv.polar<bits = 3, seed = 7, window = 64>`
  }];
  let parameters = (ins "unsigned":$bits,
                        DefaultValuedParameter<"Rotation", "Rotation::Hadamard">:$rotation,
                        DefaultValuedParameter<"uint64_t", "0">:$seed,
                        DefaultValuedParameter<"bool", "false">:$qjl,
                        DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"unsigned", "0">:$window);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KV_LowRankEncodingAttr : KV_EncodingAttr<"LowRankEncoding", "lowrank"> {
  let summary = "A low-rank latent of each vector, itself stored in an inner encoding";
  let description = [{
    The cache stores the projection of each vector on a calibrated basis of
    `rank` directions; the latent is stored with the `latent` encoding.
    Each sequence's first `sinks` tokens and its `window` most recent ones
    are also kept exact (bf16) and attended instead of their latents: the
    attention sink and the recent tokens take most of the attention, and a
    rank cut hurts them most (docs/lowrank.md measures it). `basis` says
    which calibrated axes the exporter takes: `second_moment` (the default),
    for values `attention`, `svd` (kv-lowrank{method=svd}) or `lrkv`
    (kv-lowrank{method=lrkv}, the pass's fitted axes; group 1 only).
    `group` (1 by default) KV heads share one latent: `rank` is then the
    size of the group's latent, over the G head_dim coordinates of its
    heads concatenated, on the axes of their joint second moment; it must
    be a multiple of G, and each head's share of the page holds rank / G
    of it (so the latent's encoding sees vectors of rank / G).
    `folded` (values only, group 1): kv-lowrank{fold=true} rewrote v_proj
    to write each head's values on the basis' axes, Q^T v, and o_proj to
    take attention's output on them, so the latent is the first `rank`
    coordinates of what arrives and attention's sum of latents is already
    what o_proj reads: nothing projects on append or maps back, and the
    artifact carries no basis.
    `centred` (keys only): the latent is taken around the keys' calibrated
    mean before RoPE (kv.key_mean), z = U^T S (k - mu), and the key rebuilt
    as S^-1 U z + mu. The keys' mean is most of their length (docs/
    lowrank.md), so an uncentred latent spends its range, and a quantized
    latent its codes, on a constant.

    Example: `#kv.lowrank<rank = 32, latent = #kv.bf16, sinks = 4, window = 64, basis = attention>`,
    `#kv.lowrank<rank = 96, basis = svd, group = 3>`,
    `#kv.lowrank<rank = 32, sinks = 4, window = 64, basis = attention, folded = true>`,
    `#kv.lowrank<rank = 32, sinks = 4, window = 64, centred = true>`
  }];
  let parameters = (ins "unsigned":$rank,
                        DefaultValuedParameter<"::mlir::Attribute",
                          "Bf16EncodingAttr::get($_ctxt)">:$latent,
                        DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"unsigned", "0">:$window,
                        DefaultValuedParameter<"LowRankBasis",
                          "LowRankBasis::SecondMoment">:$basis,
                        DefaultValuedParameter<"unsigned", "1">:$group,
                        DefaultValuedParameter<"bool", "false">:$folded,
                        DefaultValuedParameter<"bool", "false">:$centred);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// verifyVectorSize() for the keys of a cache: a KIVI latent groups
    /// keys along tokens, so only whole bytes of codes per vector bound
    /// its size.
    ::llvm::LogicalResult verifyKeySize(int64_t headDim,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError) const;
  }];
}

//===----------------------------------------------------------------------===//
// Calibration
//===----------------------------------------------------------------------===//

def KV_CalibrationAttr : KV_Attr<"Calibration", "calibration"> {
  let summary = "Where a module's calibration statistics came from";
  let description = [{
    Set as `kv.calibration` on the module by `kvopt calibrate` and `kvopt
    compile --calibrate`: the calibration text (its file name and the XXH64,
    seed 0, of its bytes), the tokens the model ran on, and the tokens of
    each window (a sequence of its own, the model's BOS first when it has
    one). The statistics sit on the ops they describe, e.g. `kv.key_absmax`
    and `kv.value_absmax` on each `kv.cache`.

    Example:
    `#kv.calibration<source = "calib.txt", xxh64 = 81985529216486895, tokens = 4096, window = 512>`
  }];
  let parameters = (ins StringRefParameter<"the text's file name">:$source,
                        "uint64_t":$xxh64, "int64_t":$tokens,
                        "int64_t":$window);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// Eviction and selection policies
//===----------------------------------------------------------------------===//

// Every eviction policy has the same four settings (budget, window,
// interval, sinks); SnapKV adds its observation window and pooling kernel.
def KV_EvictionPolicyAttrInterface : AttrInterface<"EvictionPolicyAttrInterface"> {
  let cppNamespace = "::mlir::kv";
  let description = [{
    An eviction policy: how `kv.score` ranks a layer's cached entries and
    how many of them `kv.evict` keeps. The first `sinks` and the last
    `window` entries are always kept; the others compete for the rest of
    the `budget`. A sequence is compacted after a prefill and whenever its
    cache holds `budget + interval` entries or more.
  }];
  let methods = [
    InterfaceMethod<[{
        Entries kept per sequence: an IntegerAttr token count (at least 1)
        or a FloatAttr fraction in (0, 1] of the tokens the sequence has seen.
      }], "::mlir::Attribute", "getBudget">,
    InterfaceMethod<"The most recent entries, always kept.", "unsigned",
                    "getWindow">,
    InterfaceMethod<"Decode steps between compactions (at least 1).",
                    "unsigned", "getInterval">,
    InterfaceMethod<"The first entries (attention sinks), always kept.",
                    "unsigned", "getSinks">,
    InterfaceMethod<"The method's name: the attribute's mnemonic.",
                    "::llvm::StringRef", "getMethod", (ins), [{}],
                    [{ return ConcreteAttr::getMnemonic(); }]>
  ];
}

class KV_EvictionPolicyAttr<string name, string mnemonic>
    : KV_Attr<name, mnemonic, [KV_EvictionPolicyAttrInterface]> {
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KV_TriAttentionAttr : KV_EvictionPolicyAttr<"TriAttention", "triattention"> {
  let summary = "TriAttention eviction: trigonometric scores from pre-RoPE query centres";
  let description = [{
    Keeps `budget` entries (a positive token count, or a fraction in (0, 1]
    of the tokens the sequence has seen): the first `sinks`, the `window`
    most recent, and the best of the others by the TriAttention score, the
    expected attention logit of future queries computed in closed form from
    the cached (post-RoPE) keys. Compacts after a prefill and every
    `interval` decode steps beyond the budget.

    The score needs the calibrated pre-RoPE query centres and magnitudes of
    the layer, which are not parameters of this attribute: they sit on the
    layer's `kv.cache` op as `kv.query_center` and `kv.query_magnitude`
    (`kvopt compile --calibrate FILE`, docs/calibration.md).

    `heads` (`EvictHeads`): all KV heads keep the same entries (`shared`,
    the default: on this project's model it keeps more passkeys, see
    docs/eviction.md) or each keeps its own (`each`).

    `horizon`: the score averages the logits of future queries at
    distances 1, 2, 4, ..., `horizon` (a power of two) from the current
    position; the default, `kDefaultHorizon` (65536), is the reference
    code's.

    `combine` (`EvictCombine`): how the scores of a KV head's query heads
    combine, their mean (the default) or the maximum of each head's scores
    standardised (`zmax`).

    Example: `#kv.triattention<budget = 2048, window = 128, interval = 128, sinks = 0, heads = each, horizon = 4096, combine = zmax>`
  }];
  let parameters = (ins "::mlir::Attribute":$budget,
                        DefaultValuedParameter<"unsigned", "128">:$window,
                        DefaultValuedParameter<"unsigned", "128">:$interval,
                        DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"EvictHeads", "EvictHeads::Shared">:$heads,
                        DefaultValuedParameter<"unsigned", "kDefaultHorizon">:$horizon,
                        DefaultValuedParameter<"EvictCombine", "EvictCombine::Mean">:$combine);
}

def KV_SnapKVAttr : KV_EvictionPolicyAttr<"SnapKV", "snapkv"> {
  let summary = "SnapKV eviction: attention of an observation window, pooled";
  let description = [{
    Scores entries by the attention the last `observe` queries of the layer
    pay them, max-pooled over `kernel` (odd) neighbouring entries, and keeps
    `budget` entries: the first `sinks`, the `window` most recent and the
    best-scored others, compacting like `#kv.triattention`, per KV head or
    shared by `heads` likewise.

    Example: `#kv.snapkv<budget = 0.25, window = 128, interval = 128, sinks = 0, observe = 32, kernel = 7, heads = shared>`
  }];
  let parameters = (ins "::mlir::Attribute":$budget,
                        DefaultValuedParameter<"unsigned", "128">:$window,
                        DefaultValuedParameter<"unsigned", "128">:$interval,
                        DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"unsigned", "32">:$observe,
                        DefaultValuedParameter<"unsigned", "7">:$kernel,
                        DefaultValuedParameter<"EvictHeads", "EvictHeads::Shared">:$heads);
}

def KV_H2OAttr : KV_EvictionPolicyAttr<"H2O", "h2o"> {
  let summary = "H2O eviction: accumulated attention (heavy hitters) plus recent tokens";
  let description = [{
    Scores entries by the attention weight every query so far paid them
    (the heavy hitters) and keeps `budget` entries: the first `sinks`, the
    `window` most recent and the best-scored others, compacting like
    `#kv.triattention`, per KV head or shared by `heads` likewise.

    Example: `#kv.h2o<budget = 1024, window = 128, interval = 128, sinks = 0, heads = shared>`
  }];
  let parameters = (ins "::mlir::Attribute":$budget,
                        DefaultValuedParameter<"unsigned", "128">:$window,
                        DefaultValuedParameter<"unsigned", "128">:$interval,
                        DefaultValuedParameter<"unsigned", "0">:$sinks,
                        DefaultValuedParameter<"EvictHeads", "EvictHeads::Shared">:$heads);
}

def KV_StreamingAttr : KV_EvictionPolicyAttr<"Streaming", "streaming"> {
  let summary = "StreamingLLM eviction: attention sinks plus a recent window";
  let description = [{
    Keeps the first `sinks` entries and the most recent others up to
    `budget` entries, so `window` (0 by default) changes nothing but the
    verifier's room check. Compacts like `#kv.triattention`; every KV head
    keeps the same entries, so it has no `heads`.

    Example: `#kv.streaming<budget = 1024, window = 0, interval = 128, sinks = 4>`
  }];
  let parameters = (ins "::mlir::Attribute":$budget,
                        DefaultValuedParameter<"unsigned", "0">:$window,
                        DefaultValuedParameter<"unsigned", "128">:$interval,
                        DefaultValuedParameter<"unsigned", "4">:$sinks);
}

def KV_TwoLevelAttr : KV_Attr<"TwoLevel", "twolevel"> {
  let summary = "Two-level sparse selection: top blocks by a key bound, then top tokens";
  let description = [{
    Blocks of `block` tokens are scored by an upper bound of q.k from their
    per-channel key minima and maxima; the `top_blocks` best are scored
    exactly and the `top_tokens` best tokens attended to.

    Example: `#kv.twolevel<block = 64, top_blocks = 128, top_tokens = 2048>`
  }];
  let parameters = (ins "unsigned":$block, "unsigned":$top_blocks,
                        "unsigned":$top_tokens);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// RoPE scaling
//===----------------------------------------------------------------------===//

def KV_RopeLinearAttr : KV_Attr<"RopeLinear", "rope_linear"> {
  let summary = "Linear RoPE scaling (position interpolation)";
  let description = [{
    Positions are divided by `factor`. Example: `#kv.rope_linear<factor = 4.0>`
  }];
  let parameters = (ins KV_DoubleParameter<>:$factor);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KV_RopeLlama3Attr : KV_Attr<"RopeLlama3", "rope_llama3"> {
  let summary = "Llama 3.1 RoPE scaling of low frequencies";
  let description = [{
    Wavelengths longer than `original_max_position / low_freq_factor` are
    divided by `factor`, shorter than `original_max_position /
    high_freq_factor` kept, and those between interpolated smoothly.

    Example: `#kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0,
    high_freq_factor = 4.0, original_max_position = 8192>`
  }];
  let parameters = (ins KV_DoubleParameter<>:$factor, KV_DoubleParameter<>:$low_freq_factor,
                        KV_DoubleParameter<>:$high_freq_factor,
                        "int64_t":$original_max_position);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def KV_RopeYarnAttr : KV_Attr<"RopeYarn", "rope_yarn"> {
  let summary = "YaRN RoPE scaling: ramped interpolation and an attention factor";
  let description = [{
    Example: `#kv.rope_yarn<factor = 4.0, original_max_position = 32768,
    beta_fast = 32.0, beta_slow = 1.0, attention_factor = 1.1386>`
  }];
  let parameters = (ins KV_DoubleParameter<>:$factor, "int64_t":$original_max_position,
                        KV_DefaultDoubleParameter<"32.0">:$beta_fast,
                        KV_DefaultDoubleParameter<"1.0">:$beta_slow,
                        KV_DefaultDoubleParameter<"0.0">:$attention_factor);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // KV_ATTRS_TD
