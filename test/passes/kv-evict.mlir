// kv-evict inserts, after the kv.attention of each selected layer (all by
// default), a kv.score of the cache the attention read, with the
// attention's queries, and a kv.evict by those scores under the policy.

// Each method, with a fraction or a token count as budget; the defaults
// are elided when printed.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25})' | FileCheck %s --check-prefix=TRI
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=snapkv budget=1024 observe=16 kernel=5})' | FileCheck %s --check-prefix=SNAPKV
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=h2o budget=1e-1 window=64 sinks=4 interval=32})' | FileCheck %s --check-prefix=H2O
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=streaming budget=2048})' | FileCheck %s --check-prefix=STREAMING
// RUN: kvopt-opt %s --kv-evict='method=streaming budget=0.5 window=16 sinks=0' | FileCheck %s --check-prefix=STREAMING-EXPLICIT
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=1.})' | FileCheck %s --check-prefix=WHOLE

// heads=shared (the default, elided when printed) selects once per layer,
// heads=each per KV head; streaming keeps the same entries in every head
// and has no heads.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 heads=each})' | FileCheck %s --check-prefix=TRI-EACH
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 heads=each})' | kvopt-opt | FileCheck %s --check-prefix=TRI-EACH
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 heads=shared})' | FileCheck %s --check-prefix=TRI
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=snapkv budget=1024 heads=each})' | FileCheck %s --check-prefix=SNAPKV-EACH
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5 heads=each})' | FileCheck %s --check-prefix=H2O-EACH

// horizon= is TriAttention's largest future distance; the default (the
// reference code's 65536) is elided when printed.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 horizon=4096})' | FileCheck %s --check-prefix=TRI-HORIZON
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 horizon=4096})' | kvopt-opt | FileCheck %s --check-prefix=TRI-HORIZON
// combine= is how TriAttention combines a KV head's query heads: the mean
// (the default, not printed) or the standardised maximum.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 heads=each combine=zmax})' | kvopt-opt | FileCheck %s --check-prefix=TRI-ZMAX
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 combine=mean})' | FileCheck %s --check-prefix=TRI
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25 horizon=65536})' | FileCheck %s --check-prefix=TRI

// layers= selects layers as kv-quantize's does; a later invocation replaces
// the policy an earlier one gave the same layers, and only those.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=h2o budget=512 layers=1})' | FileCheck %s --check-prefix=ONE-LAYER
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25},kv-evict{method=streaming budget=1024 layers=0,-1})' | FileCheck %s --check-prefix=OVERRIDE
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25},kv-evict{method=streaming budget=1024 layers={0,-1}})' | FileCheck %s --check-prefix=OVERRIDE
// Re-running replaces the pair rather than adding one.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5},kv-evict{method=h2o budget=0.25})' | FileCheck %s --check-prefix=RERUN
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.5})' | kvopt-opt --pass-pipeline='builtin.module(kv-evict{method=h2o budget=0.25})' | FileCheck %s --check-prefix=RERUN

// The printed IR parses back (text, generic form, bytecode), and the
// kv.evict, whose result nothing reads, survives canonicalization and CSE:
// it writes the cache.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25})' | kvopt-opt | FileCheck %s --check-prefix=TRI
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25})' --mlir-print-op-generic | kvopt-opt | FileCheck %s --check-prefix=TRI
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25})' --emit-bytecode | kvopt-opt | FileCheck %s --check-prefix=TRI
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25},canonicalize,cse)' | FileCheck %s --check-prefix=TRI

// A kv-quantize after kv-evict gives the score and the eviction the new
// cache type.
// RUN: kvopt-opt %s --pass-pipeline='builtin.module(kv-evict{method=triattention budget=0.25},kv-quantize{encoding=polar bits=4})' | FileCheck %s --check-prefix=POLAR

