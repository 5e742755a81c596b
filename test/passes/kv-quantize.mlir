// kv-quantize rewrites the encoding of the selected layers' caches (all by
// default, both keys and values) and the type of the values that carry the
// cache on (kv.append, kv.evict).

// The default encoding is bf16: caches already encoded otherwise go back to it.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize)' | FileCheck %s --check-prefix=BF16
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=bf16 layers=0,-2--1})' | FileCheck %s --check-prefix=BF16

// The exact reference encoding.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=f32})' | FileCheck %s --check-prefix=F32
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=f32 bits=8})' 2>&1 | FileCheck %s --check-prefix=ERR-F32-BITS
// F32-LABEL: func.func @model(
// F32:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.f32, value = #kv.f32>
// F32:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.f32, value = #kv.f32>
// ERR-F32-BITS: error: kv-quantize: option 'bits' is 8; encoding=f32 has a fixed width, only int and polar take bits

// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=fp8})' | FileCheck %s --check-prefix=FP8-DYNAMIC
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4})' | FileCheck %s --check-prefix=NVFP4
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2})' | FileCheck %s --check-prefix=INT2
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=4 group=64 residual=256})' | FileCheck %s --check-prefix=INT4
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=2})' | FileCheck %s --check-prefix=POLAR2
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3 seed=7})' | FileCheck %s --check-prefix=POLAR3
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar seed=42})' | FileCheck %s --check-prefix=POLAR4

// side= rewrites one half of the cache and leaves the other as it was (the
// default bf16 is elided, layer 2's values stay e5m2): keys and values at
// different encodings or bit-widths.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 side=key})' | FileCheck %s --check-prefix=SIDE-KEY
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 side=value})' | FileCheck %s --check-prefix=SIDE-VALUE
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=4},kv-quantize{encoding=int bits=2 side=key})' | FileCheck %s --check-prefix=INT-KEY-BITS
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3 seed=1},kv-quantize{encoding=polar bits=2 seed=1 side=value})' | FileCheck %s --check-prefix=POLAR-VALUE-BITS
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar side=key},kv-quantize{encoding=polar bits=2 side=value})' | FileCheck %s --check-prefix=POLAR-BOTH-BITS
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=4 side=key},kv-quantize{encoding=polar bits=3 side=value})' | FileCheck %s --check-prefix=INT-KEYS-POLAR-VALUES

// layers= selects layers: indices, negatives from the end, inclusive ranges,
// in the list syntax with or without the braces the pipeline printer writes.
// Later invocations override earlier ones, so bf16 first and last layers
// are a second kv-quantize.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3},kv-quantize{encoding=bf16 layers=0,-1})' | FileCheck %s --check-prefix=KEEP-BOTH
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3},kv-quantize{encoding=bf16 layers={0,2}})' | FileCheck %s --check-prefix=KEEP-BOTH
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4},kv-quantize{encoding=bf16 layers=0-1})' | FileCheck %s --check-prefix=KEEP-FIRST
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2},kv-quantize{encoding=bf16 layers=-2--1})' | FileCheck %s --check-prefix=KEEP-LAST
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2},kv-quantize{encoding=bf16 layers=0-1,-2--1})' | FileCheck %s --check-prefix=KEEP-ALL
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 layers=2--1})' | FileCheck %s --check-prefix=KEEP-FIRST
// RUN: kvopt-opt %s --kv-quantize='encoding=nvfp4 layers=-1,2' | FileCheck %s --check-prefix=KEEP-FIRST
// Per layer and per side at once.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3},kv-quantize{encoding=bf16 layers=0,-1},kv-quantize{encoding=int bits=2 side=value layers=1})' | FileCheck %s --check-prefix=MIXED

// qjl=true adds the QJL residual to polar keys.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3 qjl=true side=key layers=1},kv-quantize{encoding=polar bits=3 side=value layers=1})' | FileCheck %s --check-prefix=QJL

