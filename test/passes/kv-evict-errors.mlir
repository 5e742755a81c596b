// What kv-evict refuses, each with one sentence that names the option or
// the layer and says what to change.

// Options, checked once before any IR: a module without caches rejects
// them too.
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{budget=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-METHOD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=lru budget=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-METHOD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-BUDGET
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=half})' 2>&1 | FileCheck %s --check-prefix=ERR-BUDGET-WORD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=-5})' 2>&1 | FileCheck %s --check-prefix=ERR-BUDGET-NEGATIVE
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=1.5})' 2>&1 | FileCheck %s --check-prefix=ERR-BUDGET-FRACTION
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=1e3})' 2>&1 | FileCheck %s --check-prefix=ERR-BUDGET-EXPONENT
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0})' 2>&1 | FileCheck %s --check-prefix=ERR-BUDGET-ZERO
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=triattention budget=128})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-ROOM
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=streaming budget=4})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-ROOM-STREAMING
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 window=-2})' 2>&1 | FileCheck %s --check-prefix=ERR-WINDOW
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 sinks=4294967296})' 2>&1 | FileCheck %s --check-prefix=ERR-SINKS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 interval=0})' 2>&1 | FileCheck %s --check-prefix=ERR-INTERVAL
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=snapkv budget=0.5 kernel=6})' 2>&1 | FileCheck %s --check-prefix=ERR-KERNEL
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 observe=16})' 2>&1 | FileCheck %s --check-prefix=ERR-OBSERVE
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=streaming budget=0.5 kernel=3})' 2>&1 | FileCheck %s --check-prefix=ERR-KERNEL-STREAMING
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 heads=all})' 2>&1 | FileCheck %s --check-prefix=ERR-HEADS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=streaming budget=0.5 heads=each})' 2>&1 | FileCheck %s --check-prefix=ERR-HEADS-STREAMING
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 horizon=4096})' 2>&1 | FileCheck %s --check-prefix=ERR-HORIZON-METHOD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.5 horizon=3000})' 2>&1 | FileCheck %s --check-prefix=ERR-HORIZON-POWER
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.5 combine=max})' 2>&1 | FileCheck %s --check-prefix=ERR-COMBINE
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=snapkv budget=0.5 combine=zmax})' 2>&1 | FileCheck %s --check-prefix=ERR-COMBINE-METHOD
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 layers=1:3})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-SYNTAX
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 layers=0,2})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-RANGE
// ERR-NO-METHOD: error: kv-evict: option 'method' is required; allowed: triattention, snapkv, h2o, streaming
// ERR-METHOD: error: kv-evict: option 'method' is 'lru'; allowed: triattention, snapkv, h2o, streaming
// ERR-NO-BUDGET: error: kv-evict: option 'budget' is required: a fraction in (0, 1] of the tokens seen, with a '.' (0.25), or a whole token count (1024)
// ERR-BUDGET-WORD: error: kv-evict: option 'budget': 'half' is not a budget: write a fraction in (0, 1] of the tokens seen, with a '.' (0.25), or a whole token count (1024)
// ERR-BUDGET-NEGATIVE: error: kv-evict: option 'budget': '-5' is not a budget
// ERR-BUDGET-FRACTION: error: kv-evict: option 'budget': '1.5' is a fraction (it has a '.' or an exponent) outside (0, 1]; a token count is written as a whole number (1024)
// ERR-BUDGET-EXPONENT: error: kv-evict: option 'budget': '1e3' is a fraction (it has a '.' or an exponent) outside (0, 1]
// ERR-BUDGET-ZERO: error: kv-evict: option 'budget': a budget of 0 tokens keeps nothing: a token count must be at least 1
// ERR-NO-ROOM: error: kv-evict: option 'budget' is 128 tokens, but window (128) + sinks (0) entries are always kept, which leaves no room for scored entries; raise budget, or lower window or sinks
// ERR-NO-ROOM-STREAMING: error: kv-evict: option 'budget' is 4 tokens, but window (0) + sinks (4) entries are always kept, which leaves no room for scored entries
// ERR-WINDOW: error: kv-evict: option 'window' is -2; allowed: 0 to 4294967295 entries, or -1 for the method's default
// ERR-SINKS: error: kv-evict: option 'sinks' is 4294967296; allowed: 0 to 4294967295 entries, or -1 for the method's default
// ERR-INTERVAL: error: kv-evict: option 'interval' is 0; allowed: at least 1 decode step between compactions
// ERR-KERNEL: error: kv-evict: option 'kernel' is 6; allowed: an odd number of entries (1, 3, 5, 7, ...)
// ERR-OBSERVE: error: kv-evict: option 'observe' is 16; only method=snapkv takes observe
// ERR-KERNEL-STREAMING: error: kv-evict: option 'kernel' is 3; only method=snapkv takes kernel
// ERR-HEADS: error: kv-evict: option 'heads' is 'all'; allowed: shared, each
// ERR-HEADS-STREAMING: error: kv-evict: option 'heads' is 'each'; method=streaming keeps the same entries in every KV head and takes no heads
// ERR-HORIZON-METHOD: error: kv-evict: option 'horizon' is 4096; only method=triattention takes horizon
// ERR-HORIZON-POWER: error: #kv.triattention horizon must be a power of two (the last of the future distances 1, 2, 4, ...), got 3000
// ERR-COMBINE: error: kv-evict: option 'combine' is 'max'; allowed: mean, zmax
// ERR-COMBINE-METHOD: error: kv-evict: option 'combine' is 'zmax'; only method=triattention takes combine
// ERR-LAYERS-SYNTAX: error: kv-evict: option 'layers': '1:3' is not a layer range
// ERR-LAYERS-RANGE: error: kv-evict: option 'layers': layer 2 does not exist in a model of 2 layers (0 to 1, or -2 to -1)

