// Every diagnostic of the kv verifiers (KVAttrs.cpp, KVTypes.cpp, KVOps.cpp).
// RUN: kvopt-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// Encodings
//===----------------------------------------------------------------------===//

// expected-error @+1 {{#kv.int bits must be 2 or 4, got 3}}
func.func private @int_bits() attributes {enc = #kv.int<bits = 3, group = 32>}

// -----

// expected-error @+1 {{#kv.int bits must be 2 or 4, got 8}}
func.func private @int_bits8() attributes {enc = #kv.int<bits = 8, group = 32>}

// -----

// expected-error @+1 {{#kv.int group must be 32, 64 or 128, got 48}}
func.func private @int_group() attributes {enc = #kv.int<bits = 2, group = 48>}

// -----

// expected-error @+1 {{#kv.int residual window (100 tokens) must be a multiple of the group (32)}}
func.func private @int_residual() attributes {enc = #kv.int<bits = 2, group = 32, residual = 100>}

// -----

// A residual window smaller than one group cannot release a whole group.
// expected-error @+1 {{#kv.int residual window (64 tokens) must be a multiple of the group (128)}}
func.func private @int_residual_small() attributes {enc = #kv.int<bits = 4, group = 128, residual = 64>}

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.int groups values along channels, but group 64 does not divide head_dim 96; allowed groups: 32}}
func.func private @int_value_group(!kv.cache<heads = 2, head_dim = 96, value = #kv.int<bits = 2, group = 64>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.int groups values along channels, but group 128 does not divide head_dim 64; allowed groups: 32 64}}
func.func private @int_value_group_128(!kv.cache<heads = 2, head_dim = 64, value = #kv.int<bits = 4, group = 128>>)

// -----

// expected-error @+1 {{group 32 does not divide head_dim 16; allowed groups: none (head_dim must be a multiple of 32)}}
func.func private @int_no_group(!kv.cache<heads = 2, head_dim = 16, value = #kv.int<bits = 4, group = 32>>)

// -----

// expected-error @+1 {{#kv.polar bits must be 2, 3 or 4, got 5}}
func.func private @polar_bits5() attributes {enc = #kv.polar<bits = 5>}

// -----

// expected-error @+1 {{#kv.polar bits must be 2, 3 or 4, got 1}}
func.func private @polar_bits1() attributes {enc = #kv.polar<bits = 1, seed = 3>}

// -----

// expected-error @+1 {{!kv.cache key encoding: #kv.polar rotates with a Hadamard transform, which needs a power-of-two head_dim, got 96}}
func.func private @polar_head_dim(!kv.cache<heads = 2, head_dim = 96, key = #kv.polar<bits = 3>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.polar rotates with a Hadamard transform, which needs a power-of-two head_dim, got 48}}
func.func private @polar_value_head_dim(!kv.cache<heads = 2, head_dim = 48, value = #kv.polar<bits = 2, qjl = true>>)

// -----

// expected-error @+1 {{!kv.cache key encoding: #kv.nvfp4 scales blocks of 16 coordinates, but head_dim 40 is not a multiple of 16}}
func.func private @nvfp4_head_dim(!kv.cache<heads = 2, head_dim = 40, key = #kv.nvfp4>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.nvfp4 scales blocks of 16 coordinates, but head_dim 8 is not a multiple of 16}}
func.func private @nvfp4_value_head_dim(!kv.cache<heads = 2, head_dim = 8, value = #kv.nvfp4>)

// -----

// expected-error @+1 {{#kv.lowrank rank must be positive}}
func.func private @lowrank_rank0() attributes {enc = #kv.lowrank<rank = 0>}

// -----

// expected-error @+1 {{#kv.lowrank keeps 4097 sink tokens exact; at most 4096 are allowed}}
func.func private @lowrank_sinks() attributes {enc = #kv.lowrank<rank = 8, sinks = 4097>}

// -----

// expected-error @+1 {{#kv.lowrank keeps its own exact tokens; its latent #kv.polar<bits = 4, window = 64> may not keep any}}
func.func private @lowrank_exact_latent() attributes {enc = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 4, window = 64>>}

// -----

// expected-error @+1 {{#kv.lowrank keeps its own recent tokens exact (window); its KIVI latent keeps no bf16 residual, so it needs residual = 0 (kv-quantize{... residual=0}), got #kv.int<bits = 4, group = 32>}}
func.func private @lowrank_kivi_residual() attributes {enc = #kv.lowrank<rank = 32, latent = #kv.int<bits = 4, group = 32>>}

// -----

// expected-error @+1 {{#kv.polar keeps 4097 sink tokens exact; at most 4096 are allowed}}
func.func private @polar_sinks() attributes {enc = #kv.polar<bits = 4, sinks = 4097>}

// -----

// expected-error @+1 {{#kv.lowrank latent must be #kv.f32, #kv.bf16, #kv.fp8, #kv.nvfp4, #kv.int or #kv.polar, got #kv.lowrank<rank = 8>}}
func.func private @lowrank_nested() attributes {enc = #kv.lowrank<rank = 16, latent = #kv.lowrank<rank = 8>>}

// -----

// expected-error @+1 {{#kv.lowrank latent must be #kv.f32, #kv.bf16, #kv.fp8, #kv.nvfp4, #kv.int or #kv.polar, got #kv.h2o<budget = 1024 : i64>}}
func.func private @lowrank_policy() attributes {enc = #kv.lowrank<rank = 16, latent = #kv.h2o<budget = 1024>>}

// -----

// expected-error @+1 {{#kv.lowrank latent must be #kv.f32, #kv.bf16, #kv.fp8, #kv.nvfp4, #kv.int or #kv.polar, got "bf16"}}
func.func private @lowrank_string() attributes {enc = #kv.lowrank<rank = 16, latent = "bf16">}

// -----

// expected-error @+1 {{!kv.cache key encoding: #kv.lowrank rank 64 must be smaller than head_dim 64}}
func.func private @lowrank_rank_head_dim(!kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 64>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.lowrank rank 100 must be smaller than head_dim 64}}
func.func private @lowrank_rank_above(!kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 100, latent = #kv.fp8<e4m3>>>)

// -----

// A fold rewrites v_proj and o_proj per head: values of one head a latent.
// expected-error @+1 {{#kv.lowrank folded = true needs group = 1: a group's latent mixes its heads, which o_proj reads apart; got group 2}}
func.func private @lowrank_folded_group() attributes {enc = #kv.lowrank<rank = 8, group = 2, folded = true>}

// -----

// expected-error @+1 {{!kv.cache key encoding: #kv.lowrank folded = true is for values; RoPE rotates each key by its position between k_proj and the cache, so no fixed matrix folds into the projections}}
func.func private @lowrank_folded_key(!kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 32, folded = true>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.lowrank centred = true is for keys; values are stored around 0 on the axes of their second moment, which keep the attention sink's value (docs/lowrank.md)}}
func.func private @lowrank_centred_value(!kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 32, centred = true>>)

// -----

// A group's latent is split evenly over its heads.
// expected-error @+1 {{#kv.lowrank group must be positive and divide its rank (the group's latent, split evenly over its heads), got rank 95 and group 3}}
func.func private @lowrank_group_rank() attributes {enc = #kv.lowrank<rank = 95, group = 3>}

// -----

// expected-error @+1 {{#kv.lowrank group must be positive and divide its rank (the group's latent, split evenly over its heads), got rank 8 and group 0}}
func.func private @lowrank_group_zero() attributes {enc = #kv.lowrank<rank = 8, group = 0>}

// -----

// lrkv's shared basis spans the layer's heads; each keeps its own latent.
// expected-error @+1 {{#kv.lowrank basis = lrkv keeps a latent per head (its shared basis spans the layer's heads already); group must be 1, got 3}}
func.func private @lowrank_lrkv_group() attributes {enc = #kv.lowrank<rank = 96, basis = lrkv, group = 3>}

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.lowrank group 2 must divide the 3 KV heads}}
func.func private @lowrank_group_heads(!kv.cache<heads = 3, head_dim = 64, value = #kv.lowrank<rank = 64, group = 2>>)

// -----

// expected-error @+1 {{!kv.cache key encoding: #kv.lowrank rank 192 must be smaller than group x head_dim 192}}
func.func private @lowrank_group_full(!kv.cache<heads = 3, head_dim = 64, key = #kv.lowrank<rank = 192, group = 3>>)

// -----

// Each head stores rank / group coordinates of the latent: what its
// encoding sees.
// expected-error @+1 {{!kv.cache value encoding: #kv.polar rotates with a Hadamard transform, which needs a power-of-two #kv.lowrank rank / group, got 24}}
func.func private @lowrank_group_polar(!kv.cache<heads = 3, head_dim = 64, value = #kv.lowrank<rank = 72, latent = #kv.polar<bits = 4>, group = 3>>)

// -----

// The latent encodes `rank` coordinates, so it is checked against the rank.
// expected-error @+1 {{!kv.cache key encoding: #kv.polar rotates with a Hadamard transform, which needs a power-of-two #kv.lowrank rank, got 24}}
func.func private @lowrank_latent_polar(!kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 24, latent = #kv.polar<bits = 3>>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.nvfp4 scales blocks of 16 coordinates, but #kv.lowrank rank 24 is not a multiple of 16}}
func.func private @lowrank_latent_nvfp4(!kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 24, latent = #kv.nvfp4>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.int groups values along channels, but group 64 does not divide #kv.lowrank rank 32; allowed groups: 32}}
func.func private @lowrank_latent_int(!kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 32, latent = #kv.int<bits = 2, group = 64, residual = 0>>>)

// -----

// expected-error @+1 {{!kv.cache value encoding: #kv.int groups values along channels, but group 32 does not divide #kv.lowrank rank 16; allowed groups: none (#kv.lowrank rank must be a multiple of 32)}}
func.func private @lowrank_latent_int_none(!kv.cache<heads = 2, head_dim = 64, value = #kv.lowrank<rank = 16, latent = #kv.int<bits = 2, group = 32, residual = 0>>>)

// -----

// KIVI groups keys along tokens: a key latent needs whole bytes of codes.
// expected-error @+1 {{!kv.cache key encoding: #kv.int packs a key's codes 8 coordinates at a time, but #kv.lowrank rank / group 6 is not a multiple of 8}}
func.func private @lowrank_latent_int_keys(!kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 12, latent = #kv.int<bits = 2, group = 32, residual = 0>, group = 2>>)

// -----

// expected-error @+1 {{!kv.cache key encoding: #kv.lowrank rank 64 must be smaller than head_dim 64}}
func.func private @lowrank_latent_int_keys_rank(!kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 64, latent = #kv.int<bits = 2, group = 32, residual = 0>>>)

//===----------------------------------------------------------------------===//
// Eviction and selection policies
//===----------------------------------------------------------------------===//

// -----

// expected-error @+1 {{#kv.h2o budget fraction must be in (0, 1], got 0}}
func.func private @budget_zero_fraction() attributes {policy = #kv.h2o<budget = 0.0>}

// -----

// The fraction prints in its shortest form, not as 1.500000e+00.
// expected-error-re @+1 {{#kv.snapkv budget fraction must be in (0, 1], got 1.5{{$}}}}
func.func private @budget_above_one() attributes {policy = #kv.snapkv<budget = 1.5>}

// -----

// expected-error @+1 {{#kv.triattention budget fraction must be in (0, 1], got -0.25}}
func.func private @budget_negative_fraction() attributes {policy = #kv.triattention<budget = -0.25>}

// -----

// expected-error @+1 {{#kv.triattention budget token count must be positive, got 0}}
func.func private @budget_zero_count() attributes {policy = #kv.triattention<budget = 0>}

// -----

// expected-error-re @+1 {{#kv.h2o budget token count must be positive, got -3{{$}}}}
func.func private @budget_negative_count() attributes {policy = #kv.h2o<budget = -3, window = 16>}

// -----

// A bool is no token count.
// expected-error @+1 {{#kv.h2o budget must be a fraction in (0, 1] or a positive token count, got true}}
func.func private @budget_true() attributes {policy = #kv.h2o<budget = true>}

// -----

// expected-error @+1 {{#kv.triattention budget must be a fraction in (0, 1] or a positive token count, got false}}
func.func private @budget_false() attributes {policy = #kv.triattention<budget = false>}

// -----

// expected-error @+1 {{#kv.snapkv budget must be a fraction in (0, 1] or a positive token count, got "half"}}
func.func private @budget_string() attributes {policy = #kv.snapkv<budget = "half">}

// -----

// expected-error @+1 {{#kv.streaming budget must be a fraction in (0, 1] or a positive token count, got [1, 2]}}
func.func private @budget_array() attributes {policy = #kv.streaming<budget = [1, 2]>}

// -----

// expected-error @+1 {{#kv.triattention interval must be at least 1 decode step, got 0}}
func.func private @triattention_interval() attributes {policy = #kv.triattention<budget = 2048, interval = 0>}

// -----

// expected-error @+1 {{#kv.triattention horizon must be a power of two (the last of the future distances 1, 2, 4, ...), got 0}}
func.func private @triattention_horizon_zero() attributes {policy = #kv.triattention<budget = 2048, horizon = 0>}

// -----

// expected-error @+1 {{#kv.triattention horizon must be a power of two (the last of the future distances 1, 2, 4, ...), got 100}}
func.func private @triattention_horizon_power() attributes {policy = #kv.triattention<budget = 2048, horizon = 100>}

// -----

// expected-error @+1 {{#kv.streaming interval must be at least 1 decode step, got 0}}
func.func private @streaming_interval() attributes {policy = #kv.streaming<budget = 0.5, interval = 0>}

// -----

// A token count must exceed what is always kept.
// expected-error @+1 {{#kv.triattention always keeps sinks + window = 0 + 128 = 128 entries, which reaches the budget of 128 tokens and leaves no room for scored entries}}
func.func private @triattention_no_room() attributes {policy = #kv.triattention<budget = 128>}

// -----

// expected-error @+1 {{#kv.h2o always keeps sinks + window = 4 + 60 = 64 entries, which reaches the budget of 32 tokens and leaves no room for scored entries}}
func.func private @h2o_no_room() attributes {policy = #kv.h2o<budget = 32, window = 60, sinks = 4>}

// -----

// The default 4 sinks leave no room in a budget of 4.
// expected-error @+1 {{#kv.streaming always keeps sinks + window = 4 + 0 = 4 entries, which reaches the budget of 4 tokens and leaves no room for scored entries}}
func.func private @streaming_no_room() attributes {policy = #kv.streaming<budget = 4>}

// -----

// expected-error @+1 {{#kv.snapkv always keeps sinks + window = 0 + 128 = 128 entries, which reaches the budget of 100 tokens and leaves no room for scored entries}}
func.func private @snapkv_no_room() attributes {policy = #kv.snapkv<budget = 100 : ui16>}

// -----

// expected-error @+2 {{expected one of [each, shared] for whose entries an eviction keeps, got: all}}
// expected-error @+1 {{failed to parse KV_H2OAttr parameter 'heads'}}
func.func private @heads_unknown() attributes {policy = #kv.h2o<budget = 0.5, heads = all>}

// -----

// StreamingLLM keeps the same entries in every KV head: it has no heads.
// expected-error @+1 {{duplicate or unknown struct parameter name: heads}}
func.func private @streaming_heads() attributes {policy = #kv.streaming<budget = 0.5, heads = each>}

// -----

// expected-error @+1 {{#kv.snapkv observe must be at least 1 query, got 0}}
func.func private @snapkv_observe() attributes {policy = #kv.snapkv<budget = 0.5, observe = 0>}

// -----

// expected-error @+1 {{#kv.snapkv pooling kernel must be odd and positive, got 6}}
func.func private @snapkv_even_kernel() attributes {policy = #kv.snapkv<budget = 0.5, kernel = 6>}

// -----

// expected-error @+1 {{#kv.snapkv pooling kernel must be odd and positive, got 0}}
func.func private @snapkv_zero_kernel() attributes {policy = #kv.snapkv<budget = 0.5, kernel = 0>}

// -----

// The centres are calibration statistics on kv.cache, not a parameter.
// expected-error @+1 {{duplicate or unknown struct parameter name: centers}}
func.func private @triattention_centers() attributes {policy = #kv.triattention<budget = 1024, centers = dense<0.0> : tensor<2x2xf32>>}

// -----

// expected-error @+1 {{struct is missing required parameter: budget}}
func.func private @streaming_no_budget() attributes {policy = #kv.streaming<sinks = 4>}

// -----

// expected-error @+1 {{#kv.twolevel block must be a positive power of two, got 48}}
func.func private @twolevel_block() attributes {policy = #kv.twolevel<block = 48, top_blocks = 16, top_tokens = 256>}

// -----

// expected-error @+1 {{#kv.twolevel block must be a positive power of two, got 0}}
func.func private @twolevel_block0() attributes {policy = #kv.twolevel<block = 0, top_blocks = 16, top_tokens = 256>}

// -----

// expected-error @+1 {{#kv.twolevel top_blocks and top_tokens must be positive}}
func.func private @twolevel_top_blocks() attributes {policy = #kv.twolevel<block = 64, top_blocks = 0, top_tokens = 256>}

// -----

// expected-error @+1 {{#kv.twolevel top_blocks and top_tokens must be positive}}
func.func private @twolevel_top_tokens() attributes {policy = #kv.twolevel<block = 64, top_blocks = 16, top_tokens = 0>}

// -----

// expected-error @+1 {{#kv.twolevel top_tokens (1025) exceeds the tokens in top_blocks x block (1024)}}
func.func private @twolevel_too_many_tokens() attributes {policy = #kv.twolevel<block = 64, top_blocks = 16, top_tokens = 1025>}

//===----------------------------------------------------------------------===//
// RoPE scaling
//===----------------------------------------------------------------------===//

// -----

// expected-error @+1 {{#kv.rope_linear factor must be finite and positive, got 0}}
func.func private @rope_linear_zero() attributes {scaling = #kv.rope_linear<factor = 0.0>}

// -----

// expected-error @+1 {{#kv.rope_linear factor must be finite and positive, got -2}}
func.func private @rope_linear_negative() attributes {scaling = #kv.rope_linear<factor = -2.0>}

// -----

// Infinities and NaNs are written as their bit patterns.
// expected-error @+1 {{#kv.rope_linear factor must be finite and positive, got inf}}
func.func private @rope_linear_inf() attributes {scaling = #kv.rope_linear<factor = 0x7FF0000000000000>}

// -----

// expected-error @+1 {{#kv.rope_linear factor must be finite and positive, got nan}}
func.func private @rope_linear_nan() attributes {scaling = #kv.rope_linear<factor = 0x7FF8000000000000>}

// -----

// expected-error @+1 {{#kv.rope_llama3 factor must be finite and positive, got inf}}
func.func private @rope_llama3_factor_inf() attributes {scaling = #kv.rope_llama3<factor = 0x7FF0000000000000, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 needs finite 0 < low_freq_factor < high_freq_factor, got 1 and inf}}
func.func private @rope_llama3_high_freq_inf() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 0x7FF0000000000000, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 needs finite 0 < low_freq_factor < high_freq_factor, got nan and 4}}
func.func private @rope_llama3_low_freq_nan() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 0x7FF8000000000000, high_freq_factor = 4.0, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 factor must be finite and positive, got 0}}
func.func private @rope_llama3_factor() attributes {scaling = #kv.rope_llama3<factor = 0.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 needs finite 0 < low_freq_factor < high_freq_factor, got 0 and 4}}
func.func private @rope_llama3_low_freq() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 0.0, high_freq_factor = 4.0, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 needs finite 0 < low_freq_factor < high_freq_factor, got 4 and 1}}
func.func private @rope_llama3_swapped() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 4.0, high_freq_factor = 1.0, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 needs finite 0 < low_freq_factor < high_freq_factor, got 2 and 2}}
func.func private @rope_llama3_equal() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 2.0, high_freq_factor = 2.0, original_max_position = 8192>}

// -----

// expected-error @+1 {{#kv.rope_llama3 original_max_position must be positive, got 0}}
func.func private @rope_llama3_position() attributes {scaling = #kv.rope_llama3<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 0>}

// -----

// expected-error @+1 {{#kv.rope_yarn factor must be finite and positive, got -4}}
func.func private @rope_yarn_factor() attributes {scaling = #kv.rope_yarn<factor = -4.0, original_max_position = 32768>}

// -----

// expected-error @+1 {{#kv.rope_yarn factor must be finite and positive, got nan}}
func.func private @rope_yarn_factor_nan() attributes {scaling = #kv.rope_yarn<factor = 0x7FF8000000000000, original_max_position = 32768>}

// -----

// expected-error @+1 {{#kv.rope_yarn original_max_position must be positive, got -1}}
func.func private @rope_yarn_position() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = -1>}

// -----

// expected-error @+1 {{#kv.rope_yarn needs finite beta_fast > beta_slow > 0, got 1 and 32}}
func.func private @rope_yarn_betas() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, beta_fast = 1.0, beta_slow = 32.0>}

// -----

// expected-error @+1 {{#kv.rope_yarn needs finite beta_fast > beta_slow > 0, got inf and 1}}
func.func private @rope_yarn_beta_fast_inf() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, beta_fast = 0x7FF0000000000000>}

// -----

// expected-error @+1 {{#kv.rope_yarn needs finite beta_fast > beta_slow > 0, got 32 and 0}}
func.func private @rope_yarn_beta_slow_zero() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, beta_slow = 0.0>}

// -----

// The default beta_slow (1) is checked too.
// expected-error @+1 {{#kv.rope_yarn needs finite beta_fast > beta_slow > 0, got 0.5 and 1}}
func.func private @rope_yarn_default_beta_slow() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, beta_fast = 0.5>}

// -----

// expected-error @+1 {{#kv.rope_yarn attention_factor must be finite and positive (or 0 to derive it from the factor), got -1}}
func.func private @rope_yarn_attention_factor() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, attention_factor = -1.0>}

// -----

// expected-error @+1 {{#kv.rope_yarn attention_factor must be finite and positive (or 0 to derive it from the factor), got inf}}
func.func private @rope_yarn_attention_factor_inf() attributes {scaling = #kv.rope_yarn<factor = 4.0, original_max_position = 32768, attention_factor = 0x7FF0000000000000>}

//===----------------------------------------------------------------------===//
// !kv.cache
//===----------------------------------------------------------------------===//

// -----

// expected-error @+1 {{!kv.cache needs at least one KV head, got 0}}
func.func private @cache_heads0(!kv.cache<heads = 0, head_dim = 64>)

// -----

// expected-error @+1 {{!kv.cache needs at least one KV head, got -2}}
func.func private @cache_heads_negative(!kv.cache<heads = -2, head_dim = 64>)

// -----

// expected-error @+1 {{!kv.cache head_dim must be positive and even (RoPE rotates pairs), got 63}}
func.func private @cache_odd_head_dim(!kv.cache<heads = 2, head_dim = 63>)

// -----

// expected-error @+1 {{!kv.cache head_dim must be positive and even (RoPE rotates pairs), got 0}}
func.func private @cache_head_dim0(!kv.cache<heads = 2, head_dim = 0>)

// -----

// expected-error @+1 {{!kv.cache page must be a positive power of two number of tokens, got 12}}
func.func private @cache_page12(!kv.cache<heads = 2, head_dim = 64, page = 12>)

// -----

// expected-error @+1 {{!kv.cache page must be a positive power of two number of tokens, got 0}}
func.func private @cache_page0(!kv.cache<heads = 2, head_dim = 64, page = 0>)

// -----

// expected-error @+1 {{!kv.cache key encoding must be one of #kv.f32, #kv.bf16, #kv.fp8, #kv.nvfp4, #kv.int, #kv.polar or #kv.lowrank, got #kv.h2o<budget = 1024 : i64>}}
func.func private @cache_key_policy(!kv.cache<heads = 2, head_dim = 64, key = #kv.h2o<budget = 1024>>)

// -----

// expected-error @+1 {{!kv.cache value encoding must be one of #kv.f32, #kv.bf16, #kv.fp8, #kv.nvfp4, #kv.int, #kv.polar or #kv.lowrank, got 4 : i64}}
func.func private @cache_value_integer(!kv.cache<heads = 2, head_dim = 64, value = 4>)

//===----------------------------------------------------------------------===//
// Ops: custom syntax
//===----------------------------------------------------------------------===//

// -----

func.func @rope_unknown_style(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{unknown keyword 'neox'; allowed: half, interleaved}}
  %0 = kv.rope %q, %pos theta = 1.0e+04 style = neox : tensor<?x8x16xf32>, tensor<?xi32>
  return
}

// -----

func.func @prefetch_unknown_mode() {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{unknown keyword 'next_token'; allowed: next_layer, next_step}}
  kv.prefetch %c mode = next_token : !kv.cache<heads = 4, head_dim = 16>
  return
}

//===----------------------------------------------------------------------===//
// Model-level ops
//===----------------------------------------------------------------------===//

// -----

func.func @embedding_width(%table: tensor<2048x128xf32>, %tokens: tensor<?xi32>) {
  // expected-error @+1 {{'kv.embedding' op result rows have 64 features but the table has 128}}
  %x = kv.embedding %table[%tokens] : tensor<2048x128xf32>, tensor<?xi32> -> tensor<?x64xf32>
  return
}

// -----

func.func @embedding_tokens(%table: tensor<2048x128xf32>, %tokens: tensor<3xi32>) {
  // expected-error @+1 {{'kv.embedding' op tokens have 3 entries but the result has 4 tokens}}
  %x = kv.embedding %table[%tokens] : tensor<2048x128xf32>, tensor<3xi32> -> tensor<4x128xf32>
  return
}

// -----

func.func @rms_norm_scalar(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error @+1 {{'kv.rms_norm' op input must have at least one dimension}}
  %y = kv.rms_norm %x, %w epsilon = 1.0e-06 : tensor<f32>, tensor<1xf32>
  return
}

// -----

func.func @rms_norm_unranked(%x: tensor<*xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{'kv.rms_norm' op operand #0 must be ranked tensor of floating-point values, but got 'tensor<*xf32>'}}
  %y = "kv.rms_norm"(%x, %w) <{epsilon = 1.0e-06 : f64}> : (tensor<*xf32>, tensor<128xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @rms_norm_one_weight(%x: tensor<?x128xf32>, %w: tensor<1xf32>) {
  // expected-error @+1 {{'kv.rms_norm' op weight has 1 entry but the normalised (last) dimension has 128}}
  %y = kv.rms_norm %x, %w epsilon = 1.0e-06 : tensor<?x128xf32>, tensor<1xf32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<?x128xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'kv.rms_norm' op weight has 64 entries but the normalised (last) dimension has 128}}
  %y = kv.rms_norm %x, %w epsilon = 1.0e-06 : tensor<?x128xf32>, tensor<64xf32>
  return
}

// -----

func.func @rms_norm_epsilon(%x: tensor<?x128xf32>, %w: tensor<128xf32>) {
  // expected-error @+1 {{'kv.rms_norm' op epsilon must be positive}}
  %y = kv.rms_norm %x, %w epsilon = 0.0 : tensor<?x128xf32>, tensor<128xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<?x896xf32>, %w: tensor<128x896xf32>, %b: tensor<64xf32>) {
  // expected-error @+1 {{'kv.linear' op bias has 64 entries but the weight has 128 outputs}}
  %y = kv.linear %x, %w bias %b : tensor<?x896xf32>, tensor<128x896xf32>, tensor<64xf32> -> tensor<?x128xf32>
  return
}

// -----

func.func @linear_weight(%x: tensor<?x128xf32>, %w: tensor<64x96xf32>) {
  // expected-error @+1 {{'kv.linear' op weight is (out x in) = 64x96 but the input has 128 features}}
  %y = kv.linear %x, %w : tensor<?x128xf32>, tensor<64x96xf32> -> tensor<?x64xf32>
  return
}

// -----

// A weight stored (in x out) instead of (out x in).
func.func @linear_transposed_weight(%x: tensor<?x128xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{'kv.linear' op weight is (out x in) = 128x64 but the input has 128 features}}
  %y = kv.linear %x, %w : tensor<?x128xf32>, tensor<128x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<?x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+1 {{'kv.linear' op result has 32 features but the weight produces 64}}
  %y = kv.linear %x, %w : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @linear_tokens(%x: tensor<5x128xf32>, %w: tensor<64x128xf32>) {
  // expected-error @+1 {{'kv.linear' op result has 6 entries but the input has 5 tokens}}
  %y = kv.linear %x, %w : tensor<5x128xf32>, tensor<64x128xf32> -> tensor<6x64xf32>
  return
}

// -----

func.func @rope_odd_head_dim(%q: tensor<?x8x15xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'kv.rope' op rotates pairs of coordinates, so head_dim must be even, got 15}}
  %0 = kv.rope %q, %pos theta = 1.0e+04 style = half : tensor<?x8x15xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope_theta(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'kv.rope' op theta must be finite and positive, got -10000}}
  %0 = kv.rope %q, %pos theta = -1.0e+04 style = half : tensor<?x8x16xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope_theta_inf(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'kv.rope' op theta must be finite and positive, got inf}}
  %0 = kv.rope %q, %pos theta = 0x7FF0000000000000 style = half : tensor<?x8x16xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope_theta_nan(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'kv.rope' op theta must be finite and positive, got nan}}
  %0 = kv.rope %q, %pos theta = 0x7FF8000000000000 style = half : tensor<?x8x16xf32>, tensor<?xi32>
  return
}

// -----

func.func @rope_positions(%q: tensor<7x8x16xf32>, %pos: tensor<6xi32>) {
  // expected-error @+1 {{'kv.rope' op positions have 6 entries but the input has 7 tokens}}
  %0 = kv.rope %q, %pos theta = 1.0e+04 style = interleaved : tensor<7x8x16xf32>, tensor<6xi32>
  return
}

// -----

func.func @rope_scaling_kind(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  // expected-error @+1 {{'kv.rope' op attribute 'scaling' failed to satisfy constraint}}
  %0 = kv.rope %q, %pos theta = 1.0e+04 style = half scaling(#kv.h2o<budget = 256>) : tensor<?x8x16xf32>, tensor<?xi32>
  return
}

// -----

func.func @swiglu_types(%g: tensor<?x384xf32>, %u: tensor<?x128xf32>) {
  // expected-error @+1 {{'kv.swiglu' op failed to verify that all of {gate, up, result} have same type}}
  %h = "kv.swiglu"(%g, %u) : (tensor<?x384xf32>, tensor<?x128xf32>) -> tensor<?x384xf32>
  return
}

// -----

func.func @swiglu_unranked(%g: tensor<*xf32>, %u: tensor<*xf32>) {
  // expected-error @+1 {{'kv.swiglu' op operand #0 must be ranked tensor of floating-point values, but got 'tensor<*xf32>'}}
  %h = "kv.swiglu"(%g, %u) : (tensor<*xf32>, tensor<*xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @lm_head_weight(%h: tensor<?x128xf32>, %table: tensor<2048x64xf32>) {
  // expected-error @+1 {{'kv.lm_head' op weight is (out x in) = 2048x64 but the input has 128 features}}
  %l = kv.lm_head %h, %table : tensor<?x128xf32>, tensor<2048x64xf32> -> tensor<?x2048xf32>
  return
}

// -----

func.func @lm_head_vocab(%h: tensor<?x128xf32>, %table: tensor<2048x128xf32>) {
  // expected-error @+1 {{'kv.lm_head' op result has 1024 features but the weight produces 2048}}
  %l = kv.lm_head %h, %table : tensor<?x128xf32>, tensor<2048x128xf32> -> tensor<?x1024xf32>
  return
}

// -----

func.func @lm_head_tokens(%h: tensor<1x128xf32>, %table: tensor<2048x128xf32>) {
  // expected-error @+1 {{'kv.lm_head' op result has 2 entries but the input has 1 token}}
  %l = kv.lm_head %h, %table : tensor<1x128xf32>, tensor<2048x128xf32> -> tensor<2x2048xf32>
  return
}

//===----------------------------------------------------------------------===//
// The cache and attention
//===----------------------------------------------------------------------===//

// -----

func.func @cache_negative_layer() {
  // expected-error @+1 {{'kv.cache' op layer must be a non-negative layer index, got -1}}
  %c = kv.cache layer -1 : !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_key_heads(%k: tensor<?x8x16xf32>, %v: tensor<?x4x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op keys have 8 heads but the cache has 4 KV heads}}
  %c1 = kv.append %k, %v at %pos into %c : tensor<?x8x16xf32>, tensor<?x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_value_heads(%k: tensor<?x4x16xf32>, %v: tensor<?x2x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op values have 2 heads but the cache has 4 KV heads}}
  %c1 = kv.append %k, %v at %pos into %c : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_key_head_dim(%k: tensor<?x4x32xf32>, %v: tensor<?x4x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op keys have head_dim 32 but the cache stores head_dim 16}}
  %c1 = kv.append %k, %v at %pos into %c : tensor<?x4x32xf32>, tensor<?x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_value_head_dim(%k: tensor<?x4x16xf32>, %v: tensor<?x4x8xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op values have head_dim 8 but the cache stores head_dim 16}}
  %c1 = kv.append %k, %v at %pos into %c : tensor<?x4x16xf32>, tensor<?x4x8xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_token_counts(%k: tensor<3x4x16xf32>, %v: tensor<2x4x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op keys and values differ in token count}}
  %c1 = kv.append %k, %v at %pos into %c : tensor<3x4x16xf32>, tensor<2x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_positions(%k: tensor<3x4x16xf32>, %v: tensor<?x4x16xf32>, %pos: tensor<4xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op positions have 4 entries but the keys have 3 tokens}}
  %c1 = kv.append %k, %v at %pos into %c : tensor<3x4x16xf32>, tensor<?x4x16xf32>, tensor<4xi32> into !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @append_result_type(%k: tensor<?x4x16xf32>, %v: tensor<?x4x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.append' op failed to verify that all of {cache, result} have same type}}
  %c1 = "kv.append"(%k, %v, %pos, %c) : (tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32>, !kv.cache<heads = 4, head_dim = 16>) -> !kv.cache<heads = 4, head_dim = 16, key = #kv.nvfp4>
  return
}

// -----

func.func @attention_gqa(%q: tensor<?x6x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op 6 query heads cannot share 4 KV heads: the query heads must be a multiple of the KV heads}}
  %o = kv.attention %q, %c at %pos scale = 0.25 : tensor<?x6x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x6x16xf32>
  return
}

// -----

func.func @attention_fewer_query_heads(%q: tensor<?x2x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{2 query heads cannot share 4 KV heads}}
  %o = kv.attention %q, %c at %pos scale = 0.25 : tensor<?x2x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x2x16xf32>
  return
}

// -----

func.func @attention_one_query_head(%q: tensor<?x1x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op 1 query head cannot share 2 KV heads}}
  %o = kv.attention %q, %c at %pos scale = 0.25 : tensor<?x1x16xf32>, !kv.cache<heads = 2, head_dim = 16>, tensor<?xi32> -> tensor<?x1x16xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<?x8x32xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op queries have head_dim 32 but the cache stores head_dim 16}}
  %o = kv.attention %q, %c at %pos scale = 0.25 : tensor<?x8x32xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x32xf32>
  return
}

// -----

func.func @attention_result(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op result type must equal the queries' type 'tensor<?x8x16xf32>'}}
  %o = kv.attention %q, %c at %pos scale = 0.25 : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x4x16xf32>
  return
}

// -----

func.func @attention_scale(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op scale must be positive}}
  %o = kv.attention %q, %c at %pos scale = 0.0 : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
  return
}

// -----

func.func @attention_sliding_window(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op sliding_window must be a positive token count, got 0}}
  %o = kv.attention %q, %c at %pos scale = 0.25 {sliding_window = 0} : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
  return
}

// -----

func.func @attention_negative_sliding_window(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op sliding_window must be a positive token count, got -5}}
  %o = kv.attention %q, %c at %pos scale = 0.25 {sliding_window = -5} : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
  return
}

// -----

func.func @attention_selection_heads(%q: tensor<?x8x16xf32>, %pos: tensor<?xi32>, %sel: tensor<?x8x256xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op selection has 8 heads but the cache has 4 KV heads}}
  %o = kv.attention %q, %c at %pos scale = 0.25 selected %sel : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<?x8x256xi32> -> tensor<?x8x16xf32>
  return
}

// -----

func.func @attention_selection_tokens(%q: tensor<2x8x16xf32>, %pos: tensor<?xi32>, %sel: tensor<3x4x256xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op selection has 3 entries but the queries have 2 tokens}}
  %o = kv.attention %q, %c at %pos scale = 0.25 selected %sel : tensor<2x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32>, tensor<3x4x256xi32> -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_positions(%q: tensor<2x8x16xf32>, %pos: tensor<1xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.attention' op positions have 1 entry but the queries have 2 tokens}}
  %o = kv.attention %q, %c at %pos scale = 0.25 : tensor<2x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<1xi32> -> tensor<2x8x16xf32>
  return
}

// -----

// Every method scores with the attention's queries.
func.func @score_no_queries() {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{custom op 'kv.score' expected 'queries'}}
  %s = kv.score %c policy(#kv.streaming<budget = 1024>) : !kv.cache<heads = 4, head_dim = 16> -> tensor<?x4xf32>
  return
}

// -----

func.func @score_gqa(%q: tensor<?x6x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.score' op 6 query heads cannot share 4 KV heads}}
  %s = kv.score %c policy(#kv.h2o<budget = 1024>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x6x16xf32> -> tensor<?x4xf32>
  return
}

// -----

func.func @score_head_dim(%q: tensor<?x8x8xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.score' op queries have head_dim 8 but the cache stores head_dim 16}}
  %s = kv.score %c policy(#kv.snapkv<budget = 0.5>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x8xf32> -> tensor<?x4xf32>
  return
}

// -----

func.func @score_columns(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.score' op scores must have one column per KV head (4), got 8}}
  %s = kv.score %c policy(#kv.streaming<budget = 64>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x8xf32>
  return
}

// -----

func.func @score_policy_kind(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.score' op attribute 'policy' failed to satisfy constraint}}
  %s = kv.score %c policy(#kv.twolevel<block = 64, top_blocks = 16, top_tokens = 256>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  return
}

// -----

func.func @evict_columns(%s: tensor<?x2xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.evict' op scores must have one column per KV head (4), got 2}}
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 1024>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x2xf32>
  return
}

// -----

// The scores must come from a kv.score of the same cache value and policy.
func.func @evict_scores_not_scored(%s: tensor<?x4xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.evict' op scores must come from a kv.score of the same cache and policy}}
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 1024>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
  return
}

// -----

func.func @evict_scores_of_another_cache(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  %d = kv.cache layer 1 : !kv.cache<heads = 4, head_dim = 16>
  %s = kv.score %d policy(#kv.h2o<budget = 1024>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'kv.evict' op scores come from a kv.score of another cache value; score the cache this op evicts from}}
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 1024>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
  return
}

// -----

func.func @evict_scores_of_another_policy(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  %s = kv.score %c policy(#kv.h2o<budget = 1024>) queries %q : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x16xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'kv.evict' op evicts by #kv.h2o<budget = 512 : i64> but its scores come from a kv.score by #kv.h2o<budget = 1024 : i64>; use one policy for both}}
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 512>) : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4xf32>
  return
}

// -----

// KIVI keys are quantized in groups of tokens; KIVI values are not.
func.func @evict_int_keys(%q: tensor<?x8x64xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 64, key = #kv.int<bits = 4, group = 64>>
  %s = kv.score %c policy(#kv.triattention<budget = 0.5>) queries %q : !kv.cache<heads = 4, head_dim = 64, key = #kv.int<bits = 4, group = 64>>, tensor<?x8x64xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'kv.evict' op cannot evict from a cache whose keys are #kv.int<bits = 4, group = 64>: KIVI quantizes keys in groups of 64 tokens, which eviction cannot split; evict with keys in f32, bf16, fp8, nvfp4 or polar, or quantize only values with int (side=value)}}
  %c1 = kv.evict %c by %s policy(#kv.triattention<budget = 0.5>) : !kv.cache<heads = 4, head_dim = 64, key = #kv.int<bits = 4, group = 64>>, tensor<?x4xf32>
  return
}

// -----

// A group's latent is split over its heads' areas: they must keep the same
// entries.
func.func @evict_group_latent_each(%q: tensor<?x8x64xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 64, value = #kv.lowrank<rank = 64, group = 2>>
  %s = kv.score %c policy(#kv.h2o<budget = 2048, heads = each>) queries %q : !kv.cache<heads = 4, head_dim = 64, value = #kv.lowrank<rank = 64, group = 2>>, tensor<?x8x64xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'kv.evict' op cannot evict per KV head (heads = each) from a cache whose values share one latent per group of 2 KV heads: the group's heads must keep the same entries; evict with heads = shared}}
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 2048, heads = each>) : !kv.cache<heads = 4, head_dim = 64, value = #kv.lowrank<rank = 64, group = 2>>, tensor<?x4xf32>
  return
}

// -----

func.func @evict_lowrank_values(%q: tensor<?x8x64xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 64, value = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 3>, sinks = 8>>
  %s = kv.score %c policy(#kv.h2o<budget = 2048>) queries %q : !kv.cache<heads = 4, head_dim = 64, value = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 3>, sinks = 8>>, tensor<?x8x64xf32> -> tensor<?x4xf32>
  // expected-error @+1 {{'kv.evict' op cannot evict from a cache whose values keep their first 8 tokens exact (#kv.lowrank<rank = 16, latent = #kv.polar<bits = 3>, sinks = 8>) under a policy that keeps 0 sinks: compaction would move them; give the policy sinks of at least 8}}
  %c1 = kv.evict %c by %s policy(#kv.h2o<budget = 2048>) : !kv.cache<heads = 4, head_dim = 64, value = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 3>, sinks = 8>>, tensor<?x4xf32>
  return
}

// -----

func.func @select_gqa(%q: tensor<?x3x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 16>
  // expected-error @+1 {{'kv.select' op 3 query heads cannot share 2 KV heads}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x3x16xf32>, !kv.cache<heads = 2, head_dim = 16> -> tensor<?x2x256xi32>
  return
}

// -----

func.func @select_head_dim(%q: tensor<?x4x32xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 16>
  // expected-error @+1 {{'kv.select' op queries have head_dim 32 but the cache stores head_dim 16}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x4x32xf32>, !kv.cache<heads = 2, head_dim = 16> -> tensor<?x2x256xi32>
  return
}

// -----

func.func @select_rows(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.select' op selection must have one row per KV head (4), got 8}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<?x8x256xi32>
  return
}

// -----

func.func @select_top_tokens(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.select' op selection holds 128 tokens per head but the policy selects 256}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<?x4x128xi32>
  return
}

// -----

func.func @select_tokens(%q: tensor<5x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.select' op selection has 1 entry but the queries have 5 tokens}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<5x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<1x4x256xi32>
  return
}

// -----

func.func @select_page(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.select' op selects blocks of 64 entries from a cache of 16-entry pages; block summaries are page metadata, so the page must be a multiple of the block}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 64, top_blocks = 16, top_tokens = 256>) : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16> -> tensor<?x4x256xi32>
  return
}

// -----

func.func @select_qjl(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16, key = #kv.polar<bits = 3, qjl = true>>
  // expected-error @+1 {{'kv.select' op cannot select over keys with the QJL residual (#kv.polar<bits = 3, qjl = true>): block summaries bound the stored vectors, not the residual's correction; select over keys without qjl}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16, key = #kv.polar<bits = 3, qjl = true>> -> tensor<?x4x256xi32>
  return
}

// -----

func.func @select_lowrank(%q: tensor<?x8x16xf32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16, key = #kv.lowrank<rank = 8>>
  // expected-error @+1 {{'kv.select' op cannot select over #kv.lowrank keys}}
  %sel = kv.select %q, %c policy(#kv.twolevel<block = 16, top_blocks = 16, top_tokens = 256>) : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16, key = #kv.lowrank<rank = 8>> -> tensor<?x4x256xi32>
  return
}

// -----

func.func @prefetch_both_budgets() {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.prefetch' op takes device_pages or device_ratio, not both}}
  kv.prefetch %c mode = next_step {device_pages = 8 : i64, device_ratio = 0.5 : f64} : !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @prefetch_no_pages() {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.prefetch' op device_pages must be at least 1, got 0}}
  kv.prefetch %c mode = next_step {device_pages = 0 : i64} : !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @prefetch_ratio() {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.prefetch' op device_ratio must be in (0, 1], got 2}}
  kv.prefetch %c mode = next_step {device_ratio = 2.0 : f64} : !kv.cache<heads = 4, head_dim = 16>
  return
}

// -----

func.func @project_basis_heads(%v: tensor<?x4x16xf32>, %basis: tensor<2x16x8xf32>) {
  // expected-error @+1 {{'kv.project' op basis must be (heads x head_dim x rank) = 4x16xR to match the input}}
  %l = kv.project %v, %basis : tensor<?x4x16xf32>, tensor<2x16x8xf32> -> tensor<?x4x8xf32>
  return
}

// -----

func.func @project_basis_head_dim(%v: tensor<?x4x16xf32>, %basis: tensor<4x8x16xf32>) {
  // expected-error @+1 {{'kv.project' op basis must be (heads x head_dim x rank) = 4x16xR to match the input}}
  %l = kv.project %v, %basis : tensor<?x4x16xf32>, tensor<4x8x16xf32> -> tensor<?x4x16xf32>
  return
}

// -----

func.func @project_result_rank(%v: tensor<?x4x16xf32>, %basis: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'kv.project' op result must be (tokens x heads x rank) with rank 8}}
  %l = kv.project %v, %basis : tensor<?x4x16xf32>, tensor<4x16x8xf32> -> tensor<?x4x4xf32>
  return
}

// -----

func.func @project_result_heads(%v: tensor<?x4x16xf32>, %basis: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'kv.project' op result must be (tokens x heads x rank) with rank 8}}
  %l = kv.project %v, %basis : tensor<?x4x16xf32>, tensor<4x16x8xf32> -> tensor<?x2x8xf32>
  return
}

// -----

func.func @project_tokens(%v: tensor<3x4x16xf32>, %basis: tensor<4x16x8xf32>) {
  // expected-error @+1 {{'kv.project' op result has 4 entries but the input has 3 tokens}}
  %l = kv.project %v, %basis : tensor<3x4x16xf32>, tensor<4x16x8xf32> -> tensor<4x4x8xf32>
  return
}

// -----

func.func @prefetch_selection_element(%sel: tensor<?x4x256xi64>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.prefetch' op operand #1 must be 3D tensor of 32-bit signless integer values}}
  kv.prefetch %c mode = next_step selected %sel : !kv.cache<heads = 4, head_dim = 16>, tensor<?x4x256xi64>
  return
}

// -----

func.func @prefetch_selection_heads(%sel: tensor<?x8x256xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  // expected-error @+1 {{'kv.prefetch' op selection has 8 heads but the cache has 4 KV heads}}
  kv.prefetch %c mode = next_layer selected %sel : !kv.cache<heads = 4, head_dim = 16>, tensor<?x8x256xi32>
  return
}

// -----

func.func @prefetch_selection_one_head(%sel: tensor<?x2x256xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 16>
  // expected-error @+1 {{'kv.prefetch' op selection has 2 heads but the cache has 1 KV head}}
  kv.prefetch %c mode = next_step selected %sel : !kv.cache<heads = 1, head_dim = 16>, tensor<?x2x256xi32>
  return
}

//===----------------------------------------------------------------------===//
// Calibration statistics (KVDialect.cpp, KVAttrs.cpp)
//===----------------------------------------------------------------------===//

// -----

func.func @absmax_heads() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_absmax' has 3 values for a cache of 2 KV heads}}
  %c = kv.cache layer 0 {kv.key_absmax = array<f32: 1.0, 2.0, 3.0>} : !kv.cache<heads = 2, head_dim = 16>
  return
}

// -----

func.func @absmax_negative() {
  // expected-error @+1 {{'kv.cache' op 'kv.value_absmax' of KV head 1 must be finite and non-negative, got -2}}
  %c = kv.cache layer 0 {kv.value_absmax = array<f32: 1.0, -2.0>} : !kv.cache<heads = 2, head_dim = 16>
  return
}

// -----

func.func @absmax_infinite() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_absmax' of KV head 0 must be finite and non-negative, got inf}}
  %c = kv.cache layer 0 {kv.key_absmax = array<f32: 0x7F800000, 1.0>} : !kv.cache<heads = 2, head_dim = 16>
  return
}

// -----

func.func @absmax_nan() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_absmax' of KV head 0 must be finite and non-negative, got nan}}
  %c = kv.cache layer 0 {kv.key_absmax = array<f32: 0x7FC00000, 1.0>} : !kv.cache<heads = 2, head_dim = 16>
  return
}

// -----

func.func @absmax_type() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_absmax' must be an array<f32: ...> with one value per KV head}}
  %c = kv.cache layer 0 {kv.key_absmax = array<f64: 1.0, 2.0>} : !kv.cache<heads = 2, head_dim = 16>
  return
}

// -----

// expected-error @+1 {{'func.func' op carries 'kv.value_absmax', which belongs on a kv.cache op}}
func.func private @absmax_not_on_cache() attributes {kv.value_absmax = array<f32: 1.0>}

// -----

// expected-error @+1 {{'func.func' op carries 'kv.calibration', which belongs on the module}}
func.func private @calibration_not_on_module() attributes {kv.calibration = #kv.calibration<source = "a.txt", xxh64 = 1, tokens = 8, window = 8>}

// -----

// expected-error @+1 {{'builtin.module' op 'kv.calibration' must be a #kv.calibration attribute}}
module attributes {kv.calibration = "a.txt"} {
}

// -----

// expected-error @+1 {{#kv.calibration needs a positive window and at least one window of tokens, got 4 tokens in windows of 8}}
module attributes {kv.calibration = #kv.calibration<source = "a.txt", xxh64 = 1, tokens = 4, window = 8>} {
}


// -----

// expected-error @+1 {{#kv.calibration source must be a non-empty UTF-8 file name}}
module attributes {kv.calibration = #kv.calibration<source = "", xxh64 = 1, tokens = 8, window = 8>} {
}

// -----

func.func @query_center_heads() {
  // expected-error @+1 {{'kv.cache' op 'kv.query_center' must be a dense tensor<Hx2x2xf32> for a cache of 2 KV heads of 4, H a multiple of the KV heads}}
  %c = kv.cache layer 0 {kv.query_center = dense<0.0> : tensor<3x2x2xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @key_center_heads() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_center' must be a dense tensor<2x2x2xf32> for a cache of 2 KV heads of 4}}
  %c = kv.cache layer 0 {kv.key_center = dense<0.0> : tensor<4x2x2xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @key_magnitude_pairs() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_magnitude' must be a dense tensor<2x2xf32> for a cache of 2 KV heads of 4}}
  %c = kv.cache layer 0 {kv.key_magnitude = dense<1.0> : tensor<2x4xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @query_magnitude_type() {
  // expected-error @+1 {{'kv.cache' op 'kv.query_magnitude' must be a dense tensor<Hx2xf32> for a cache of 2 KV heads of 4, H a multiple of the KV heads}}
  %c = kv.cache layer 0 {kv.query_magnitude = dense<1.0> : tensor<4x2xf64>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @query_heads_disagree() {
  // expected-error @+1 {{'kv.cache' op 'kv.query_center' describes 4 query heads but 'kv.query_magnitude' 2}}
  %c = kv.cache layer 0 {kv.query_center = dense<0.0> : tensor<4x2x2xf32>, kv.query_magnitude = dense<1.0> : tensor<2x2xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

// kv.evict_loss: the attention lost at 1/G, ..., 1 of the entries, in
// [0, 1] and never rising, on a kv.cache.
func.func @evict_loss_rises() {
  // expected-error @+1 {{'kv.cache' op 'kv.evict_loss' value 2 is 0.375; the values must be in [0, 1] and none above the one before it}}
  %c = kv.cache layer 0 {kv.evict_loss = array<f32: 0.5, 0.25, 0.375, 0.0>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @evict_loss_above_one() {
  // expected-error @+1 {{'kv.cache' op 'kv.evict_loss' value 0 is 1.5; the values must be in [0, 1] and none above the one before it}}
  %c = kv.cache layer 0 {kv.evict_loss = array<f32: 1.5, 0.0>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @evict_loss_empty() {
  // expected-error @+1 {{'kv.cache' op 'kv.evict_loss' must be a non-empty array<f32: ...>: the attention lost at 1/G, 2/G, ..., 1 of the entries}}
  %c = kv.cache layer 0 {kv.evict_loss = array<f32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

// expected-error @+1 {{'func.func' op carries 'kv.evict_loss', which belongs on a kv.cache op}}
func.func @evict_loss_elsewhere() attributes {kv.evict_loss = array<f32: 0.5, 0.0>} {
  return
}

// -----

func.func @magnitude_negative() {
  // expected-error @+1 {{'kv.cache' op 'kv.query_magnitude' of head 1 must be finite and non-negative, got -1}}
  %c = kv.cache layer 0 {kv.query_magnitude = dense<[[1.0, 2.0], [0.5, -1.0]]> : tensor<2x2xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

func.func @center_nan() {
  // expected-error @+1 {{'kv.cache' op 'kv.key_center' of head 0 must be finite, got nan}}
  %c = kv.cache layer 0 {kv.key_center = dense<[[[0.0, 0x7FC00000], [1.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]]> : tensor<2x2x2xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}

// -----

// expected-error @+1 {{'func.func' op carries 'kv.key_magnitude', which belongs on a kv.cache op}}
func.func private @magnitude_not_on_cache() attributes {kv.key_magnitude = dense<1.0> : tensor<1x2xf32>}
