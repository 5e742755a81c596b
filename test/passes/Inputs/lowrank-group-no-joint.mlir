// 2 KV heads with per-head axes but no joint moments (statistics from a
// kvopt before kv-lowrank{group=G}).
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<2x4x4xf32>, kv.value_spectrum = dense<[[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>, kv.value_attention_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<2x4x4xf32>, kv.value_attention_spectrum = dense<[[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>} : !kv.cache<heads = 2, head_dim = 4>
  return
}