// fp8 with per-head scales takes them from the calibration statistics; only
// the sides and layers rewritten need them.
// RUN: kvopt-opt %S/Inputs/calibrated.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 scale=per_head side=key})' | FileCheck %s --check-prefix=FP8-PER-HEAD
// RUN: kvopt-opt %S/Inputs/calibrated.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 scale=per_head layers=0})' | FileCheck %s --check-prefix=FP8-PER-HEAD-LAYER0
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 scale=per_head})' 2>&1 | FileCheck %s --check-prefix=ERR-FP8-UNCALIBRATED
// RUN: not kvopt-opt %S/Inputs/calibrated.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 scale=per_head})' 2>&1 | FileCheck %s --check-prefix=ERR-FP8-NO-VALUE-SCALES
// RUN: not kvopt-opt %S/Inputs/calibrated.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 scale=per_head side=value layers=-1})' 2>&1 | FileCheck %s --check-prefix=ERR-FP8-NO-VALUE-SCALES

// Errors: bad option values, each naming its option. The options are checked
// once, before any IR: a module without caches rejects them too.
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=lz4})' 2>&1 | FileCheck %s --check-prefix=ERR-ENCODING
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 scale=static})' 2>&1 | FileCheck %s --check-prefix=ERR-SCALE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=3})' 2>&1 | FileCheck %s --check-prefix=ERR-INT-BITS
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=8 side=value})' 2>&1 | FileCheck %s --check-prefix=ERR-INT-VALUE-BITS
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=5})' 2>&1 | FileCheck %s --check-prefix=ERR-POLAR-BITS
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=1 side=key})' 2>&1 | FileCheck %s --check-prefix=ERR-POLAR-KEY-BITS
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2 group=48})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2 group=64 residual=96})' 2>&1 | FileCheck %s --check-prefix=ERR-RESIDUAL
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=5})' 2>&1 | FileCheck %s --check-prefix=ERR-NO-CACHE
// Bit-widths for the encodings of fixed width are errors, not ignored.
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=bf16 bits=3})' 2>&1 | FileCheck %s --check-prefix=ERR-BF16-BITS
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 bits=4 side=key})' 2>&1 | FileCheck %s --check-prefix=ERR-FP8-KEY-BITS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 bits=4 side=value})' 2>&1 | FileCheck %s --check-prefix=ERR-NVFP4-VALUE-BITS
// Sides, QJL and layer ranges that cannot be.
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{side=keys})' 2>&1 | FileCheck %s --check-prefix=ERR-SIDE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar qjl=true})' 2>&1 | FileCheck %s --check-prefix=ERR-QJL-BOTH
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar qjl=true side=value})' 2>&1 | FileCheck %s --check-prefix=ERR-QJL-VALUE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=4 qjl=true side=key})' 2>&1 | FileCheck %s --check-prefix=ERR-QJL-INT
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{layers=1:3})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-SYNTAX
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{layers=3-1})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-BACKWARDS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{layers=99999999})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-HUGE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 layers=0,3})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-RANGE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 layers=-4})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-NEGATIVE
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 layers=2--2})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-RESOLVED-BACKWARDS
// RUN: not kvopt-opt %S/Inputs/no-cache.mlir --pass-pipeline='builtin.module(kv-quantize{layers=0})' 2>&1 | FileCheck %s --check-prefix=ERR-LAYERS-NO-CACHE
// Encodings the head dimension cannot hold, named as the key or value encoding.
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2 group=128})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP-HEAD-DIM
// RUN: not kvopt-opt %S/Inputs/head-dim-96.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3})' 2>&1 | FileCheck %s --check-prefix=ERR-POLAR-HEAD-DIM
// RUN: not kvopt-opt %S/Inputs/head-dim-96.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2 group=64})' 2>&1 | FileCheck %s --check-prefix=ERR-GROUP-96
// RUN: not kvopt-opt %S/Inputs/head-dim-40.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4})' 2>&1 | FileCheck %s --check-prefix=ERR-NVFP4-HEAD-DIM
// Caches that cross function or block boundaries are refused.
// RUN: kvopt-opt %S/Inputs/cache-boundaries.mlir --split-input-file --allow-unregistered-dialect --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3})' -verify-diagnostics
// Head dimensions the encodings can hold pass.
// RUN: kvopt-opt %S/Inputs/head-dim-96.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4})' | FileCheck %s --check-prefix=NVFP4-96
// RUN: kvopt-opt %S/Inputs/head-dim-96.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=4 group=32})' | FileCheck %s --check-prefix=INT-96

