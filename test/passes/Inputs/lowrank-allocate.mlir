// Two layers of one KV head of 4 whose value spectra differ: layer 0 holds
// nearly everything in its first axis, layer 1 spreads it evenly; their
// attention-weighted spectra the other way round.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_spectrum = dense<[[1.0, 0.001, 0.001, 0.001]]> : tensor<1x4xf32>, kv.value_attention_axes = dense<[[[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_attention_spectrum = dense<[[1.0, 1.0, 1.0, 1.0]]> : tensor<1x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  %c1 = kv.cache layer 1 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_spectrum = dense<[[1.0, 1.0, 1.0, 1.0]]> : tensor<1x4xf32>, kv.value_attention_axes = dense<[[[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_attention_spectrum = dense<[[1.0, 0.001, 0.001, 0.001]]> : tensor<1x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
