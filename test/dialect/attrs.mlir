// Every kv attribute prints and parses back; default parameters are elided
// when printed, explicit non-default ones kept.
// RUN: kvopt-opt %s --split-input-file | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --split-input-file --mlir-print-op-generic | kvopt-opt --split-input-file | FileCheck %s
// Bytecode stores kv attributes as their printed text, so it round-trips
// only what the printer and parser agree on.
// RUN: kvopt-opt %s --emit-bytecode | kvopt-opt | FileCheck %s
// RUN: kvopt-opt %s --emit-bytecode | kvopt-opt --mlir-print-op-generic | kvopt-opt | FileCheck %s

// CHECK-LABEL: func.func private @f32()
// CHECK-SAME:    attributes {enc = #kv.f32}
func.func private @f32() attributes {enc = #kv.f32}

// -----

// CHECK-LABEL: func.func private @bf16()
// CHECK-SAME:    attributes {enc = #kv.bf16}
func.func private @bf16() attributes {enc = #kv.bf16}

// -----

// CHECK-LABEL: func.func private @fp8_e4m3()
// CHECK-SAME:    attributes {enc = #kv.fp8<e4m3>}
func.func private @fp8_e4m3() attributes {enc = #kv.fp8<e4m3>}
// The default scale (per_head) is elided.
// CHECK-LABEL: func.func private @fp8_e4m3_per_head()
// CHECK-SAME:    attributes {enc = #kv.fp8<e4m3>}
func.func private @fp8_e4m3_per_head() attributes {enc = #kv.fp8<e4m3, scale = per_head>}
// CHECK-LABEL: func.func private @fp8_e4m3_dynamic()
// CHECK-SAME:    attributes {enc = #kv.fp8<e4m3, scale = dynamic>}
func.func private @fp8_e4m3_dynamic() attributes {enc = #kv.fp8<e4m3, scale = dynamic>}
// CHECK-LABEL: func.func private @fp8_e5m2()
// CHECK-SAME:    attributes {enc = #kv.fp8<e5m2>}
func.func private @fp8_e5m2() attributes {enc = #kv.fp8<e5m2, scale = per_head>}
// CHECK-LABEL: func.func private @fp8_e5m2_dynamic()
// CHECK-SAME:    attributes {enc = #kv.fp8<e5m2, scale = dynamic>}
func.func private @fp8_e5m2_dynamic() attributes {enc = #kv.fp8<e5m2, scale = dynamic>}

// -----

// CHECK-LABEL: func.func private @nvfp4()
// CHECK-SAME:    attributes {enc = #kv.nvfp4}
func.func private @nvfp4() attributes {enc = #kv.nvfp4}

// -----

// residual defaults to 128 and is elided at its default.
// CHECK-LABEL: func.func private @int_defaults()
// CHECK-SAME:    attributes {enc = #kv.int<bits = 2, group = 32>}
func.func private @int_defaults() attributes {enc = #kv.int<bits = 2, group = 32>}
// CHECK-LABEL: func.func private @int_explicit_default()
// CHECK-SAME:    attributes {enc = #kv.int<bits = 4, group = 64>}
func.func private @int_explicit_default() attributes {enc = #kv.int<bits = 4, group = 64, residual = 128>}
// CHECK-LABEL: func.func private @int_explicit()
// CHECK-SAME:    attributes {enc = #kv.int<bits = 4, group = 128, residual = 256>}
func.func private @int_explicit() attributes {enc = #kv.int<bits = 4, group = 128, residual = 256>}
// A zero residual window (everything quantized at once) is allowed.
// CHECK-LABEL: func.func private @int_no_residual()
// CHECK-SAME:    attributes {enc = #kv.int<bits = 2, group = 32, residual = 0>}
func.func private @int_no_residual() attributes {enc = #kv.int<bits = 2, group = 32, residual = 0>}

// -----

// rotation (hadamard), seed (0) and qjl (false) default and are elided.
// CHECK-LABEL: func.func private @polar2()
// CHECK-SAME:    attributes {enc = #kv.polar<bits = 2>}
func.func private @polar2() attributes {enc = #kv.polar<bits = 2>}
// CHECK-LABEL: func.func private @polar3_seed()
// CHECK-SAME:    attributes {enc = #kv.polar<bits = 3, seed = 7>}
func.func private @polar3_seed() attributes {enc = #kv.polar<bits = 3, seed = 7>}
// CHECK-LABEL: func.func private @polar4_all()
// CHECK-SAME:    attributes {enc = #kv.polar<bits = 4, seed = 18446744073709551615, qjl = true>}
func.func private @polar4_all() attributes {enc = #kv.polar<bits = 4, rotation = hadamard, seed = 18446744073709551615, qjl = true>}
// CHECK-LABEL: func.func private @polar_qjl_off()
// CHECK-SAME:    attributes {enc = #kv.polar<bits = 3>}
func.func private @polar_qjl_off() attributes {enc = #kv.polar<bits = 3, seed = 0, qjl = false>}

// -----

// The latent defaults to #kv.bf16.
// CHECK-LABEL: func.func private @lowrank_default()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 32>}
func.func private @lowrank_default() attributes {enc = #kv.lowrank<rank = 32>}
// CHECK-LABEL: func.func private @lowrank_bf16()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 32>}
func.func private @lowrank_bf16() attributes {enc = #kv.lowrank<rank = 32, latent = #kv.bf16>}
// CHECK-LABEL: func.func private @lowrank_exact()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 32, sinks = 4, window = 64>}
func.func private @lowrank_exact() attributes {enc = #kv.lowrank<rank = 32, latent = #kv.bf16, sinks = 4, window = 64>}
// The calibrated axes the exporter takes: second_moment is the default.
// CHECK-LABEL: func.func private @lowrank_bases()
// CHECK-SAME:    attributes {a = #kv.lowrank<rank = 8>, b = #kv.lowrank<rank = 8, basis = attention>, c = #kv.lowrank<rank = 8, sinks = 4, window = 64, basis = svd>, d = #kv.lowrank<rank = 8, basis = lrkv>}
func.func private @lowrank_bases() attributes {a = #kv.lowrank<rank = 8, basis = second_moment>, b = #kv.lowrank<rank = 8, basis = attention>, c = #kv.lowrank<rank = 8, sinks = 4, window = 64, basis = svd>, d = #kv.lowrank<rank = 8, basis = lrkv>}
// CHECK-LABEL: func.func private @lowrank_fp8()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 16, latent = #kv.fp8<e4m3, scale = dynamic>>}
func.func private @lowrank_fp8() attributes {enc = #kv.lowrank<rank = 16, latent = #kv.fp8<e4m3, scale = dynamic>>}
// CHECK-LABEL: func.func private @lowrank_nvfp4()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 32, latent = #kv.nvfp4>}
func.func private @lowrank_nvfp4() attributes {enc = #kv.lowrank<rank = 32, latent = #kv.nvfp4>}
// CHECK-LABEL: func.func private @lowrank_int()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 64, latent = #kv.int<bits = 4, group = 32, residual = 0>>}
func.func private @lowrank_int() attributes {enc = #kv.lowrank<rank = 64, latent = #kv.int<bits = 4, group = 32, residual = 0>>}
// CHECK-LABEL: func.func private @lowrank_polar()
// CHECK-SAME:    attributes {enc = #kv.lowrank<rank = 32, latent = #kv.polar<bits = 3, seed = 5>>}
func.func private @lowrank_polar() attributes {enc = #kv.lowrank<rank = 32, latent = #kv.polar<bits = 3, seed = 5>>}

// -----

// Every eviction policy takes a budget (a fraction in (0, 1] or a positive
// token count), window, interval and sinks; defaults are elided.
// CHECK-LABEL: func.func private @triattention_count()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 2048 : i64>}
func.func private @triattention_count() attributes {policy = #kv.triattention<budget = 2048, window = 128, interval = 128, sinks = 0>}
// CHECK-LABEL: func.func private @triattention_fraction()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 2.500000e-01 : f64, window = 64, interval = 32, sinks = 4>}
func.func private @triattention_fraction() attributes {policy = #kv.triattention<budget = 0.25, window = 64, interval = 32, sinks = 4>}
// CHECK-LABEL: func.func private @triattention_whole()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1.000000e+00 : f64>}
func.func private @triattention_whole() attributes {policy = #kv.triattention<budget = 1.0>}
// Parameters may come in any order and print in declaration order.
// CHECK-LABEL: func.func private @triattention_order()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1024 : i64, window = 0, interval = 1, sinks = 16>}
func.func private @triattention_order() attributes {policy = #kv.triattention<sinks = 16, interval = 1, window = 0, budget = 1024>}
// A bool is no budget (see invalid.mlir); an unsigned count is one.
// CHECK-LABEL: func.func private @triattention_unsigned()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 4096 : ui32>}
func.func private @triattention_unsigned() attributes {policy = #kv.triattention<budget = 4096 : ui32>}
// A count needs room beyond sinks + window: one scored entry is enough.
// CHECK-LABEL: func.func private @triattention_room()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 133 : i64, sinks = 4>}
func.func private @triattention_room() attributes {policy = #kv.triattention<budget = 133, sinks = 4>}
// horizon, TriAttention's largest future distance, a power of two; the
// default (65536) is elided.
// CHECK-LABEL: func.func private @triattention_horizon()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1024 : i64, horizon = 512>}
func.func private @triattention_horizon() attributes {policy = #kv.triattention<budget = 1024, horizon = 512>}
// CHECK-LABEL: func.func private @triattention_default_horizon()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1024 : i64>}
func.func private @triattention_default_horizon() attributes {policy = #kv.triattention<budget = 1024, horizon = 65536>}
// combine, how a KV head's query heads combine; the default (mean) is
// elided.
// CHECK-LABEL: func.func private @triattention_zmax()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1024 : i64, heads = each, combine = zmax>}
func.func private @triattention_zmax() attributes {policy = #kv.triattention<budget = 1024, heads = each, combine = zmax>}
// CHECK-LABEL: func.func private @triattention_mean()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1024 : i64>}
func.func private @triattention_mean() attributes {policy = #kv.triattention<budget = 1024, combine = mean>}
// A fraction is clipped by the runtime, so a small one is no error.
// CHECK-LABEL: func.func private @triattention_small_fraction()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 1.000000e-03 : f64, window = 512>}
func.func private @triattention_small_fraction() attributes {policy = #kv.triattention<budget = 0.001, window = 512>}

// -----

// CHECK-LABEL: func.func private @snapkv_defaults()
// CHECK-SAME:    attributes {policy = #kv.snapkv<budget = 2.500000e-01 : f64>}
func.func private @snapkv_defaults() attributes {policy = #kv.snapkv<budget = 0.25, window = 128, interval = 128, sinks = 0, observe = 32, kernel = 7>}
// CHECK-LABEL: func.func private @snapkv_explicit()
// CHECK-SAME:    attributes {policy = #kv.snapkv<budget = 4096 : i64, window = 64, interval = 16, sinks = 2, observe = 64, kernel = 1>}
func.func private @snapkv_explicit() attributes {policy = #kv.snapkv<budget = 4096, window = 64, interval = 16, sinks = 2, observe = 64, kernel = 1>}

// -----

// CHECK-LABEL: func.func private @h2o_defaults()
// CHECK-SAME:    attributes {policy = #kv.h2o<budget = 1024 : i64>}
func.func private @h2o_defaults() attributes {policy = #kv.h2o<budget = 1024, window = 128, interval = 128, sinks = 0>}
// CHECK-LABEL: func.func private @h2o_explicit()
// CHECK-SAME:    attributes {policy = #kv.h2o<budget = 1.000000e-01 : f64, window = 0, sinks = 8>}
func.func private @h2o_explicit() attributes {policy = #kv.h2o<budget = 0.1, window = 0, sinks = 8>}

// One selection shared by the KV heads is the default and elided; one per
// head (each) prints.
// CHECK-LABEL: func.func private @heads_shared()
// CHECK-SAME:    attributes {policy = #kv.h2o<budget = 1024 : i64>}
func.func private @heads_shared() attributes {policy = #kv.h2o<budget = 1024, heads = shared>}
// CHECK-LABEL: func.func private @heads_each()
// CHECK-SAME:    attributes {policy = #kv.triattention<budget = 2.500000e-01 : f64, heads = each>}
func.func private @heads_each() attributes {policy = #kv.triattention<budget = 0.25, heads = each>}
// CHECK-LABEL: func.func private @heads_each_snapkv()
// CHECK-SAME:    attributes {policy = #kv.snapkv<budget = 512 : i64, kernel = 3, heads = each>}
func.func private @heads_each_snapkv() attributes {policy = #kv.snapkv<budget = 512, heads = each, kernel = 3>}

// -----

// StreamingLLM keeps 4 sinks and no protected window by default.
// CHECK-LABEL: func.func private @streaming_defaults()
// CHECK-SAME:    attributes {policy = #kv.streaming<budget = 1024 : i64>}
func.func private @streaming_defaults() attributes {policy = #kv.streaming<budget = 1024, window = 0, interval = 128, sinks = 4>}
// CHECK-LABEL: func.func private @streaming_explicit()
// CHECK-SAME:    attributes {policy = #kv.streaming<budget = 5.000000e-01 : f64, window = 128, interval = 64, sinks = 0>}
func.func private @streaming_explicit() attributes {policy = #kv.streaming<budget = 0.5, window = 128, interval = 64, sinks = 0>}
// CHECK-LABEL: func.func private @streaming_least()
// CHECK-SAME:    attributes {policy = #kv.streaming<budget = 5 : i64>}
func.func private @streaming_least() attributes {policy = #kv.streaming<budget = 5>}

// -----

// CHECK-LABEL: func.func private @twolevel()
// CHECK-SAME:    attributes {policy = #kv.twolevel<block = 64, top_blocks = 128, top_tokens = 2048>}
func.func private @twolevel() attributes {policy = #kv.twolevel<block = 64, top_blocks = 128, top_tokens = 2048>}
// top_tokens may equal top_blocks x block.
// CHECK-LABEL: func.func private @twolevel_full()
// CHECK-SAME:    attributes {policy = #kv.twolevel<block = 1, top_blocks = 16, top_tokens = 16>}
func.func private @twolevel_full() attributes {policy = #kv.twolevel<block = 1, top_blocks = 16, top_tokens = 16>}

// -----

// Doubles print in their shortest exact form.
// CHECK-LABEL: func.func private @rope_linear()
// CHECK-SAME:    attributes {scaling = #kv.rope_linear<factor = 4.0>}
func.func private @rope_linear() attributes {scaling = #kv.rope_linear<factor = 4.0>}
// CHECK-LABEL: func.func private @rope_linear_fraction()
// CHECK-SAME:    attributes {scaling = #kv.rope_linear<factor = 0.1>}
func.func private @rope_linear_fraction() attributes {scaling = #kv.rope_linear<factor = 1.0e-01>}
// Exponents keep a fraction (`1e-04` would lex as the integer 1).
// CHECK-LABEL: func.func private @rope_linear_small()
// CHECK-SAME:    attributes {scaling = #kv.rope_linear<factor = 1.0e-04>}
func.func private @rope_linear_small() attributes {scaling = #kv.rope_linear<factor = 0.0001>}
// CHECK-LABEL: func.func private @rope_linear_tiny()
// CHECK-SAME:    attributes {scaling = #kv.rope_linear<factor = 2.5e-07>}
func.func private @rope_linear_tiny() attributes {scaling = #kv.rope_linear<factor = 2.5e-07>}
// CHECK-LABEL: func.func private @rope_linear_huge()
// CHECK-SAME:    attributes {scaling = #kv.rope_linear<factor = 1.0e+22>}
func.func private @rope_linear_huge() attributes {scaling = #kv.rope_linear<factor = 1.0e+22>}

// -----

// CHECK-LABEL: func.func private @rope_llama3()
// CHECK-SAME:    attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>}
func.func private @rope_llama3() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>}
// CHECK-LABEL: func.func private @rope_llama3_fractions()
// CHECK-SAME:    attributes {scaling = #kv.rope_llama3<factor = 32.0, low_freq_factor = 0.5, high_freq_factor = 1.25, original_max_position = 131072>}
func.func private @rope_llama3_fractions() attributes {scaling = #kv.rope_llama3<factor = 32.0, low_freq_factor = 0.5, high_freq_factor = 1.25, original_max_position = 131072>}

// -----

// beta_fast (32), beta_slow (1) and attention_factor (0: derived) default.
// CHECK-LABEL: func.func private @rope_yarn_defaults()
// CHECK-SAME:    attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768>}
func.func private @rope_yarn_defaults() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768>}
// CHECK-LABEL: func.func private @rope_yarn_explicit_defaults()
// CHECK-SAME:    attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, attention_factor = 1.1386>}
func.func private @rope_yarn_explicit_defaults() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, beta_fast = 32.0, beta_slow = 1.0, attention_factor = 1.1386>}
// CHECK-LABEL: func.func private @rope_yarn_explicit()
// CHECK-SAME:    attributes {scaling = #kv.rope_yarn<factor = 40.0, original_max_position = 4096, beta_fast = 16.0, beta_slow = 2.5, attention_factor = 1.0>}
func.func private @rope_yarn_explicit() attributes {scaling = #kv.rope_yarn<factor = 40.0, original_max_position = 4096, beta_fast = 16.0, beta_slow = 2.5, attention_factor = 1.0>}
// CHECK-LABEL: func.func private @rope_yarn_exponents()
// CHECK-SAME:    attributes {scaling = #kv.rope_yarn<factor = 1.0e+05, original_max_position = 4096, beta_fast = 1.0e+20, beta_slow = 1.0e-05, attention_factor = 1.0e-04>}
func.func private @rope_yarn_exponents() attributes {scaling = #kv.rope_yarn<factor = 100000.0, original_max_position = 4096, beta_fast = 1.0e20, beta_slow = 0.00001, attention_factor = 1.0e-4>}

// -----

// The enums as standalone attributes.
// CHECK-LABEL: func.func private @enums()
// CHECK-SAME:    attributes {mode = #kv<prefetch_mode next_step>, style = #kv<rope_style interleaved>}
func.func private @enums() attributes {style = #kv<rope_style interleaved>, mode = #kv<prefetch_mode next_step>}
