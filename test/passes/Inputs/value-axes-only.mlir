// Value axes without their eigenvalues (kv.value_spectrum).
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