// Caches that are evicted from: the new type reaches the kv.score, the
// kv.evict and the append after it. KIVI keys cannot be evicted from (the
// kv.evict verifier says so), KIVI values can.
// RUN: kvopt-opt %S/Inputs/evicting.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=3 seed=7})' | FileCheck %s --check-prefix=EVICT-POLAR3
// RUN: kvopt-opt %S/Inputs/evicting.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2 side=value})' | FileCheck %s --check-prefix=EVICT-INT-VALUES
// RUN: not kvopt-opt %S/Inputs/evicting.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=int bits=2})' 2>&1 | FileCheck %s --check-prefix=ERR-EVICT-INT-KEYS
// Polar keeps first and recent tokens exact when asked; eviction must keep
// its sinks, and a low-rank latent keeps none of its own.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=4 sinks=4 window=64})' | FileCheck %s --check-prefix=POLAR-EXACT
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=fp8 window=64})' | FileCheck %s --check-prefix=FP8-WINDOW
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=nvfp4 sinks=2 window=64})' | FileCheck %s --check-prefix=NVFP4-WINDOW
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=bf16 window=64})' 2>&1 | FileCheck %s --check-prefix=ERR-WINDOW-BF16
// RUN: not kvopt-opt %s --pass-pipeline='builtin.module(kv-quantize{encoding=polar window=5000})' 2>&1 | FileCheck %s --check-prefix=ERR-WINDOW-LARGE
// RUN: not kvopt-opt %S/Inputs/evicting.mlir --pass-pipeline='builtin.module(kv-quantize{encoding=polar sinks=100})' 2>&1 | FileCheck %s --check-prefix=ERR-EVICT-SINKS
// EVICT-POLAR3-LABEL: func.func @evicting(
// EVICT-POLAR3:         %[[C:.+]] = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// EVICT-POLAR3:         %[[CA:.+]] = kv.append %{{.+}} into %[[C]] : {{.+}} into !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// EVICT-POLAR3:         %[[S:.+]] = kv.score %[[CA]] {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>, tensor<?x8x64xf32> -> tensor<?x2xf32>
// EVICT-POLAR3:         %[[CE:.+]] = kv.evict %[[CA]] by %[[S]] {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>, tensor<?x2xf32>
// EVICT-POLAR3:         %[[CB:.+]] = kv.append %{{.+}} into %[[CE]] : {{.+}} into !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// EVICT-POLAR3:         kv.attention %{{.+}}, %[[CB]] at {{.+}} !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// EVICT-INT-VALUES:     kv.evict {{.+}} : !kv.cache<heads = 2, head_dim = 64, value = #kv.int<bits = 2, group = 32>>, tensor<?x2xf32>
// ERR-EVICT-INT-KEYS: evicting.mlir:{{[0-9]+}}:{{[0-9]+}}: error: 'kv.evict' op cannot evict from a cache whose keys are #kv.int<bits = 2, group = 32>: KIVI quantizes keys in groups of 32 tokens, which eviction cannot split; evict with keys in f32, bf16, fp8, nvfp4 or polar, or quantize only values with int (side=value)