// TriAttention without calibrated query centres, as `kvopt compile` shows
// it.
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-UNCALIBRATED
// ERR-UNCALIBRATED: uncalibrated.mlir:3:9: error: kv-evict: layer 0 has no calibrated query centres ('kv.query_center', 'kv.query_magnitude'); method=triattention needs them: run `kvopt compile --calibrate FILE` (or --calibration stats.json), or use another method

// KIVI keys cannot be evicted from, whichever pass runs first: kv-evict
// refuses the cache kv-quantize made, and the kv.evict verifier the type
// kv-quantize gives a cache that kv-evict already evicts from.
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=4 layers=1},kv-evict{method=h2o budget=0.5})' 2>&1 | FileCheck %s --check-prefix=ERR-INT-BEFORE
// RUN: not kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5},kv-quantize{encoding=int bits=4 layers=1})' 2>&1 | FileCheck %s --check-prefix=ERR-INT-AFTER
// KIVI values can.
// RUN: kvopt-opt %S/Inputs/uncalibrated.mlir --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5},kv-quantize{encoding=int bits=4 side=value})' | FileCheck %s --check-prefix=INT-VALUES
// ERR-INT-BEFORE: uncalibrated.mlir:10:9: error: kv-evict: layer 1: cannot evict from a cache whose keys are #kv.int<bits = 4, group = 32>: KIVI quantizes keys in groups of 32 tokens, which eviction cannot split; evict with keys in f32, bf16, fp8, nvfp4 or polar, or quantize only values with int (side=value)
// ERR-INT-AFTER: uncalibrated.mlir:10:9: error: 'kv.evict' op cannot evict from a cache whose keys are #kv.int<bits = 4, group = 32>: KIVI quantizes keys in groups of 32 tokens, which eviction cannot split; evict with keys in f32, bf16, fp8, nvfp4 or polar, or quantize only values with int (side=value)
// INT-VALUES-COUNT-2: kv.evict {{.+}} : !kv.cache<heads = 2, head_dim = 64, value = #kv.int<bits = 4, group = 32>>, tensor<?x2xf32>

// Layers kv-evict cannot evict from, one per split.
// RUN: kvopt-opt %s --split-input-file --allow-unregistered-dialect --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.5})' -verify-diagnostics

