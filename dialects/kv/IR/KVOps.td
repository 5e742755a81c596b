//===- KVOps.td - Operations of the kv dialect -------------*- tablegen -*-===//
#ifndef KV_OPS_TD
#define KV_OPS_TD

include "dialects/kv/IR/KVBase.td"
include "dialects/kv/IR/KVAttrs.td"
include "dialects/kv/IR/KVTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def KV_CacheResource : Resource<"::mlir::kv::CacheResource">;

// Printed in full (`!kv.cache<...>`) in op signatures, which read better
// than the stripped `<...>` a TypeDef constraint would give.
def KV_Cache : Type<CPred<"::llvm::isa<::mlir::kv::CacheType>($_self)">,
                    "KV cache">;

// Every kv tensor has a known rank: verifiers read its dimensions.
def KV_FloatTensor : RankedTensorOf<[AnyFloat]>;
def KV_Matrix : 2DTensorOf<[AnyFloat]>;
def KV_HeadsTensor : 3DTensorOf<[AnyFloat]>;
def KV_TokenIds : 1DTensorOf<[AnySignlessInteger]>;
def KV_Positions : 1DTensorOf<[AnySignlessInteger]>;

def KV_EvictionPolicy : AnyAttrOf<[KV_TriAttentionAttr, KV_SnapKVAttr,
                                   KV_H2OAttr, KV_StreamingAttr]>;
def KV_RopeScaling : AnyAttrOf<[KV_RopeLinearAttr, KV_RopeLlama3Attr,
                                KV_RopeYarnAttr]>;

//===----------------------------------------------------------------------===//
// Model-level operations
//===----------------------------------------------------------------------===//

def KV_EmbeddingOp : KV_Op<"embedding", [Pure]> {
  let summary = "Looks up token embeddings";
  let description = [{
    Row `tokens[i]` of `table` (vocabulary x hidden) becomes row i of the
    result, converted to the result's element type (bf16 tables feed f32
    activations). Token ids out of range are an error at run time.

    Example:
    ```mlir
    %x = kv.embedding %table[%tokens] : tensor<2048x128xf32>, tensor<?xi32> -> tensor<?x128xf32>
    ```
  }];
  let arguments = (ins KV_Matrix:$table, KV_TokenIds:$tokens);
  let results = (outs KV_Matrix:$result);
  let assemblyFormat = [{
    $table `[` $tokens `]` attr-dict `:` type($table) `,` type($tokens) `->` type($result)
  }];
  let hasVerifier = 1;
}

def KV_RMSNormOp : KV_Op<"rms_norm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "RMSNorm over the last dimension";
  let description = [{
    `x / sqrt(mean(x^2) + epsilon) * weight` over the last dimension. Applied
    to a tensor of heads (tokens x heads x head_dim) it normalises each head,
    as Qwen3's q/k norms do.

    Example:
    ```mlir
    %y = kv.rms_norm %x, %w epsilon = 1.0e-06 : tensor<?x128xf32>, tensor<128xf32>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$input, 1DTensorOf<[AnyFloat]>:$weight,
                       F64Attr:$epsilon);
  let results = (outs KV_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `epsilon` `=` $epsilon attr-dict `:` type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def KV_LinearOp : KV_Op<"linear", [Pure]> {
  let summary = "A dense projection y = x W^T (+ b)";
  let description = [{
    `weight` is laid out (out features x in features), as Hugging Face and
    GGUF store it; `bias`, when present, has `out features` entries.

    Example:
    ```mlir
    %q = kv.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
    %k = kv.linear %x, %wk bias %bk : tensor<?x896xf32>, tensor<128x896xf32>, tensor<128xf32> -> tensor<?x128xf32>
    ```
  }];
  let arguments = (ins KV_Matrix:$input, KV_Matrix:$weight,
                       Optional<1DTensorOf<[AnyFloat]>>:$bias);
  let results = (outs KV_Matrix:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type($input) `,` type($weight)
    (`,` type($bias)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def KV_RopeOp : KV_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Rotary position embedding of each head";
  let description = [{
    Rotates each pair of coordinates of each head of `input` (tokens x heads
    x head_dim) by `position * theta^(-2i/head_dim)`, with the frequencies
    adjusted by `scaling` when present. `style` says which coordinates pair.

    Example:
    ```mlir
    %q1 = kv.rope %q, %pos theta = 1.000000e+04 style = half : tensor<?x8x16xf32>, tensor<?xi32>
    %k1 = kv.rope %k, %pos theta = 5.000000e+05 style = half
            scaling(#kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0,
                                high_freq_factor = 4.0, original_max_position = 8192>)
            : tensor<?x8x128xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins KV_HeadsTensor:$input, KV_Positions:$positions,
                       F64Attr:$theta, KV_RopeStyleAttr:$style,
                       OptionalAttr<KV_RopeScaling>:$scaling);
  let results = (outs KV_HeadsTensor:$result);
  let assemblyFormat = [{
    $input `,` $positions `theta` `=` $theta `style` `=` custom<EnumKeyword>($style)
    (`scaling` `(` $scaling^ `)`)? attr-dict `:` type($input) `,` type($positions)
  }];
  let hasVerifier = 1;
}

