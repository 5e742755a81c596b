// kv.key_axes' last column holds the weights of the key coordinates, which
// the runtime divides by: each must be positive.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.key_axes = dense<[[[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0]]]> : tensor<1x4x5xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
