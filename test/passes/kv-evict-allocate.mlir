// kv-evict{allocate=attention} shares a fractional budget across the
// selected layers by their calibrated kv.evict_loss: the mean of the
// layers' fractions is the budget, each within [budget/spread, min(1,
// budget x spread)], and the budget goes first where it buys back the most
// attention per entry kept.

// Budget 0.25, bounds [0.125, 0.5]: every layer starts at 0.125; layers 0
// and 2 lose the most per entry below 1/4 and get there first; the last
// 0.125 goes to layer 2, whose loss falls by 0.8 per fraction from 1/4 on,
// against layer 1's 0.6 below 1/4 and layer 0's 0.08.
// RUN: kvopt-opt %S/Inputs/evict-loss.mlir --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 allocate=attention})' | FileCheck %s --check-prefix=ALLOC
// ALLOC-LABEL: func.func @model(
// ALLOC:         kv.cache layer 0
// ALLOC:         kv.evict %{{.+}} by %{{.+}} policy(#kv.triattention<budget = 2.500000e-01 : f64>)
// ALLOC:         kv.cache layer 1
// ALLOC:         kv.evict %{{.+}} by %{{.+}} policy(#kv.triattention<budget = 1.250000e-01 : f64>)
// ALLOC:         kv.cache layer 2
// ALLOC:         kv.evict %{{.+}} by %{{.+}} policy(#kv.triattention<budget = 3.750000e-01 : f64>)

// spread=1 keeps every layer at the budget; allocate=uniform (the default)
// ignores the losses.
// RUN: kvopt-opt %S/Inputs/evict-loss.mlir --pass-pipeline='builtin.module(kv-evict{method=snapkv budget=0.25 allocate=attention spread=1})' | FileCheck %s --check-prefix=UNIFORM
// RUN: kvopt-opt %S/Inputs/evict-loss.mlir --pass-pipeline='builtin.module(kv-evict{method=snapkv budget=0.25})' | FileCheck %s --check-prefix=UNIFORM
// UNIFORM-COUNT-3: kv.evict %{{.+}} policy(#kv.snapkv<budget = 2.500000e-01 : f64>)

// Only the selected layers share their budget: layers 1 and 2 at 0.25 on
// average; layer 2's loss falls faster (2.4 per fraction below 1/4, 0.8
// above, against layer 1's 0.6), so it takes all of the rest.
// RUN: kvopt-opt %S/Inputs/evict-loss.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.25 allocate=attention layers=1-2})' | FileCheck %s --check-prefix=SUBSET
// SUBSET:     kv.cache layer 0
// SUBSET-NOT: kv.evict %
// SUBSET:     kv.cache layer 1
// SUBSET:     kv.evict %{{.+}} policy(#kv.h2o<budget = 1.250000e-01 : f64>)
// SUBSET:     kv.cache layer 2
// SUBSET:     kv.evict %{{.+}} policy(#kv.h2o<budget = 3.750000e-01 : f64>)

// What it refuses: an allocation that is not uniform or attention, spread
// without allocate=attention, a token budget (the losses are per fraction
// of the tokens seen), and a layer without kv.evict_loss.
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 allocate=spectrum})' 2>&1 | FileCheck %s --check-prefix=ERR-ALLOCATE
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 spread=3})' 2>&1 | FileCheck %s --check-prefix=ERR-SPREAD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=1024 allocate=attention})' 2>&1 | FileCheck %s --check-prefix=ERR-TOKENS
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 allocate=attention})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-LOSS
// ERR-ALLOCATE: error: kv-evict: option 'allocate' is 'spectrum'; allowed: uniform, attention
// ERR-SPREAD: error: kv-evict: option 'spread' is 3; only allocate=attention takes spread
// ERR-TOKENS: error: kv-evict: option 'allocate' is 'attention', which shares a fraction of the tokens seen across layers, but budget is 1024 tokens; give budget as a fraction (0.25) or allocate=uniform
// ERR-NO-LOSS: error: kv-evict: layer 0 has no calibrated eviction loss ('kv.evict_loss') to allocate budgets by; calibrate again with this kvopt (`kvopt compile --calibrate FILE`) or give allocate=uniform
