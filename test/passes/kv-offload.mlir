// kv-offload puts a kv.prefetch of each selecting layer's cache, with the
// attention's selection and the device budget, after the attention.

// A byte budget split over the offloaded layers: 1M / (1 layer x 4096
// bytes a KV head's part of a page of 16 tokens) = 256 KV-head pages; no
// runners-up by default.
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=1},kv-offload{gpu_budget=1M})' | FileCheck %s --check-prefix=BYTES
// BYTES:      kv.cache layer 0
// BYTES-NOT:  kv.prefetch
// BYTES:      kv.cache layer 1
// BYTES-NEXT: %[[A:.+]] = kv.append
// BYTES:      %[[S:.+]] = kv.select %{{[^ ]+}}, %[[A]]
// BYTES-NEXT: kv.attention {{.+}} selected %[[S]]
// BYTES-NEXT: kv.prefetch %[[A]] mode = next_step selected %[[S]] {device_pages = 256 : i64} : !kv.cache<heads = 2, head_dim = 64>, tensor<?x2x128xi32>

// Two offloaded layers share the budget; a ratio instead; next-layer; a
// second kv-offload replaces the first's prefetches.
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=0},kv-offload{gpu_budget=1M},kv-offload{ratio=0.25 prefetch=next-layer runners_up=0})' | FileCheck %s --check-prefix=RATIO
// RATIO:      kv.prefetch %{{.+}} mode = next_layer selected %{{.+}} {device_ratio = 2.500000e-01 : f64} :
// RATIO:      kv.prefetch %{{.+}} mode = next_layer selected %{{.+}} {device_ratio = 2.500000e-01 : f64} :
// RATIO-NOT:  kv.prefetch
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=0},kv-offload{gpu_budget=1M})' | FileCheck %s --check-prefix=SHARED
// SHARED-COUNT-2: {device_pages = 128 : i64}

// What it refuses.
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-offload)' 2>&1 | FileCheck %s --check-prefix=ERR-NO-BUDGET
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-offload{gpu_budget=1G ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-BOTH
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-offload{gpu_budget=1T})' 2>&1 | FileCheck %s --check-prefix=ERR-BYTES
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-offload{ratio=1.5})' 2>&1 | FileCheck %s --check-prefix=ERR-RATIO
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-offload{ratio=0.5 prefetch=next-token})' 2>&1 | FileCheck %s --check-prefix=ERR-MODE
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-offload{ratio=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-SELECT
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-sparse-select{method=quest top_blocks=8 dense_layers=1},kv-offload{gpu_budget=32K})' 2>&1 | FileCheck %s --check-prefix=ERR-SMALL
// ERR-NO-BUDGET: error: kv-offload: option 'gpu_budget' or 'ratio' is required: the device bytes for the offloaded pages (1G), or the fraction of each layer's pages on the device (0.25)
// ERR-BOTH: error: kv-offload: option 'ratio' is given with gpu_budget; give one of the two
// ERR-BYTES: error: kv-offload: option 'gpu_budget' is '1T'; allowed: a positive whole number of bytes, optionally with a K, M or G suffix (512M)
// ERR-RATIO: error: kv-offload: option 'ratio' is 1.5; allowed: a fraction in (0, 1]
// ERR-MODE: error: kv-offload: option 'prefetch' is 'next-token'; allowed: next-step, next-layer
// ERR-NO-SELECT: error: kv-offload: no layer selects what its attention reads, and offload predicts the pages a step needs from the selection; run kv-sparse-select before kv-offload
// ERR-SMALL: uncalibrated.mlir:10:9: error: kv-offload: gpu_budget=32K leaves room for 8 KV-head pages of 4096 bytes on the device for each of the 1 offloaded layers, fewer than the 16 one decode step of one sequence may read (top_blocks for each KV head); raise gpu_budget or lower top_blocks
