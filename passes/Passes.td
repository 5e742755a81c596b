//===- Passes.td - kvopt's passes --------------------------*- tablegen -*-===//
#ifndef KVOPT_PASSES_TD
#define KVOPT_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVQuantizePass : Pass<"kv-quantize", "::mlir::ModuleOp"> {
  let summary = "Chooses how every layer's cache encodes keys and values";
  let description = [{
    Rewrites the type of each `kv.cache` (and the values that carry it) to
    the requested encoding. Overrides keep the first and last layers in bf16
    and give keys and values different bit-widths.

    Example:
    ```
    kvopt-opt --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3 keep-first=1})'
    ```
  }];
  let dependentDialects = ["::mlir::kv::KVDialect"];
  let options = [
    Option<"encoding", "encoding", "std::string", "\"bf16\"",
           "bf16, fp8, nvfp4, int (KIVI) or polar (rotation + codebook)">,
    Option<"bits", "bits", "unsigned", "4",
           "bits per coordinate of int (2, 4) and polar (2, 3, 4)">,
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

#endif // KVOPT_PASSES_TD
