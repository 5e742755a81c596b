// kv-sparse-select puts a kv.select of each selected layer's queries and
// cache before its kv.attention and makes the attention read it; the first
// dense_layers layers attend densely; the cache's page becomes a multiple
// of the block.

// Quest: top_tokens is every entry of the top blocks; block 16 by default.
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=1})' | FileCheck %s --check-prefix=QUEST
// QUEST:      %[[C0:.+]] = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// QUEST-NOT:  kv.select
// QUEST:      kv.attention %{{[^ ]+}}, %{{[^ ]+}} at %{{[^ ]+}} scale = 1.250000e-01 : tensor
// QUEST:      kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
// QUEST:      %[[A1:.+]] = kv.append
// QUEST:      %[[Q1:.+]] = kv.rope
// QUEST-NEXT: %[[S1:.+]] = kv.select %[[Q1]], %[[A1]] policy(#kv.twolevel<block = 16, top_blocks = 8, top_tokens = 128>) : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64> -> tensor<?x2x128xi32>
// QUEST-NEXT: kv.attention %[[Q1]], %[[A1]] at %{{[^ ]+}} scale = 1.250000e-01 selected %[[S1]] : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32>, tensor<?x2x128xi32> -> tensor<?x8x64xf32>

// Two-level with blocks of 64: the pages of the selected layers grow to 64
// (the types of the appends follow); a later invocation replaces the
// policy; kv-quantize keeps the page.
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=twolevel top_blocks=16 top_tokens=512 dense_layers=0},kv-sparse-select{method=twolevel block=32 top_blocks=8 top_tokens=100 dense_layers=1},kv-quantize{encoding=polar bits=4})' | FileCheck %s --check-prefix=TWOLEVEL
// TWOLEVEL:      kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, page = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 4>>
// TWOLEVEL:      kv.select {{.+}} policy(#kv.twolevel<block = 64, top_blocks = 16, top_tokens = 512>) : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, page = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 4>> -> tensor<?x2x512xi32>
// TWOLEVEL:      kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, page = 64,
// TWOLEVEL:      kv.select {{.+}} policy(#kv.twolevel<block = 32, top_blocks = 8, top_tokens = 100>) {{.+}} -> tensor<?x2x100xi32>
// TWOLEVEL-NEXT: kv.attention {{.+}} selected

// With eviction: the selection reads the cache the append made, and the
// eviction follows the attention.
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=1024},kv-sparse-select{method=quest top_blocks=16 dense_layers=0})' | FileCheck %s --check-prefix=EVICT
// EVICT:      %[[A:.+]] = kv.append
// EVICT:      kv.select %{{[^ ]+}}, %[[A]]
// EVICT-NEXT: kv.attention {{.+}} selected
// EVICT-NEXT: kv.score %[[A]]
// EVICT-NEXT: kv.evict %[[A]]
