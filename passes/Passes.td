//===- Passes.td - kvopt's passes --------------------------*- tablegen -*-===//
#ifndef KVOPT_PASSES_TD
#define KVOPT_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVQuantizePass : Pass<"kv-quantize", "::mlir::ModuleOp"> {
  let summary = "Chooses how the caches of some layers encode keys or values";
  let description = [{
    Rewrites the type of each selected `kv.cache` (and of the values that
    carry it) to the requested encoding. `layers=` selects the layers (all
    by default) and `side=` the half of the cache (keys, values or both);
    what is not selected keeps its encoding. A pipeline of several
    kv-quantize invocations therefore expresses any per-layer, per-side
    choice: later invocations override earlier ones.

    `layers=` is a comma-separated list of `N`, `-N` (counting from the end,
    -1 is the last layer) or `A-B` (A to B inclusive), e.g. `layers=0,-1`,
    `layers=4-11` or `layers=-4--1`. The commas stay inside the pass's `{}`,
    so the list needs no quoting in a pipeline; the pipeline printer writes
    it as `layers={0,-1}`, which parses too.

    The options are checked once, before the pass sees any IR; which layers
    exist is checked against the module. `scale=per_head` for fp8 needs the
    calibrated `kv.key_absmax` / `kv.value_absmax` of every cache side it
    rewrites (`kvopt compile --calibrate FILE`). Caches must not cross
    function or block boundaries (inline callees that take or return one
    first): the pass refuses such a module rather than leave stale cache
    types behind.

    Example: polar-3 everywhere, the first and last layers in bf16, and the
    values of layers 4 to 11 in 2-bit KIVI:
    ```
    kvopt-opt --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3},kv-quantize{encoding=bf16 layers=0,-1},kv-quantize{encoding=int bits=2 side=value layers=4-11})'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"encoding", "encoding", "std::string", "\"bf16\"",
           "f32 (exact), bf16, fp8, nvfp4, int (KIVI) or polar (rotation + codebook)">,
    Option<"bits", "bits", "unsigned", "0",
           "bits per coordinate of int (2, 4) and polar (2, 3, 4); 0: 4. "
           "An error for f32, bf16, fp8 and nvfp4, whose width is fixed">,
    Option<"group", "group", "unsigned", "32",
           "KIVI group: tokens per key group, channels per value group">,
    Option<"residual", "residual", "unsigned", "128",
           "KIVI: most recent tokens kept in bf16">,
    Option<"seed", "seed", "uint64_t", "0",
           "polar: seed of the randomized Hadamard rotation">,
    Option<"scale", "scale", "std::string", "\"dynamic\"",
           "fp8: per_head (calibrated) or dynamic (per vector)">,
    Option<"qjl", "qjl", "bool", "false",
           "polar keys: add TurboQuant's 1-bit QJL residual (needs side=key)">,
    Option<"sinks", "sinks", "unsigned", "0",
           "polar, fp8, nvfp4: each sequence's first tokens kept exact (bf16)">,
    Option<"window", "window", "unsigned", "0",
           "polar, fp8, nvfp4: each sequence's most recent tokens kept exact "
           "(bf16); "
           "KIVI's equivalent is residual">,
    Option<"side", "side", "std::string", "\"both\"",
           "the half of the cache to rewrite: key, value or both">,
    ListOption<"layers", "layers", "std::string",
               "layers to rewrite: N, -N (from the end) or A-B, comma-separated; "
               "default: every layer">
  ];
}

def KVLowRankPass : Pass<"kv-lowrank", "::mlir::ModuleOp"> {
  let summary = "Stores the keys or values of some layers as a latent on a calibrated basis";
  let description = [{
    Rewrites the `side` (value by default, or key) of each selected
    `kv.cache` to `#kv.lowrank<rank = r, latent = E>`, E the encoding that
    side had (bf16 by default; a later kv-quantize of the side encodes the
    latent instead). The bases come from calibration (`kvopt compile
    --calibrate FILE`): values on `kv.value_axes`, the eigenvectors of their
    second moment, attended in the latent domain and mapped back once per
    query row; keys on `kv.key_axes`, the axes of their pre-RoPE second
    moment weighted by the queries' magnitude per RoPE pair, stored before
    RoPE (the runtime rotates each key back by its position on the way in,
    and rebuilds and rotates it when scoring; runtime/src/cache/codecs/
    LowRank.cpp, docs/lowrank.md).

    `ratio=R` keeps round(R x head_dim) axes per layer on average, `rank=N`
    keeps N in every layer; give exactly one. With a ratio the ranks are
    allocated across the selected layers by the calibrated eigenvalues
    (`kv.key_spectrum`, `kv.value_spectrum`): steps of head_dim / 8 go
    greedily to the layer whose next eigenvalues hold the largest share of
    its spectrum; `allocate=uniform` gives every layer the same rank. A
    later invocation replaces the rank and exact tokens of the layers and
    side it selects and keeps their latent's encoding. `sinks=N` (4) and `window=N` (64) keep each
    sequence's first and most recent tokens exact as well: without them the
    attention sink's latent costs most of the loss (docs/lowrank.md).
    Values take their axes and spectrum from their second moment weighted
    by the attention each token gets outside the exact sinks and window
    (`kv.value_attention_axes`, `kv.value_attention_spectrum`;
    `value_basis=attention`, the default) or, with
    `value_basis=second_moment`, from their plain second moment; the latent
    stays orthonormal, so only the axes change. Statistics without the
    attention-weighted moment (an older kvopt's, or windows no longer than
    the exact tokens) are refused unless value_basis=second_moment is
    given; keys ignore the default and refuse value_basis=attention.
    Keys are centred (`centre=true`, the default): the latent is taken
    around their calibrated pre-RoPE mean (`kv.key_mean`, recorded with the
    moments), which is most of a key's length, so that a quantized latent
    spends its codes on what varies (docs/lowrank.md measures it);
    `centre=false` stores the keys' projection itself, as before
    2026-12-05. Values refuse centre: they stay on the axes of their
    uncentred second moment.

    `method=svd` is Palu's whitened SVD of the projection that writes the
    side (k_proj before RoPE, v_proj), truncated to the rank. Its right
    singular vectors are exactly the eigenvectors of the uncentred second
    moment of the projection's output (docs/lowrank.md proves it), so it
    takes `kv.value_axes` for values (as value_basis=second_moment) and
    `kv.key_moment_axes`, the pre-RoPE keys' own, unweighted, for keys, and
    records `basis = svd` in the encoding.

    `method=lrkv` retrofits LRKV's structure (arXiv 2601.11471: a basis
    shared by a layer's KV heads plus a low-rank residual per head, a
    training-time architecture) to the calibrated moments of the axes
    method=pca takes (keys query-weighted; values per `value_basis`): per
    layer, U is the first round(shared x r) eigenvectors of the sum of the
    heads' moments, and each head's V_h the first r - round(shared x r)
    eigenvectors of its moment on U's orthogonal complement. Each entry
    stores its coordinates on [U, V_h], orthonormal, so the runtime treats it
    as any per-head basis; per head it can never lose less than method=pca
    at the same rank (docs/lowrank.md measures by how much). Ranks are
    allocated as for method=pca. The pass puts each head's axes on the
    cache as kv.key_group_axes or kv.value_group_axes (groups of one head)
    and records `basis = lrkv`; `shared=F` (0.5) is the fraction of each
    head's rank in U (0: method=pca's axes; 1: one basis for the whole
    layer). Group 1 only.

    `group=G` (1) is Palu's group-head decomposition: each group of G
    consecutive KV heads (G must divide the layer's KV heads) stores one
    latent of their G head_dim coordinates concatenated, on the
    eigenvectors of their joint second moment, cross-head blocks included
    (calibration's kv.key_joint_moment, kv.value_joint_moment or
    kv.value_attention_joint_moment, whichever the method and value_basis
    name; query-weighted keys weigh it by kv.key_axes' weights). The pass
    puts the group's axes on the cache (kv.key_group_axes,
    kv.value_group_axes) and `group = G` in the encoding, whose rank is
    then the group latent's size: G round(R head_dim), or rank=N with N a
    multiple of G, below G head_dim; ranks are allocated in steps of G
    head_dim / 8 by the joint spectra. Each head's page area holds rank / G
    of the latent, so a latent's encoding sees vectors of rank / G, and an
    eviction must keep the same entries in the group's heads (heads=shared).
    `layers=` as for kv-quantize.

    `fold=true` (values, group 1) folds each head's axes Q (all head_dim of
    them, orthonormal) into the projections: v_proj's rows of the head and
    its bias are mapped by Q^T and o_proj's columns of every query head
    that reads it by Q, new weight constants in the old element types.
    Attention's output is linear in the values, so the layer computes the
    same function; the cache receives Q^T v, whose first r coordinates are
    the latent, and attention's sum of latents is what o_proj reads:
    nothing projects on append or maps back after attention, and the
    encoding records `folded = true` (the artifact then carries no basis).
    Exact tokens keep all head_dim coordinates of Q^T v. A later kv-lowrank
    of folded values may change their rank and exact tokens on the same
    axes and refuses any others; the layer must have the importers' form
    (v_proj a kv.linear whose heads only the append reads; o_proj a
    kv.linear alone reading the attention's merged heads) and weights
    with bytes (not a synthetic model's).

    Example: values at half rank in every layer but the first and last,
    keys at half rank everywhere:
    ```
    kvopt compile default --calibrate text.txt --passes 'kv-lowrank{ratio=0.5 layers=1--2},kv-lowrank{side=key ratio=0.5}'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"method", "method", "std::string", "\"pca\"",
           "pca (calibrated principal axes), svd (Palu's whitened SVD of "
           "the projection) or lrkv (a basis shared by the layer's KV heads "
           "plus a residual per head)">,
    Option<"shared", "shared", "double", "0.5",
           "method=lrkv: the fraction of each head's rank in the basis the "
           "layer's KV heads share, in [0, 1]">,
    Option<"group", "group", "unsigned", "1",
           "KV heads sharing one latent (Palu's group); must divide the KV "
           "heads">,
    Option<"side", "side", "std::string", "\"value\"",
           "value or key">,
    Option<"ratio", "ratio", "double", "0",
           "axes kept per head as a fraction of head_dim, in (0, 1)">,
    Option<"rank", "rank", "unsigned", "0",
           "axes kept per head (per group of G heads with group=G: a "
           "multiple of G, below G head_dim)">,
    Option<"valueBasis", "value_basis", "std::string", "\"attention\"",
           "side=value: attention (the default: kv.value_attention_axes, "
           "the eigenvectors of the second moment weighted by the attention "
           "each token gets) or second_moment (kv.value_axes, of E[v v^T])">,
    Option<"allocate", "allocate", "std::string", "\"spectrum\"",
           "with ratio: spectrum (ranks per layer by the calibrated "
           "eigenvalues, averaging the ratio) or uniform">,
    Option<"fold", "fold", "bool", "false",
           "values: fold the axes into v_proj and o_proj, so that nothing "
           "projects on append or maps back after attention">,
    Option<"centre", "centre", "bool", "true",
           "side=key: take the latent around the keys' calibrated mean "
           "(kv.key_mean), which is most of their length">,
    Option<"sinks", "sinks", "unsigned", "4",
           "first tokens of each sequence kept exact beside their latents">,
    Option<"window", "window", "unsigned", "64",
           "most recent tokens of each sequence kept exact">,
    ListOption<"layers", "layers", "std::string",
               "layers to rewrite: N, -N (from the end) or A-B, comma-separated; "
               "default: every layer">
  ];
}

def KVEvictPass : Pass<"kv-evict", "::mlir::ModuleOp"> {
  let summary = "Bounds the caches of some layers by evicting entries";
  let description = [{
    After the `kv.attention` of each selected layer, inserts a `kv.score`
    of the cache it read (with the attention's queries) and a `kv.evict`
    by those scores under the policy the options describe
    (`#kv.triattention`, `#kv.snapkv`, `#kv.h2o` or `#kv.streaming`). A
    layer that already has such a pair (an earlier kv-evict) gets the new
    policy instead, so later invocations override earlier ones for the
    layers they select, as with kv-quantize.

    `budget=` is required: with a `.` or an exponent it is a fraction in
    (0, 1] of the tokens each sequence has seen (`0.25`), otherwise a token
    count of at least 1 (`1024`). `window=` and `sinks=` default to -1, the
    method's default: window 128 and sinks 0, streaming window 0 and sinks
    4. `observe=` and `kernel=` are SnapKV's (0: 32 and 7). `heads=shared`
    (the default) selects once for all KV heads of the layer, `heads=each`
    per KV head; streaming keeps the same entries in every head and takes
    no `heads=`. `horizon=` is TriAttention's largest future query
    distance, a power of two (0: 65536, the reference code's; the score
    averages over distances 1, 2, 4, ..., horizon). `combine=` is how
    TriAttention combines a KV head's query heads: `mean` (the default) or
    `zmax`, each head's scores standardised over the keys, then the
    maximum (the reference runtime's default). `layers=` takes
    kv-quantize's layer ranges.

    `allocate=uniform` (the default) gives every selected layer the budget;
    `allocate=attention` shares a fractional budget across them so that
    their mean is the budget (the same cache bytes) and the layers whose
    attention loses more from eviction keep more: each layer's calibrated
    `kv.evict_loss` (the attention mass the best kept list of each fraction
    of a query's entries leaves out) is summed over the layers and
    minimised greedily, each layer kept between budget/`spread` and
    min(1, budget x `spread`) (`spread=` default 2).

    The options are checked once, before the pass sees any IR. The pass
    then refuses: allocate=attention on a layer without `kv.evict_loss`;
    TriAttention on a layer whose `kv.cache` lacks the
    calibrated `kv.query_center` / `kv.query_magnitude` (`kvopt compile
    --calibrate FILE`); a layer that attends through a sliding window (the
    runtime's eviction assumes every cached entry is visible to the next
    query); caches with `#kv.int` keys or a `#kv.lowrank` side (the
    `kv.evict` verifier, which also catches a kv-quantize that runs after
    this pass).

    Example: TriAttention keeping a quarter of the context, the last layer
    a fixed 1024 entries, with polar-4 caches:
    ```
    kvopt-opt --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25},kv-evict{method=triattention budget=1024 layers=-1},kv-quantize{encoding=polar bits=4})'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"method", "method", "std::string", "\"\"",
           "how entries are scored: triattention, snapkv, h2o or streaming (required)">,
    Option<"budget", "budget", "std::string", "\"\"",
           "entries kept per sequence: a fraction in (0, 1] with a '.' or an "
           "exponent (0.25), or a token count (1024) (required)">,
    Option<"window", "window", "int64_t", "-1",
           "most recent entries always kept; -1: 128 (streaming: 0)">,
    Option<"interval", "interval", "unsigned", "128",
           "decode steps between compactions">,
    Option<"sinks", "sinks", "int64_t", "-1",
           "first entries always kept; -1: 0 (streaming: 4)">,
    Option<"observe", "observe", "unsigned", "0",
           "snapkv: the last queries whose attention votes; 0: 32">,
    Option<"kernel", "kernel", "unsigned", "0",
           "snapkv: the max-pooling kernel (odd); 0: 7">,
    Option<"heads", "heads", "std::string", "\"\"",
           "shared (one selection per layer) or each (one per KV head); "
           "default: shared">,
    Option<"horizon", "horizon", "unsigned", "0",
           "triattention: the largest future query distance scored, a power "
           "of two; 0: 65536">,
    Option<"combine", "combine", "std::string", "\"\"",
           "triattention: how a KV head's query heads combine, mean or zmax "
           "(each head's scores standardised, then the maximum); default: "
           "mean">,
    Option<"allocate", "allocate", "std::string", "\"uniform\"",
           "uniform (every layer the budget) or attention (a fractional "
           "budget shared across the layers by their calibrated eviction "
           "loss)">,
    Option<"spread", "spread", "unsigned", "0",
           "allocate=attention: each layer keeps from budget/spread to "
           "budget x spread (at most all); 0: 2">,
    ListOption<"layers", "layers", "std::string",
               "layers to evict from: N, -N (from the end) or A-B, "
               "comma-separated; default: every layer">
  ];
}

def KVSparseSelectPass : Pass<"kv-sparse-select", "::mlir::ModuleOp"> {
  let summary = "Makes decode steps attend to the entries a two-level selection picks";
  let description = [{
    Before the `kv.attention` of each layer from `dense_layers` on, inserts a
    `kv.select` of the cache it reads under `#kv.twolevel<block, top_blocks,
    top_tokens>` and makes the attention read that selection. At run time
    each decode query scores the cache's blocks of `block` entries by an
    upper bound of q.k from their per-channel key minima and maxima (Quest's
    bound), keeps the `top_blocks` best, scores their entries exactly and
    attends to the `top_tokens` best (docs/sparse-selection.md). One
    selection per KV head serves its whole group of query heads. Prefill
    rows, and sequences of at most `top_tokens` entries, attend densely.

    `method=quest` attends to every entry of its top blocks (`top_tokens` is
    `top_blocks x block`; block 16 by default); `method=twolevel` (AsyncTLS)
    takes `top_tokens` (block 64 by default). The cache's page becomes a
    multiple of the block, so block summaries are page metadata. A later
    invocation replaces the policy of the layers it selects.

    Refused: a layer that attends through a sliding window, and (by the
    `kv.select` verifier, whichever pass runs first) keys with the QJL
    residual or in `#kv.lowrank`, whose stored vectors are not what scores
    read.

    Example: Quest with a 1024-token budget, the first two layers dense:
    ```
    kvopt-opt --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=64})'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"method", "method", "std::string", "\"\"",
           "quest (every entry of the top blocks) or twolevel (the top "
           "entries of the top blocks) (required)">,
    Option<"block", "block", "unsigned", "0",
           "entries per scored block, a power of two; 0: 16 (quest) or 64 "
           "(twolevel)">,
    Option<"topBlocks", "top_blocks", "unsigned", "0",
           "blocks kept per KV head and step (required)">,
    Option<"topTokens", "top_tokens", "unsigned", "0",
           "twolevel: entries attended per KV head and step (required)">,
    Option<"denseLayers", "dense_layers", "int64_t", "-1",
           "the first layers, which attend densely; -1: 2">
  ];
}

def KVOffloadPass : Pass<"kv-offload", "::mlir::ModuleOp"> {
  let summary = "Keeps selecting layers' caches in host memory, a budget of their pages on the device";
  let description = [{
    After the `kv.attention` of each layer that reads a `kv.select` (run
    `kv-sparse-select` first), inserts a `kv.prefetch` of the layer's cache
    with the attention's selection: the runtime keeps the cache in host
    memory and `device_pages` KV-head pages (one KV head's part of a page:
    heads select apart) in device memory; the pages a decode step read
    stay there (least recently used out), the
    `runners_up` blocks ranked just below the selection are prefetched for
    the next step, and a page needed but not resident is fetched on demand
    and counted as a miss (docs/offload.md).

    The device budget: `gpu_budget=` bytes for the pages of all offloaded
    layers together (a whole number, or with a K, M or G suffix of powers of
    1024), split evenly between them; or `ratio=` the fraction in (0, 1] of
    each layer's page pool. One of the two is required. `prefetch=`
    next-step (copies issued after the step) or next-layer (before the
    layer that needs them). `runners_up=` (default 0) blocks ranked just
    below the selection are prefetched too: on the default model they
    cost more copies than they save (docs/offload.md).

    Refused: no selecting layer; a budget that leaves a layer fewer pages
    than one decode step of one sequence may read (top_blocks for each KV
    head).

    Example:
    ```
    kvopt-opt --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=64},kv-offload{gpu_budget=2G})'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"gpuBudget", "gpu_budget", "std::string", "\"\"",
           "device bytes for the offloaded layers' pages (1073741824, 1G)">,
    Option<"ratio", "ratio", "double", "0",
           "the fraction of each layer's page pool on the device">,
    Option<"prefetch", "prefetch", "std::string", "\"next-step\"",
           "when copies are issued: next-step or next-layer">,
    Option<"runnersUp", "runners_up", "unsigned", "0",
           "blocks below the selection to prefetch besides keeping what it "
           "read">
  ];
}

def KVPrintWeightsPass : Pass<"kv-print-weights", "::mlir::ModuleOp"> {
  let summary = "Prints every weight's name, type and CRC-32 of its bytes";
  let description = [{
    One line per `dense_resource` constant, in module order:
    `<name> <type> crc32=<8 hex digits>` over the raw little-endian bytes.
    Tests compare these lines with what the `safetensors` and `gguf` Python
    packages read from the same files; users can check that two imports of
    one model agree without printing gigabytes of hex.
  }];
}

#endif // KVOPT_PASSES_TD
