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
    Option<"side", "side", "std::string", "\"both\"",
           "the half of the cache to rewrite: key, value or both">,
    ListOption<"layers", "layers", "std::string",
               "layers to rewrite: N, -N (from the end) or A-B, comma-separated; "
               "default: every layer">
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
