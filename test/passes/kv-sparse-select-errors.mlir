// What kv-sparse-select refuses, each with one sentence that names the
// option or the layer and says what to change.

// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{top_blocks=8})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-METHOD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=topk top_blocks=8})' 2>&1 | FileCheck %s --check-prefix=ERR-METHOD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-BLOCKS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest block=48 top_blocks=8})' 2>&1 | FileCheck %s --check-prefix=ERR-BLOCK
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 top_tokens=64})' 2>&1 | FileCheck %s --check-prefix=ERR-QUEST-TOKENS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=twolevel top_blocks=8})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-TOKENS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=twolevel top_blocks=8 top_tokens=513})' 2>&1 | FileCheck %s --check-prefix=ERR-TOO-MANY
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=4294967295})' 2>&1 | FileCheck %s --check-prefix=ERR-OVERFLOW
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=-2})' 2>&1 | FileCheck %s --check-prefix=ERR-DENSE
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8})' 2>&1 | FileCheck %s --check-prefix=ERR-ALL-DENSE
// ERR-NO-METHOD: error: kv-sparse-select: option 'method' is required; allowed: quest, twolevel
// ERR-METHOD: error: kv-sparse-select: option 'method' is 'topk'; allowed: quest, twolevel
// ERR-NO-BLOCKS: error: kv-sparse-select: option 'top_blocks' is required: the blocks each KV head keeps per decode step
// ERR-BLOCK: error: kv-sparse-select: option 'block' is 48; allowed: a power of two (16, 32, 64)
// ERR-QUEST-TOKENS: error: kv-sparse-select: option 'top_tokens' is 64; method=quest attends to every entry of its top blocks (128); use method=twolevel to select entries
// ERR-NO-TOKENS: error: kv-sparse-select: option 'top_tokens' is required for method=twolevel: the entries each KV head attends to per decode step
// ERR-TOO-MANY: error: kv-sparse-select: option 'top_tokens' is 513, more than the 512 entries of top_blocks (8) x block (64); raise top_blocks or lower top_tokens
// ERR-OVERFLOW: error: kv-sparse-select: option 'top_blocks' is 4294967295: top_blocks x block (68719476720) must fit in 32 bits
// ERR-DENSE: error: kv-sparse-select: option 'dense_layers' is -2; allowed: 0 or more layers, or -1 for the default (2)
// ERR-ALL-DENSE: uncalibrated.mlir:7:9: error: kv-sparse-select: dense_layers=2 leaves no layer to select in: the model has 2; lower dense_layers

// QJL keys, whichever pass runs first: the kv.select verifier refuses
// them.
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=1},kv-quantize{encoding=polar bits=3 qjl=true side=key})' 2>&1 | FileCheck %s --check-prefix=ERR-QJL
// ERR-QJL: error: 'kv.select' op cannot select over keys with the QJL residual (#kv.polar<bits = 3, qjl = true>): block summaries bound the stored vectors, not the residual's correction; select over keys without qjl

// A sliding-window layer.
// RUN: kvopt-opt %s --split-input-file --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=0})' -verify-diagnostics

func.func @sliding(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  %a = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  // expected-error @+1 {{kv-sparse-select: layer 0 attends through a sliding window of 4096 tokens, and block summaries assume every cached entry is visible to the query; raise dense_layers past it}}
  %o = kv.attention %q, %a at %pos scale = 0.125 {sliding_window = 4096 : i64} : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}
