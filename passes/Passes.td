//===- Passes.td - kvopt's passes --------------------------*- tablegen -*-===//
#ifndef KVOPT_PASSES_TD
#define KVOPT_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVQuantizePass : Pass<"kv-quantize", "::mlir::ModuleOp"> {
  let summary = "Chooses how every layer's cache encodes keys and values";
  let description = [{
    Rewrites the type of each `kv.cache` (and the values that carry it) to
    the requested encoding. Overrides keep the first and last layers in bf16
    and give keys and values different bit-widths. The options are checked
    once, before the pass sees any IR. Caches must not cross function or
    block boundaries (inline callees that take or return one first): the
    pass refuses such a module rather than leave stale cache types behind.

    Example:
    ```
    kvopt-opt --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3 keep-first=1})'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"encoding", "encoding", "std::string", "\"bf16\"",
           "f32 (exact), bf16, fp8, nvfp4, int (KIVI) or polar (rotation + codebook)">,
    Option<"bits", "bits", "unsigned", "0",
           "bits per coordinate of int (2, 4) and polar (2, 3, 4); 0: 4. "
           "An error for f32, bf16, fp8 and nvfp4, whose width is fixed">,
    Option<"keyBits", "key-bits", "unsigned", "0",
           "bits for keys only (0: use `bits`)">,
    Option<"valueBits", "value-bits", "unsigned", "0",
           "bits for values only (0: use `bits`)">,
    Option<"group", "group", "unsigned", "32",
           "KIVI group: tokens per key group, channels per value group">,
    Option<"residual", "residual", "unsigned", "128",
           "KIVI: most recent tokens kept in bf16">,
    Option<"seed", "seed", "uint64_t", "0",
           "polar: seed of the randomized Hadamard rotation">,
    Option<"scale", "scale", "std::string", "\"dynamic\"",
           "fp8: per_head (calibrated) or dynamic (per vector)">,
    Option<"keepFirst", "keep-first", "unsigned", "0",
           "leave the first N layers in bf16">,
    Option<"keepLast", "keep-last", "unsigned", "0",
           "leave the last N layers in bf16">
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