// One layer calibrated, the next not.
func.func @uncalibrated_layer(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c0 = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %c0a = kv.append %k, %v at %pos into %c0 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o0 = kv.attention %q, %c0a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  // expected-error @+1 {{kv-evict: layer 1 has no calibrated query centres ('kv.query_center', 'kv.query_magnitude'); method=triattention needs them: run `kvopt compile --calibrate FILE` (or --calibration stats.json), or use another method}}
  %c1 = kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
  %c1a = kv.append %k, %v at %pos into %c1 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o1 = kv.attention %o0, %c1a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o1 : tensor<?x8x64xf32>
}

// -----

// The centres without their magnitudes are not enough.
func.func @centres_only(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  // expected-error @+1 {{kv-evict: layer 0 has no calibrated query centres}}
  %c = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %ca = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o = kv.attention %q, %ca at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}

// -----

// Sliding-window attention does not see every cached entry.
func.func @sliding_window(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %ca = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  // expected-error @+1 {{kv-evict: layer 0 attends through a sliding window of 4096 tokens, and eviction assumes every cached entry is visible to the next query; leave the layer out with layers=}}
  %o = kv.attention %q, %ca at %pos scale = 0.125 {sliding_window = 4096 : i64} : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}

// -----

// A low-rank side that keeps its first tokens exact needs a policy that
// keeps at least those as sinks (triattention keeps none by default).
func.func @lowrank(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 16, sinks = 4>>
  %ca = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 16, sinks = 4>>
  // expected-error @+1 {{kv-evict: layer 0: cannot evict from a cache whose values keep their first 4 tokens exact (#kv.lowrank<rank = 16, sinks = 4>) under a policy that keeps 0 sinks: compaction would move them; give the policy sinks of at least 4}}
  %o = kv.attention %q, %ca at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 16, sinks = 4>>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}

// -----

// A layer whose cache no attention reads.
func.func @unread() {
  // expected-error @+1 {{kv-evict: no kv.attention reads the cache of layer 0, and kv-evict evicts after a layer's attention; leave the layer out with layers=}}
  %c = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  return
}

// -----

// A layer read by two attentions.
func.func @read_twice(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  // expected-error @+1 {{kv-evict: layer 0 is read by 2 kv.attention ops; kv-evict evicts after the one attention of each layer}}
  %c = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %ca = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o = kv.attention %q, %ca at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  %cb = kv.append %k, %v at %pos into %ca : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o2 = kv.attention %o, %cb at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o2 : tensor<?x8x64xf32>
}

// -----

// An attention whose cache does not come from a kv.cache through kv ops.
func.func @opaque_cache(%q: tensor<?x8x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = "test.cache"() : () -> !kv.cache<heads = 2, head_dim = 64>
  // expected-error @+1 {{kv-evict cannot tell which layer's cache this kv.attention reads: caches must flow from kv.cache to their readers through kv.append and kv.evict only}}
  %o = kv.attention %q, %c at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}

// -----

// Two evictions already after one append: which one to replace is unclear.
func.func @evicted_twice(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %ca = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  // expected-error @+1 {{kv-evict: layer 0's cache is evicted from 2 times after its append; kv-evict keeps one kv.score and kv.evict pair per layer}}
  %o = kv.attention %q, %ca at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  %s = kv.score %ca policy(#kv.h2o<budget = 1024>) queries %q : !kv.cache<heads = 2, head_dim = 64>, tensor<?x8x64xf32> -> tensor<?x2xf32>
  %e = kv.evict %ca by %s policy(#kv.h2o<budget = 1024>) : !kv.cache<heads = 2, head_dim = 64>, tensor<?x2xf32>
  %t = kv.score %ca policy(#kv.streaming<budget = 1024>) queries %q : !kv.cache<heads = 2, head_dim = 64>, tensor<?x8x64xf32> -> tensor<?x2xf32>
  %f = kv.evict %ca by %t policy(#kv.streaming<budget = 1024>) : !kv.cache<heads = 2, head_dim = 64>, tensor<?x2xf32>
  return %o : tensor<?x8x64xf32>
}
