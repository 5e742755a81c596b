// Every kv op prints in its custom form and parses back (twice, so the
// printed form is a fixed point), and survives a trip through the generic
// form.
// RUN: kvopt-opt %s --split-input-file | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --split-input-file --mlir-print-op-generic | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --split-input-file --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC
// RUN: kvopt-opt %s --emit-bytecode | kvopt-opt | FileCheck %s

// CHECK-LABEL: func.func @embedding(
// CHECK-SAME:    %[[TABLE:.+]]: tensor<2048x128xbf16>, %[[TOKENS:.+]]: tensor<?xi32>)
// CHECK:         %[[X:.+]] = kv.embedding %[[TABLE]][%[[TOKENS]]] : tensor<2048x128xbf16>, tensor<?xi32> -> tensor<?x128xf32>
// CHECK:         return %[[X]]
// GENERIC-LABEL: sym_name = "embedding"
// GENERIC:       "kv.embedding"(%{{.+}}, %{{.+}}) : (tensor<2048x128xbf16>, tensor<?xi32>) -> tensor<?x128xf32>
func.func @embedding(%table: tensor<2048x128xbf16>, %tokens: tensor<?xi32>) -> tensor<?x128xf32> {
  %x = kv.embedding %table[%tokens] : tensor<2048x128xbf16>, tensor<?xi32> -> tensor<?x128xf32>
  return %x : tensor<?x128xf32>
}

// -----

// CHECK-LABEL: func.func @rms_norm(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<?x128xf32>, %[[W:[^:]+]]: tensor<128xf32>, %[[H:[^:]+]]: tensor<?x8x16xf32>, %[[HW:[^:]+]]: tensor<16xf32>)
// CHECK:         kv.rms_norm %[[X]], %[[W]] epsilon = 9.9999999999999995E-7 : tensor<?x128xf32>, tensor<128xf32>
// CHECK:         kv.rms_norm %[[H]], %[[HW]] epsilon = 1.000000e-05 : tensor<?x8x16xf32>, tensor<16xf32>
// GENERIC-LABEL: sym_name = "rms_norm"
// GENERIC:       "kv.rms_norm"(%{{.+}}, %{{.+}}) <{epsilon = 9.9999999999999995E-7 : f64}> : (tensor<?x128xf32>, tensor<128xf32>) -> tensor<?x128xf32>
func.func @rms_norm(%x: tensor<?x128xf32>, %w: tensor<128xf32>, %h: tensor<?x8x16xf32>, %hw: tensor<16xf32>) {
  %y = kv.rms_norm %x, %w epsilon = 1.0e-06 : tensor<?x128xf32>, tensor<128xf32>
  // Per-head norm (Qwen3's q/k norms).
  %z = kv.rms_norm %h, %hw epsilon = 1.0e-05 : tensor<?x8x16xf32>, tensor<16xf32>
  return
}

// -----

// CHECK-LABEL: func.func @linear(
// CHECK-SAME:    %[[X:[^:]+]]: tensor<?x896xf32>, %[[W:[^:]+]]: tensor<128x896xf32>, %[[B:[^:]+]]: tensor<128xf32>)
// CHECK:         %[[Y:.+]] = kv.linear %[[X]], %[[W]] : tensor<?x896xf32>, tensor<128x896xf32> -> tensor<?x128xf32>
// CHECK:         %[[Z:.+]] = kv.linear %[[X]], %[[W]] bias %[[B]] : tensor<?x896xf32>, tensor<128x896xf32>, tensor<128xf32> -> tensor<?x128xf32>
// CHECK:         return %[[Y]], %[[Z]]
// GENERIC-LABEL: sym_name = "linear"
// GENERIC:       "kv.linear"(%{{[^,]+}}, %{{[^,]+}}) : (tensor<?x896xf32>, tensor<128x896xf32>) -> tensor<?x128xf32>
// GENERIC:       "kv.linear"(%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}) : (tensor<?x896xf32>, tensor<128x896xf32>, tensor<128xf32>) -> tensor<?x128xf32>
func.func @linear(%x: tensor<?x896xf32>, %w: tensor<128x896xf32>, %b: tensor<128xf32>) -> (tensor<?x128xf32>, tensor<?x128xf32>) {
  %y = kv.linear %x, %w : tensor<?x896xf32>, tensor<128x896xf32> -> tensor<?x128xf32>
  %z = kv.linear %x, %w bias %b : tensor<?x896xf32>, tensor<128x896xf32>, tensor<128xf32> -> tensor<?x128xf32>
  return %y, %z : tensor<?x128xf32>, tensor<?x128xf32>
}