def KV_SwiGLUOp : KV_Op<"swiglu", [Pure, AllTypesMatch<["gate", "up", "result"]>]> {
  let summary = "silu(gate) * up";
  let description = [{
    The gated activation of Llama-family MLPs.

    Example:
    ```mlir
    %h = kv.swiglu %gate, %up : tensor<?x384xf32>
    ```
  }];
  let arguments = (ins KV_FloatTensor:$gate, KV_FloatTensor:$up);
  let results = (outs KV_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def KV_LMHeadOp : KV_Op<"lm_head", [Pure]> {
  let summary = "The projection of the final hidden states to vocabulary logits";
  let description = [{
    Computes `x W^T` like `kv.linear`, but marks the model's output: the
    runtime computes it only for the positions whose logits are asked for.
    With tied embeddings `weight` is the embedding table itself.

    Example:
    ```mlir
    %logits = kv.lm_head %h, %table : tensor<?x128xf32>, tensor<2048x128xf32> -> tensor<?x2048xf32>
    ```
  }];
  let arguments = (ins KV_Matrix:$input, KV_Matrix:$weight);
  let results = (outs KV_Matrix:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// The cache and attention
//===----------------------------------------------------------------------===//

def KV_CacheOp : KV_Op<"cache", [Pure]> {
  let summary = "The KV cache of one layer";
  let description = [{
    A handle to the cache the runtime keeps for layer `layer` across calls.

    Example:
    ```mlir
    %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
    ```
  }];
  let arguments = (ins I64Attr:$layer);
  let results = (outs KV_Cache:$result);
  let assemblyFormat = "`layer` $layer attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def KV_AppendOp : KV_Op<"append", [AllTypesMatch<["cache", "result"]>,
    MemoryEffects<[MemRead<KV_CacheResource>, MemWrite<KV_CacheResource>]>]> {
  let summary = "Appends keys and values at their positions, encoding them";
  let description = [{
    Stores `keys` and `values` (tokens x KV heads x head_dim, keys after RoPE)
    for the given `positions`, encoded as the cache type says. The result is
    the cache after the append, which orders later reads.

    Example:
    ```mlir
    %c1 = kv.append %k, %v at %pos into %c
        : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
    ```
  }];
  let arguments = (ins KV_HeadsTensor:$keys, KV_HeadsTensor:$values,
                       KV_Positions:$positions, KV_Cache:$cache);
  let results = (outs KV_Cache:$result);
  let assemblyFormat = [{
    $keys `,` $values `at` $positions `into` $cache attr-dict `:` type($keys) `,`
    type($values) `,` type($positions) `into` type($cache)
  }];
  let hasVerifier = 1;
}

def KV_AttentionOp : KV_Op<"attention", [
    MemoryEffects<[MemRead<KV_CacheResource>]>]> {
  let summary = "Causal attention of queries over a layer's cache";
  let description = [{
    Each query (tokens x query heads x head_dim, after RoPE) attends to the
    cached entries of its sequence at positions up to its own (and within
    `sliding_window` of it when set), with logits scaled by `scale`. Query
    head h reads KV head h / (query heads / KV heads) (grouped-query
    attention). With `selected`, only the listed cache entries are read.

    Example:
    ```mlir
    %o = kv.attention %q, %c1 at %pos scale = 2.500000e-01
        : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
    ```
  }];
  let arguments = (ins KV_HeadsTensor:$queries, KV_Cache:$cache,
                       KV_Positions:$positions, F64Attr:$scale,
                       OptionalAttr<I64Attr>:$sliding_window,
                       Optional<3DTensorOf<[AnySignlessInteger]>>:$selection);
  let results = (outs KV_HeadsTensor:$result);
  let assemblyFormat = [{
    $queries `,` $cache `at` $positions `scale` `=` $scale
    (`selected` $selection^)? attr-dict `:` type($queries) `,` type($cache) `,`
    type($positions) (`,` type($selection)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def KV_ScoreOp : KV_Op<"score", [MemoryEffects<[MemRead<KV_CacheResource>]>]> {
  let summary = "Scores every cached entry for eviction under a policy";
  let description = [{
    One score per cached token and KV head (higher is kept). `queries` are
    the queries of the layer's attention (after RoPE): SnapKV and H2O score
    by their attention weights, and every method reads the layer's RoPE
    from the rope that made them. TriAttention also reads the calibrated
    `kv.query_center` and `kv.query_magnitude` of the layer's `kv.cache`.
    The `kv-evict` pass inserts it after the layer's `kv.attention`.

    Example:
    ```mlir
    %s = kv.score %c policy(#kv.h2o<budget = 1024>) queries %q
        : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
    ```
  }];
  let arguments = (ins KV_Cache:$cache, KV_EvictionPolicy:$policy,
                       KV_HeadsTensor:$queries);
  let results = (outs 2DTensorOf<[F32]>:$scores);
  let assemblyFormat = [{
    $cache `policy` `(` $policy `)` `queries` $queries attr-dict `:` type($cache)
    `,` type($queries) `->` type($scores)
  }];
  let hasVerifier = 1;
}

def KV_EvictOp : KV_Op<"evict", [AllTypesMatch<["cache", "result"]>,
    MemoryEffects<[MemRead<KV_CacheResource>, MemWrite<KV_CacheResource>]>]> {
  let summary = "Keeps the best-scored entries within the policy's budget";
  let description = [{
    Compacts the cache to the policy's budget by `scores`, which a
    `kv.score` with the same policy made over the same cache, always keeping
    the first `sinks` and the last `window` entries. Kept entries keep their
    positions. The runtime keeps the cache between calls, so the result is
    usually unused; the op writes the cache, so it is never dead code.

    Keys in `#kv.int` (KIVI quantizes them in groups of tokens, which
    eviction cannot split) and `#kv.lowrank` caches are refused.

    Example:
    ```mlir
    %c2 = kv.evict %c1 by %s policy(#kv.h2o<budget = 1024>)
        : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
    ```
  }];
  let arguments = (ins KV_Cache:$cache, 2DTensorOf<[F32]>:$scores,
                       KV_EvictionPolicy:$policy);
  let results = (outs KV_Cache:$result);
  let assemblyFormat = [{
    $cache `by` $scores `policy` `(` $policy `)` attr-dict `:` type($cache) `,` type($scores)
  }];
  let hasVerifier = 1;
}

def KV_SelectOp : KV_Op<"select", [MemoryEffects<[MemRead<KV_CacheResource>]>]> {
  let summary = "Chooses the cache entries each query attends to";
  let description = [{
    Returns, per query and KV head, the indices of the `top_tokens` entries
    the two-level policy selects (tokens x KV heads x top_tokens).

    Example:
    ```mlir
    %sel = kv.select %q, %c policy(#kv.twolevel<block = 64, top_blocks = 16, top_tokens = 256>)
        : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<?x4x256xi32>
    ```
  }];
  let arguments = (ins KV_HeadsTensor:$queries, KV_Cache:$cache,
                       KV_TwoLevelAttr:$policy);
  let results = (outs 3DTensorOf<[I32]>:$selection);
  let assemblyFormat = [{
    $queries `,` $cache `policy` `(` qualified($policy) `)` attr-dict `:` type($queries) `,`
    type($cache) `->` type($selection)
  }];
  let hasVerifier = 1;
}

def KV_ProjectOp : KV_Op<"project", [Pure]> {
  let summary = "Projects each head's vectors onto a low-rank basis";
  let description = [{
    `result[n, h, r] = sum_d input[n, h, d] * basis[h, d, r]`: the latent a
    low-rank cache stores.

    Example:
    ```mlir
    %l = kv.project %v, %basis : tensor<?x4x16xf32>, tensor<4x16x8xf32> -> tensor<?x4x8xf32>
    ```
  }];
  let arguments = (ins KV_HeadsTensor:$input, KV_HeadsTensor:$basis);
  let results = (outs KV_HeadsTensor:$result);
  let assemblyFormat = [{
    $input `,` $basis attr-dict `:` type($input) `,` type($basis) `->` type($result)
  }];
  let hasVerifier = 1;
}

def KV_PrefetchOp : KV_Op<"prefetch", [
    MemoryEffects<[MemRead<KV_CacheResource>, MemWrite<KV_CacheResource>]>]> {
  let summary = "Starts copying predicted cache pages from host to device memory";
  let description = [{
    Asynchronously brings the pages of `cache` that `selection` predicts (all
    offloaded pages when absent) into device memory before the layer (mode
    `next_layer`) or step (mode `next_step`) that needs them. A page not
    ready in time is fetched on demand and counted as a miss.

    The device holds `device_pages` of the layer's pages, or the fraction
    `device_ratio` of its page pool; `runners_up` blocks ranked just below
    the selection are prefetched besides the pages it read (the
    `kv-offload` pass sets these; docs/offload.md).

    Example:
    ```mlir
    kv.prefetch %c mode = next_layer : !kv.cache<heads = 4, head_dim = 16>
    kv.prefetch %c mode = next_step selected %sel {device_pages = 256 : i64, runners_up = 4 : i32}
        : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>
    ```
  }];
  let arguments = (ins KV_Cache:$cache, KV_PrefetchModeAttr:$mode,
                       Optional<3DTensorOf<[I32]>>:$selection,
                       OptionalAttr<I64Attr>:$device_pages,
                       OptionalAttr<F64Attr>:$device_ratio,
                       DefaultValuedAttr<I32Attr, "0">:$runners_up);
  let assemblyFormat = [{
    $cache `mode` `=` custom<EnumKeyword>($mode) (`selected` $selection^)? attr-dict `:` type($cache)
    (`,` type($selection)^)?
  }];
  let hasVerifier = 1;
}

#endif // KV_OPS_TD