// Three layers of 8 query heads over 2 KV heads of 64, each with its
// calibrated query centres; layer 2 pages 32 tokens in fp8.
func.func @model(%x: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c0 = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %c0a = kv.append %k, %v at %pos into %c0 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q0 = kv.rope %x, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o0 = kv.attention %q0, %c0a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>

  %c1 = kv.cache layer 1 {kv.query_center = dense<0.25> : tensor<8x32x2xf32>, kv.query_magnitude = dense<0.5> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64>
  %c1a = kv.append %k, %v at %pos into %c1 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q1 = kv.rope %o0, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o1 = kv.attention %q1, %c1a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>

  %c2 = kv.cache layer 2 {kv.query_center = dense<-0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<2.0> : tensor<8x32xf32>} : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>
  %c2a = kv.append %k, %v at %pos into %c2 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>
  %q2 = kv.rope %o1, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o2 = kv.attention %q2, %c2a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o2 : tensor<?x8x64xf32>
}

// The pair follows each attention and reads the cache it read and its
// queries.
// TRI-LABEL: func.func @model(
// TRI:         %[[C0:.+]] = kv.cache layer 0
// TRI:         %[[C0A:.+]] = kv.append %{{.+}} into %[[C0]]
// TRI:         %[[Q0:.+]] = kv.rope
// TRI:         kv.attention %[[Q0]], %[[C0A]]
// TRI-NEXT:    %[[S0:.+]] = kv.score %[[C0A]] policy(#kv.triattention<budget = 2.500000e-01 : f64>) queries %[[Q0]] : !kv.cache<heads = 2, head_dim = 64>, tensor<?x8x64xf32> -> tensor<?x2xf32>
// TRI-NEXT:    kv.evict %[[C0A]] by %[[S0]] policy(#kv.triattention<budget = 2.500000e-01 : f64>) : !kv.cache<heads = 2, head_dim = 64>, tensor<?x2xf32>
// TRI:         %[[C1:.+]] = kv.cache layer 1
// TRI:         %[[C1A:.+]] = kv.append %{{.+}} into %[[C1]]
// TRI:         %[[Q1:.+]] = kv.rope
// TRI:         kv.attention %[[Q1]], %[[C1A]]
// TRI-NEXT:    %[[S1:.+]] = kv.score %[[C1A]] policy(#kv.triattention<budget = 2.500000e-01 : f64>) queries %[[Q1]]
// TRI-NEXT:    kv.evict %[[C1A]] by %[[S1]] policy(#kv.triattention<budget = 2.500000e-01 : f64>)
// TRI:         %[[C2:.+]] = kv.cache layer 2
// TRI:         %[[C2A:.+]] = kv.append %{{.+}} into %[[C2]]
// TRI:         %[[Q2:.+]] = kv.rope
// TRI:         kv.attention %[[Q2]], %[[C2A]]
// TRI-NEXT:    %[[S2:.+]] = kv.score %[[C2A]] policy(#kv.triattention<budget = 2.500000e-01 : f64>) queries %[[Q2]] : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>, tensor<?x8x64xf32> -> tensor<?x2xf32>
// TRI-NEXT:    kv.evict %[[C2A]] by %[[S2]] policy(#kv.triattention<budget = 2.500000e-01 : f64>) : !kv.cache<heads = 2, head_dim = 64, page = 32, key = #kv.fp8<e4m3, scale = dynamic>, value = #kv.fp8<e4m3, scale = dynamic>>, tensor<?x2xf32>
// TRI-NEXT:    return

// SNAPKV-LABEL: func.func @model(
// SNAPKV-COUNT-3: kv.attention
// SNAPKV-NEXT:    kv.score {{.+}} policy(#kv.snapkv<budget = 1024 : i64, observe = 16, kernel = 5>)
// SNAPKV-NEXT:    kv.evict {{.+}} policy(#kv.snapkv<budget = 1024 : i64, observe = 16, kernel = 5>)

// H2O-LABEL: func.func @model(
// H2O:         kv.score {{.+}} policy(#kv.h2o<budget = 1.000000e-01 : f64, window = 64, interval = 32, sinks = 4>)
// H2O-NEXT:    kv.evict {{.+}} policy(#kv.h2o<budget = 1.000000e-01 : f64, window = 64, interval = 32, sinks = 4>)

// StreamingLLM keeps 4 sinks and no window by default.
// STREAMING-LABEL: func.func @model(
// STREAMING:         kv.evict {{.+}} policy(#kv.streaming<budget = 2048 : i64>)
// STREAMING-EXPLICIT-LABEL: func.func @model(
// STREAMING-EXPLICIT:         kv.evict {{.+}} policy(#kv.streaming<budget = 5.000000e-01 : f64, window = 16, sinks = 0>)

// WHOLE:         kv.evict {{.+}} policy(#kv.triattention<budget = 1.000000e+00 : f64>)

// TRI-EACH-LABEL: func.func @model(
// TRI-EACH-COUNT-3: kv.evict {{.+}} policy(#kv.triattention<budget = 2.500000e-01 : f64, heads = each>)
// TRI-ZMAX-LABEL: func.func @model(
// TRI-ZMAX-COUNT-3: kv.evict {{.+}} policy(#kv.triattention<budget = 2.500000e-01 : f64, heads = each, combine = zmax>)
// TRI-HORIZON-LABEL: func.func @model(
// TRI-HORIZON-COUNT-3: kv.evict {{.+}} policy(#kv.triattention<budget = 2.500000e-01 : f64, horizon = 4096>)
// SNAPKV-EACH: kv.evict {{.+}} policy(#kv.snapkv<budget = 1024 : i64, heads = each>)
// H2O-EACH: kv.evict {{.+}} policy(#kv.h2o<budget = 5.000000e-01 : f64, heads = each>)

// ONE-LAYER-LABEL: func.func @model(
// ONE-LAYER:         kv.cache layer 0
// ONE-LAYER-NOT:     kv.evict
// ONE-LAYER:         kv.cache layer 1
// ONE-LAYER:         kv.attention
// ONE-LAYER-NEXT:    kv.score {{.+}} policy(#kv.h2o<budget = 512 : i64>)
// ONE-LAYER-NEXT:    kv.evict {{.+}} policy(#kv.h2o<budget = 512 : i64>)
// ONE-LAYER-NOT:     kv.evict

// OVERRIDE-LABEL: func.func @model(
// OVERRIDE:         kv.cache layer 0
// OVERRIDE:         kv.attention
// OVERRIDE-NEXT:    kv.score {{.+}} policy(#kv.streaming<budget = 1024 : i64>)
// OVERRIDE-NEXT:    kv.evict {{.+}} policy(#kv.streaming<budget = 1024 : i64>)
// OVERRIDE-NOT:     kv.evict
// OVERRIDE:         kv.cache layer 1
// OVERRIDE:         kv.attention
// OVERRIDE-NEXT:    kv.score {{.+}} policy(#kv.triattention<budget = 2.500000e-01 : f64>)
// OVERRIDE-NEXT:    kv.evict {{.+}} policy(#kv.triattention<budget = 2.500000e-01 : f64>)
// OVERRIDE-NOT:     kv.evict
// OVERRIDE:         kv.cache layer 2
// OVERRIDE:         kv.attention
// OVERRIDE-NEXT:    kv.score {{.+}} policy(#kv.streaming<budget = 1024 : i64>)
// OVERRIDE-NEXT:    kv.evict {{.+}} policy(#kv.streaming<budget = 1024 : i64>)
// OVERRIDE-NOT:     kv.evict

// RERUN-LABEL: func.func @model(
// RERUN-NOT:     5.000000e-01 : f64
// RERUN-COUNT-3: kv.evict {{.+}} policy(#kv.h2o<budget = 2.500000e-01 : f64>)
// RERUN-NOT:     kv.evict

// POLAR-LABEL: func.func @model(
// POLAR:         kv.score {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 4>>, tensor<?x8x64xf32> -> tensor<?x2xf32>
// POLAR-NEXT:    kv.evict {{.+}} : !kv.cache<heads = 2, head_dim = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 4>>, tensor<?x2xf32>