// -----

// CHECK-LABEL: func.func @rope(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<?x8x16xf32>, %[[POS:[^:]+]]: tensor<?xi32>)
// CHECK:         kv.rope %[[Q]], %[[POS]] theta = 1.000000e+04 style = half : tensor<?x8x16xf32>, tensor<?xi32>
// CHECK:         kv.rope %[[Q]], %[[POS]] theta = 5.000000e+05 style = interleaved : tensor<?x8x16xf32>, tensor<?xi32>
// CHECK:         kv.rope %[[Q]], %[[POS]] theta = 1.000000e+04 style = half scaling(#kv.rope_linear<factor = 4.0>) : tensor<?x8x16xf32>, tensor<?xi32>
// CHECK:         kv.rope %[[Q]], %[[POS]] theta = 5.000000e+05 style = half scaling(#kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>) : tensor<?x8x16xf32>, tensor<?xi32>
// CHECK:         kv.rope %[[Q]], %[[POS]] theta = 1.000000e+06 style = interleaved scaling(#kv.rope_yarn<factor = 4.0, original_max_position = 32768, attention_factor = 1.1386>) : tensor<?x8x16xf32>, tensor<?xi32>
// CHECK:         kv.rope %[[Q]], %[[POS]] theta = 1.000000e+04 style = half scaling(#kv.rope_linear<factor = 1.0e-04>) : tensor<?x8x16xf32>, tensor<?xi32>
// GENERIC-LABEL: sym_name = "rope"
// GENERIC:       "kv.rope"(%{{.+}}, %{{.+}}) <{style = #kv<rope_style half>, theta = 1.000000e+04 : f64}> : (tensor<?x8x16xf32>, tensor<?xi32>) -> tensor<?x8x16xf32>
// GENERIC:       "kv.rope"(%{{.+}}, %{{.+}}) <{style = #kv<rope_style interleaved>, theta = 5.000000e+05 : f64}>
// GENERIC:       "kv.rope"(%{{.+}}, %{{.+}}) <{scaling = #kv.rope_linear<factor = 4.0>, style = #kv<rope_style half>, theta = 1.000000e+04 : f64}>
// GENERIC:       <{scaling = #kv.rope_llama3<
// GENERIC:       <{scaling = #kv.rope_yarn<
func.func @rope(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  %0 = kv.rope %q, %pos theta = 1.0e+04 style = half : tensor<?x8x16xf32>, tensor<?xi32>
  %1 = kv.rope %q, %pos theta = 5.0e+05 style = interleaved : tensor<?x8x16xf32>, tensor<?xi32>
  %2 = kv.rope %q, %pos theta = 1.0e+04 style = half scaling(#kv.rope_linear<factor = 4.0>) : tensor<?x8x16xf32>, tensor<?xi32>
  %3 = kv.rope %q, %pos theta = 5.0e+05 style = half
         scaling(#kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0,
                                 high_freq_factor = 4.0, original_max_position = 8192>)
         : tensor<?x8x16xf32>, tensor<?xi32>
  %4 = kv.rope %q, %pos theta = 1.0e+06 style = interleaved
         scaling(#kv.rope_yarn<factor = 4.0, original_max_position = 32768,
                               beta_fast = 32.0, beta_slow = 1.0, attention_factor = 1.1386>)
         : tensor<?x8x16xf32>, tensor<?xi32>
  %5 = kv.rope %q, %pos theta = 1.0e+04 style = half scaling(#kv.rope_linear<factor = 1.0e-04>) : tensor<?x8x16xf32>, tensor<?xi32>
  return
}

// -----

// CHECK-LABEL: func.func @swiglu(
// CHECK-SAME:    %[[G:[^:]+]]: tensor<?x384xf32>, %[[U:[^:]+]]: tensor<?x384xf32>)
// CHECK:         %[[H:.+]] = kv.swiglu %[[G]], %[[U]] : tensor<?x384xf32>
// CHECK:         return %[[H]]
// GENERIC-LABEL: sym_name = "swiglu"
// GENERIC:       "kv.swiglu"(%{{.+}}, %{{.+}}) : (tensor<?x384xf32>, tensor<?x384xf32>) -> tensor<?x384xf32>
func.func @swiglu(%g: tensor<?x384xf32>, %u: tensor<?x384xf32>) -> tensor<?x384xf32> {
  %h = kv.swiglu %g, %u : tensor<?x384xf32>
  return %h : tensor<?x384xf32>
}

// -----

// CHECK-LABEL: func.func @lm_head(
// CHECK-SAME:    %[[H:[^:]+]]: tensor<?x128xf32>, %[[TABLE:[^:]+]]: tensor<2048x128xf32>)
// CHECK:         %[[L:.+]] = kv.lm_head %[[H]], %[[TABLE]] : tensor<?x128xf32>, tensor<2048x128xf32> -> tensor<?x2048xf32>
// CHECK:         return %[[L]]
// GENERIC-LABEL: sym_name = "lm_head"
// GENERIC:       "kv.lm_head"(%{{.+}}, %{{.+}}) : (tensor<?x128xf32>, tensor<2048x128xf32>) -> tensor<?x2048xf32>
func.func @lm_head(%h: tensor<?x128xf32>, %table: tensor<2048x128xf32>) -> tensor<?x2048xf32> {
  %logits = kv.lm_head %h, %table : tensor<?x128xf32>, tensor<2048x128xf32> -> tensor<?x2048xf32>
  return %logits : tensor<?x2048xf32>
}

// -----

// CHECK-LABEL: func.func @cache_append_attention(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<?x8x16xf32>, %[[K:[^:]+]]: tensor<?x4x16xf32>, %[[V:[^:]+]]: tensor<?x4x16xf32>, %[[POS:[^:]+]]: tensor<?xi32>, %[[SEL:[^:]+]]: tensor<?x4x256xi32>)
// CHECK:         %[[C:.+]] = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
// CHECK:         %[[C1:.+]] = kv.append %[[K]], %[[V]] at %[[POS]] into %[[C]] : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
// CHECK:         kv.attention %[[Q]], %[[C1]] at %[[POS]] scale = 2.500000e-01 : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
// CHECK:         kv.attention %[[Q]], %[[C1]] at %[[POS]] scale = 2.500000e-01 {sliding_window = 4096 : i64} : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
// CHECK:         kv.attention %[[Q]], %[[C1]] at %[[POS]] scale = 2.500000e-01 selected %[[SEL]] : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<?x4x256xi32> -> tensor<?x8x16xf32>
// CHECK:         kv.attention %[[Q]], %[[C1]] at %[[POS]] scale = 2.500000e-01 selected %[[SEL]] {sliding_window = 128 : i64} : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<?x4x256xi32> -> tensor<?x8x16xf32>
// CHECK:         kv.cache layer 31 : !kv.cache<heads = 2, head_dim = 128, page = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.int<bits = 2, group = 32>>
// GENERIC-LABEL: sym_name = "cache_append_attention"
// GENERIC:       %[[C:.+]] = "kv.cache"() <{layer = 0 : i64}> : () -> !kv.cache<heads = 4, head_dim = 16>
// GENERIC:       %[[C1:.+]] = "kv.append"(%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %[[C]]) : (tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32>, !kv.cache<heads = 4, head_dim = 16>) -> !kv.cache<heads = 4, head_dim = 16>
// GENERIC:       "kv.attention"(%{{[^,]+}}, %[[C1]], %{{[^,]+}}) <{scale = 2.500000e-01 : f64}>
// GENERIC:       "kv.attention"(%{{[^,]+}}, %[[C1]], %{{[^,]+}}) <{scale = 2.500000e-01 : f64, sliding_window = 4096 : i64}>
// GENERIC:       "kv.attention"(%{{[^,]+}}, %[[C1]], %{{[^,]+}}, %{{[^,]+}}) <{scale = 2.500000e-01 : f64}>
// GENERIC:       "kv.attention"(%{{[^,]+}}, %[[C1]], %{{[^,]+}}, %{{[^,]+}}) <{scale = 2.500000e-01 : f64, sliding_window = 128 : i64}>
func.func @cache_append_attention(%q: tensor<?x8x16xf32>, %k: tensor<?x4x16xf32>, %v: tensor<?x4x16xf32>, %pos: tensor<?xi32>, %sel: tensor<?x4x256xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  %c1 = kv.append %k, %v at %pos into %c
      : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  %o0 = kv.attention %q, %c1 at %pos scale = 0.25
      : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
  %o1 = kv.attention %q, %c1 at %pos scale = 0.25 {sliding_window = 4096}
      : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
  %o2 = kv.attention %q, %c1 at %pos scale = 0.25 selected %sel
      : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<?x4x256xi32> -> tensor<?x8x16xf32>
  %o3 = kv.attention %q, %c1 at %pos scale = 0.25 selected %sel {sliding_window = 128}
      : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<?x4x256xi32> -> tensor<?x8x16xf32>
  %big = kv.cache layer 31 : !kv.cache<heads = 2, head_dim = 128, page = 64, key = #kv.polar<bits = 3, seed = 7>, value = #kv.int<bits = 2, group = 32>>
  return
}

// -----

// Static shapes check as well as dynamic ones.
// CHECK-LABEL: func.func @static_attention(
// CHECK:         kv.append %{{.+}}, %{{.+}} at %{{.+}} into %{{.+}} : tensor<5x2x64xf32>, tensor<5x2x64xf32>, tensor<5xi64> into !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4>
// CHECK:         kv.attention %{{.+}} scale = 1.250000e-01 : tensor<5x6x64xf32>, !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4>, tensor<5xi64> -> tensor<5x6x64xf32>
func.func @static_attention(%q: tensor<5x6x64xf32>, %k: tensor<5x2x64xf32>, %v: tensor<5x2x64xf32>, %pos: tensor<5xi64>) -> tensor<5x6x64xf32> {
  %c = kv.cache layer 3 : !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4>
  %c1 = kv.append %k, %v at %pos into %c : tensor<5x2x64xf32>, tensor<5x2x64xf32>, tensor<5xi64> into !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4>
  %o = kv.attention %q, %c1 at %pos scale = 0.125 : tensor<5x6x64xf32>, !kv.cache<heads = 2, head_dim = 64, key = #kv.nvfp4>, tensor<5xi64> -> tensor<5x6x64xf32>
  return %o : tensor<5x6x64xf32>
}

// -----

// Every method scores with the queries of the layer's attention.
// CHECK-LABEL: func.func @score(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<?x8x16xf32>)
// CHECK:         %[[C:.+]] = kv.cache layer 0
// CHECK:         kv.score %[[C]] policy(#kv.h2o<budget = 1024 : i64>) queries %[[Q]] : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
// CHECK:         kv.score %[[C]] policy(#kv.snapkv<budget = 2.500000e-01 : f64, observe = 16>) queries %[[Q]] : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
// CHECK:         kv.score %[[C]] policy(#kv.streaming<budget = 1024 : i64>) queries %[[Q]] : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
// CHECK:         kv.score %[[C]] policy(#kv.triattention<budget = 5.000000e-01 : f64, window = 64, interval = 32>) queries %[[Q]] : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
// GENERIC-LABEL: sym_name = "score"
// GENERIC:       "kv.score"(%{{[^,]+}}, %{{[^,]+}}) <{policy = #kv.h2o<budget = 1024 : i64>}> : (!kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32>) -> tensor<?x4xf32>
// GENERIC:       "kv.score"(%{{[^,]+}}, %{{[^,]+}}) <{policy = #kv.snapkv<
// GENERIC:       "kv.score"(%{{[^,]+}}, %{{[^,]+}}) <{policy = #kv.streaming<budget = 1024 : i64>}> : (!kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32>) -> tensor<?x4xf32>
func.func @score(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  %0 = kv.score %c policy(#kv.h2o<budget = 1024, window = 128>) queries %q
      : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  %1 = kv.score %c policy(#kv.snapkv<budget = 0.25, observe = 16, kernel = 7>) queries %q
      : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  %2 = kv.score %c policy(#kv.streaming<budget = 1024, sinks = 4>) queries %q
      : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  %3 = kv.score %c policy(#kv.triattention<budget = 0.5, window = 64, interval = 32>) queries %q
      : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  return
}

// -----

// kv.evict reads the scores of a kv.score of the same cache and policy;
// its result carries the cache on.
// CHECK-LABEL: func.func @evict(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<?x8x16xf32>)
// CHECK:         %[[C:.+]] = kv.cache layer 2
// CHECK:         %[[S:.+]] = kv.score %[[C]] policy(#kv.h2o<budget = 1024 : i64>) queries %[[Q]]
// CHECK:         %[[C1:.+]] = kv.evict %[[C]] by %[[S]] policy(#kv.h2o<budget = 1024 : i64>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
// CHECK:         %[[T:.+]] = kv.score %[[C1]] policy(#kv.triattention<budget = 512 : i64, sinks = 4>) queries %[[Q]]
// CHECK:         kv.evict %[[C1]] by %[[T]] policy(#kv.triattention<budget = 512 : i64, sinks = 4>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
// GENERIC-LABEL: sym_name = "evict"
// GENERIC:       "kv.evict"(%{{[^,]+}}, %{{[^,]+}}) <{policy = #kv.h2o<budget = 1024 : i64>}> : (!kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>) -> !kv.cache<heads = 4, head_dim = 16>
func.func @evict(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 2 : !kv.cache<heads = 4, head_dim = 16>
  %s = kv.score %c policy(#kv.h2o<budget = 1024>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 1024>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
  %t = kv.score %c1 policy(#kv.triattention<budget = 512, sinks = 4>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  %c2 = kv.evict %c1 by %t policy(#kv.triattention<budget = 512, sinks = 4>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
  return
}

// -----

// CHECK-LABEL: func.func @select(
// CHECK-SAME:    %[[Q:[^:]+]]: tensor<?x8x16xf32>, %[[POS:[^:]+]]: tensor<?xi32>)
// CHECK:         %[[C:.+]] = kv.cache layer 0
// The policy prints with its #kv. prefix, as in kv.score and kv.evict.
// CHECK:         %[[SEL:.+]] = kv.select %[[Q]], %[[C]] policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<?x4x256xi32>
// CHECK:         kv.attention %[[Q]], %[[C]] at %[[POS]] scale = 2.500000e-01 selected %[[SEL]]
// GENERIC-LABEL: sym_name = "select"
// GENERIC:       "kv.select"(%{{[^,]+}}, %{{[^,]+}}) <{policy = #kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>}> : (tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>) -> tensor<?x4x256xi32>
func.func @select(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) -> tensor<?x8x16xf32> {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>)
      : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<?x4x256xi32>
  %o = kv.attention %q, %c at %pos scale = 0.25 selected %sel
      : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<?x4x256xi32> -> tensor<?x8x16xf32>
  return %o : tensor<?x8x16xf32>
}

// -----

// CHECK-LABEL: func.func @project(
// CHECK-SAME:    %[[V:[^:]+]]: tensor<?x4x16xf32>, %[[BASIS:[^:]+]]: tensor<4x16x8xf32>)
// CHECK:         %[[L:.+]] = kv.project %[[V]], %[[BASIS]] : tensor<?x4x16xf32>, tensor<4x16x8xf32> -> tensor<?x4x8xf32>
// CHECK:         return %[[L]]
// GENERIC-LABEL: sym_name = "project"
// GENERIC:       "kv.project"(%{{[^,]+}}, %{{[^,]+}}) : (tensor<?x4x16xf32>, tensor<4x16x8xf32>) -> tensor<?x4x8xf32>
func.func @project(%v: tensor<?x4x16xf32>, %basis: tensor<4x16x8xf32>) -> tensor<?x4x8xf32> {
  %l = kv.project %v, %basis : tensor<?x4x16xf32>, tensor<4x16x8xf32> -> tensor<?x4x8xf32>
  return %l : tensor<?x4x8xf32>
}

// -----

// CHECK-LABEL: func.func @prefetch(
// CHECK-SAME:    %[[SEL:[^:]+]]: tensor<?x4x256xi32>)
// CHECK:         %[[C:.+]] = kv.cache layer 1
// CHECK:         kv.prefetch %[[C]] mode = next_layer : !kv.cache<heads = 4, head_dim = 16>
// CHECK-NEXT:    kv.prefetch %[[C]] mode = next_step : !kv.cache<heads = 4, head_dim = 16>
// CHECK-NEXT:    kv.prefetch %[[C]] mode = next_layer selected %[[SEL]] : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>
// CHECK-NEXT:    kv.prefetch %[[C]] mode = next_step selected %[[SEL]] : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>
// GENERIC-LABEL: sym_name = "prefetch"
// GENERIC:       "kv.prefetch"(%{{[^,]+}}) <{mode = #kv<prefetch_mode next_layer>, runners_up = 0 : i32}> : (!kv.cache<heads = 4, head_dim = 16>) -> ()
// GENERIC:       "kv.prefetch"(%{{[^,]+}}) <{mode = #kv<prefetch_mode next_step>, runners_up = 0 : i32}> : (!kv.cache<heads = 4, head_dim = 16>) -> ()
// GENERIC:       "kv.prefetch"(%{{[^,]+}}, %{{[^,]+}}) <{mode = #kv<prefetch_mode next_layer>, runners_up = 0 : i32}> : (!kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>) -> ()
// GENERIC:       "kv.prefetch"(%{{[^,]+}}, %{{[^,]+}}) <{mode = #kv<prefetch_mode next_step>, runners_up = 0 : i32}> : (!kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>) -> ()
func.func @prefetch(%sel: tensor<?x4x256xi32>) {
  %c = kv.cache layer 1 : !kv.cache<heads = 4, head_dim = 16>
  kv.prefetch %c mode = next_layer : !kv.cache<heads = 4, head_dim = 16>
  kv.prefetch %c mode = next_step : !kv.cache<heads = 4, head_dim = 16>
  kv.prefetch %c mode = next_layer selected %sel : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>
  kv.prefetch %c mode = next_step selected %sel : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi32>
  return
}

// -----

// The generic form is accepted as input too, with the full enum spelling.
// CHECK-LABEL: func.func @from_generic(
// CHECK:         kv.rope %{{.+}}, %{{.+}} theta = 1.000000e+04 style = interleaved : tensor<?x8x16xf32>, tensor<?xi32>
// CHECK:         kv.prefetch %{{.+}} mode = next_step : !kv.cache<heads = 4, head_dim = 16>
func.func @from_generic(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  %0 = "kv.rope"(%q, %pos) <{style = #kv<rope_style interleaved>, theta = 1.0e+04 : f64}> : (tensor<?x8x16xf32>, tensor<?xi32>) -> tensor<?x8x16xf32>
  %c = "kv.cache"() <{layer = 0 : i64}> : () -> !kv.cache<heads = 4, head_dim = 16>
  "kv.prefetch"(%c) <{mode = #kv<prefetch_mode next_step>}> : (!kv.cache<heads = 4, head_dim = 16>) -> ()
  return
}
