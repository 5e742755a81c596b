// One layer of 2 KV heads of 4 with the per-head statistics
// kv-lowrank{method=lrkv} rebuilds the heads' moments from: head 0's
// moment diag(6, 3, 2, 1), head 1's diag(1, 5, 3, 2) (its axes e1, e2,
// e3, e0), the same for keys (head 0 weighted 2, 2, 0.5, 0.5) and values.
// Their sum, diag(7, 8, 5, 3), puts the shared axis on e1; on its
// complement head 0 keeps e0 next, head 1 e2.
func.func @model(%k: tensor<?x2x4xf32>, %v: tensor<?x2x4xf32>, %pos: tensor<?xi32>) {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]]> : tensor<2x4x4xf32>, kv.value_spectrum = dense<[[6.0, 3.0, 2.0, 1.0], [5.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>, kv.value_attention_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]]> : tensor<2x4x4xf32>, kv.value_attention_spectrum = dense<[[6.0, 3.0, 2.0, 1.0], [5.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>, kv.key_axes = dense<[[[1.0, 0.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0, 0.5]], [[0.0, 0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0, 1.0]]]> : tensor<2x4x5xf32>, kv.key_spectrum = dense<[[6.0, 3.0, 2.0, 1.0], [5.0, 3.0, 2.0, 1.0]]> : tensor<2x4xf32>, kv.key_mean = dense<[[0.5, -0.25, 1.0, 0.0], [0.0, 0.25, -1.0, 2.0]]> : tensor<2x4xf32>} : !kv.cache<heads = 2, head_dim = 4>
  %c0b = kv.append %k, %v at %pos into %c0 : tensor<?x2x4xf32>, tensor<?x2x4xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 4>
  return
}