// Three layers: layer 2 starts out in fp8 and is read through a selection
// and a prefetch.
func.func @model(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c0 = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  %c0a = kv.append %k, %v at %pos into %c0 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o0 = kv.attention %q, %c0a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>

  %c1 = kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
  %c1a = kv.append %k, %v at %pos into %c1 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o1 = kv.attention %o0, %c1a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>

  %c2 = kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.fp8<e5m2>>
  %c2a = kv.append %k, %v at %pos into %c2 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.fp8<e5m2>>
  %sel = kv.select %o1, %c2a policy(#kv.twolevel<block = 32, top_blocks = 8, top_tokens = 256>) : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.fp8<e5m2>> -> tensor<?x2x256xi32>
  kv.prefetch %c2a mode = next_step selected %sel : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.fp8<e5m2>>, tensor<?x2x256xi32>
  %o2 = kv.attention %o1, %c2a at %pos scale = 0.125 selected %sel : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.fp8<e5m2>>, tensor<?xi32>, tensor<?x2x256xi32> -> tensor<?x8x64xf32>
  return %o2 : tensor<?x8x64xf32>
}

// BF16-LABEL: func.func @model(
// BF16:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// BF16:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
// BF16:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32>
// BF16-NOT:     #kv.fp8

// FP8-DYNAMIC-LABEL: func.func @model(
// FP8-DYNAMIC:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>
// FP8-DYNAMIC:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>
// FP8-DYNAMIC:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>

// FP8-PER-HEAD-LABEL: func.func @calibrated(
// FP8-PER-HEAD:         kv.cache layer 0 {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3>>
// FP8-PER-HEAD:         kv.cache layer 1 {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3>>

// FP8-PER-HEAD-LAYER0-LABEL: func.func @calibrated(
// FP8-PER-HEAD-LAYER0:         kv.cache layer 0 {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3>, value = #kv.fp8<e4m3>>
// FP8-PER-HEAD-LAYER0:         kv.cache layer 1 {{.+}} : !kv.cache<heads = 2, head_dim = 64>

// ERR-FP8-UNCALIBRATED: kv-quantize.mlir:{{[0-9]+}}:9: error: kv-quantize: encoding=fp8 scale=per_head needs the calibrated key scales of layer 0 ('kv.key_absmax'), which this kv.cache lacks; run `kvopt compile --calibrate FILE` or use scale=dynamic
// ERR-FP8-NO-VALUE-SCALES: calibrated.mlir:7:9: error: kv-quantize: encoding=fp8 scale=per_head needs the calibrated value scales of layer 1 ('kv.value_absmax'), which this kv.cache lacks; run `kvopt compile --calibrate FILE` or use scale=dynamic

// NVFP4-LABEL: func.func @model(
// NVFP4:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4, value = #kv.nvfp4>
// NVFP4:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4, value = #kv.nvfp4>
// NVFP4:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.nvfp4, value = #kv.nvfp4>

// The default group is 32, the default residual 128 (elided).
// INT2-LABEL: func.func @model(
// INT2:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 2, group = 32>>
// INT2:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 2, group = 32>>
// INT2:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 2, group = 32>>

// INT4-LABEL: func.func @model(
// INT4:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 4, group = 64, residual = 256>, value = #kv.int<bits = 4, group = 64, residual = 256>>
// INT4:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 4, group = 64, residual = 256>, value = #kv.int<bits = 4, group = 64, residual = 256>>
// INT4:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.int<bits = 4, group = 64, residual = 256>, value = #kv.int<bits = 4, group = 64, residual = 256>>

// POLAR2-LABEL: func.func @model(
// POLAR2:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 2>, value = #kv.polar<bits = 2>>
// POLAR2:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 2>, value = #kv.polar<bits = 2>>
// POLAR2:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 2>, value = #kv.polar<bits = 2>>

// Every value that carries a cache on gets the new type: the appends and the
// readers that take them.
// POLAR3-LABEL: func.func @model(
// POLAR3:         %[[C0:.+]] = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         %[[C0A:.+]] = kv.append %{{.+}}, %{{.+}} at %{{.+}} into %[[C0]] : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         kv.attention %{{.+}}, %[[C0A]] at %{{.+}} : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>, tensor<?xi32> -> tensor<?x8x64xf32>
// POLAR3:         %[[C1:.+]] = kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         %[[C1A:.+]] = kv.append %{{.+}} into %[[C1]] : {{.+}} into !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         kv.attention %{{.+}}, %[[C1A]] at {{.+}} !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         %[[C2:.+]] = kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         %[[C2A:.+]] = kv.append %{{.+}} into %[[C2]] : {{.+}} into !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3:         %[[SEL:.+]] = kv.select %{{.+}}, %[[C2A]] {{.+}} !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>> -> tensor<?x2x256xi32>
// POLAR3:         kv.prefetch %[[C2A]] mode = next_step selected %[[SEL]] : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>, tensor<?x2x256xi32>
// POLAR3:         kv.attention %{{.+}}, %[[C2A]] at {{.+}} selected %[[SEL]] : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 3, seed = 7>, value = #kv.polar<bits = 3, seed = 7>>
// POLAR3-NOT:     #kv.fp8

// The default bits is 4.
// POLAR4-LABEL: func.func @model(
// POLAR4:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4, seed = 42>, value = #kv.polar<bits = 4, seed = 42>>
// POLAR4:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4, seed = 42>, value = #kv.polar<bits = 4, seed = 42>>
// POLAR4:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 4, seed = 42>, value = #kv.polar<bits = 4, seed = 42>>

// SIDE-KEY-LABEL: func.func @model(
// SIDE-KEY:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3, scale = dynamic>>
// SIDE-KEY:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3, scale = dynamic>>
// SIDE-KEY:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e5m2>>

// SIDE-VALUE-LABEL: func.func @model(
// SIDE-VALUE:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, value = #kv.nvfp4>
// SIDE-VALUE:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, value = #kv.nvfp4>
// SIDE-VALUE:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.nvfp4>

// INT-KEYS-POLAR-VALUES-LABEL: func.func @model(
// INT-KEYS-POLAR-VALUES:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 4, group = 32>, value = #kv.polar<bits = 3>>
// INT-KEYS-POLAR-VALUES:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 4, group = 32>, value = #kv.polar<bits = 3>>
// INT-KEYS-POLAR-VALUES:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.int<bits = 4, group = 32>, value = #kv.polar<bits = 3>>

// MIXED-LABEL: func.func @model(
// MIXED:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// MIXED:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3>, value = #kv.int<bits = 2, group = 32>>
// MIXED:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32>

// QJL-LABEL: func.func @model(
// QJL:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// QJL:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, qjl = true>, value = #kv.polar<bits = 3>>
// QJL:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e5m2>, value = #kv.fp8<e5m2>>

// INT-KEY-BITS-LABEL: func.func @model(
// INT-KEY-BITS:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 4, group = 32>>
// INT-KEY-BITS:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 4, group = 32>>
// INT-KEY-BITS:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 4, group = 32>>

// POLAR-VALUE-BITS-LABEL: func.func @model(
// POLAR-VALUE-BITS:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 1>, value = #kv.polar<bits = 2, seed = 1>>
// POLAR-VALUE-BITS:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3, seed = 1>, value = #kv.polar<bits = 2, seed = 1>>
// POLAR-VALUE-BITS:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 3, seed = 1>, value = #kv.polar<bits = 2, seed = 1>>

// POLAR-BOTH-BITS-LABEL: func.func @model(
// POLAR-BOTH-BITS:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 2>>
// POLAR-BOTH-BITS:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 2>>
// POLAR-BOTH-BITS:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 2>>

// KEEP-BOTH-LABEL: func.func @model(
// KEEP-BOTH:         %[[C0:.+]] = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// KEEP-BOTH:         kv.append {{.+}} into %[[C0]] : {{.+}} into !kv.cache<heads = 2, head_dim = 64>
// KEEP-BOTH:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 3>, value = #kv.polar<bits = 3>>
// KEEP-BOTH:         %[[C2:.+]] = kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32>
// KEEP-BOTH:         kv.append {{.+}} into %[[C2]] : {{.+}} into !kv.cache<heads = 2, head_dim = 64, page = 32>

// KEEP-FIRST-LABEL: func.func @model(
// KEEP-FIRST:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// KEEP-FIRST:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
// KEEP-FIRST:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.nvfp4, value = #kv.nvfp4>

// KEEP-LAST-LABEL: func.func @model(
// KEEP-LAST:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 2, group = 32>>
// KEEP-LAST:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
// KEEP-LAST:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32>

// KEEP-ALL-LABEL: func.func @model(
// KEEP-ALL:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
// KEEP-ALL:         kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
// KEEP-ALL:         kv.cache layer 2 : !kv.cache<heads = 2, head_dim = 64, page = 32>
// KEEP-ALL-NOT:     #kv.int

// ERR-ENCODING: error: kv-quantize: option 'encoding' is 'lz4'; allowed: f32, bf16, fp8, nvfp4, int, polar
// ERR-SCALE: error: kv-quantize: option 'scale' is 'static'; allowed for encoding=fp8: per_head, dynamic
// ERR-INT-BITS: error: kv-quantize: option 'bits' is 3; allowed for encoding=int: 2, 4
// ERR-INT-VALUE-BITS: error: kv-quantize: option 'bits' is 8; allowed for encoding=int: 2, 4
// ERR-POLAR-BITS: error: kv-quantize: option 'bits' is 5; allowed for encoding=polar: 2, 3, 4
// ERR-POLAR-KEY-BITS: error: kv-quantize: option 'bits' is 1; allowed for encoding=polar: 2, 3, 4
// ERR-GROUP: error: kv-quantize: option 'group' is 48; allowed for encoding=int: 32, 64, 128
// ERR-RESIDUAL: error: kv-quantize: option 'residual' is 96; allowed for encoding=int: a multiple of group (64)
// ERR-NO-CACHE: error: kv-quantize: option 'bits' is 5; allowed for encoding=int: 2, 4
// ERR-BF16-BITS: error: kv-quantize: option 'bits' is 3; encoding=bf16 has a fixed width, only int and polar take bits
// ERR-FP8-KEY-BITS: error: kv-quantize: option 'bits' is 4; encoding=fp8 has a fixed width, only int and polar take bits
// ERR-NVFP4-VALUE-BITS: error: kv-quantize: option 'bits' is 4; encoding=nvfp4 has a fixed width, only int and polar take bits
// ERR-SIDE: error: kv-quantize: option 'side' is 'keys'; allowed: key, value, both
// ERR-QJL-BOTH: error: kv-quantize: option 'qjl' is true with side=both; the QJL residual corrects attention scores, so it is for keys only: add side=key and encode the values in a kv-quantize of their own
// ERR-QJL-VALUE: error: kv-quantize: option 'qjl' is true with side=value; the QJL residual corrects attention scores, so it is for keys only
// ERR-QJL-INT: error: kv-quantize: option 'qjl' is true; only encoding=polar has a QJL residual
// ERR-LAYERS-SYNTAX: error: kv-quantize: option 'layers': '1:3' is not a layer range: write N, -N (counting from the end, -1 is the last layer) or A-B (A to B inclusive), with indices up to 1048576
// ERR-LAYERS-BACKWARDS: error: kv-quantize: option 'layers': layer range 3-1 runs backwards; write the lower index first
// ERR-LAYERS-HUGE: error: kv-quantize: option 'layers': '99999999' is not a layer range
// ERR-LAYERS-RANGE: error: kv-quantize: option 'layers': layer 3 does not exist in a model of 3 layers (0 to 2, or -3 to -1)
// ERR-LAYERS-NEGATIVE: error: kv-quantize: option 'layers': layer -4 does not exist in a model of 3 layers (0 to 2, or -3 to -1)
// ERR-LAYERS-RESOLVED-BACKWARDS: error: kv-quantize: option 'layers': layer range 2--2 runs backwards in a model of 3 layers (it is 2-1)
// ERR-LAYERS-NO-CACHE: error: kv-quantize: option 'layers': layer 0 does not exist in a model without layers
// ERR-GROUP-HEAD-DIM: error: !kv.cache value encoding: #kv.int groups values along channels, but group 128 does not divide head_dim 64; allowed groups: 32 64
// ERR-POLAR-HEAD-DIM: error: !kv.cache key encoding: #kv.polar rotates with a Hadamard transform, which needs a power-of-two head_dim, got 96
// ERR-GROUP-96: error: !kv.cache value encoding: #kv.int groups values along channels, but group 64 does not divide head_dim 96; allowed groups: 32
// ERR-NVFP4-HEAD-DIM: error: !kv.cache key encoding: #kv.nvfp4 scales blocks of 16 coordinates, but head_dim 40 is not a multiple of 16

// NVFP4-96-LABEL: func.func @layer(
// NVFP4-96:         kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 96, key = #kv.nvfp4, value = #kv.nvfp4>
// INT-96-LABEL: func.func @layer(
// INT-96:         kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 96, key = #kv.int<bits = 4, group = 32>, value = #kv.int<bits = 4, group = 32>>

// POLAR-EXACT-LABEL: func.func @model(
// POLAR-EXACT:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4, sinks = 4, window = 64>, value = #kv.polar<bits = 4, sinks = 4, window = 64>>
// FP8-WINDOW:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3, scale = dynamic, window = 64>, value = #kv.fp8<e4m3, scale = dynamic, window = 64>>
// NVFP4-WINDOW:         kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4<sinks = 2, window = 64>, value = #kv.nvfp4<sinks = 2, window = 64>>
// ERR-WINDOW-BF16: error: kv-quantize: option 'window' is 64; only encoding=polar, fp8 and nvfp4 keep exact tokens (int keeps its residual, kv-lowrank its own sinks and window)
// ERR-WINDOW-LARGE: error: #kv.polar keeps 5000 window tokens exact; at most 4096 are allowed
// ERR-EVICT-SINKS: error: 'kv.evict' op cannot evict from a cache whose keys keep their first 100 tokens exact (#kv.polar<bits = 4, sinks = 100>) under a policy that keeps {{[0-9]+}} sinks: compaction would move them; give the policy sinks of at least 100
