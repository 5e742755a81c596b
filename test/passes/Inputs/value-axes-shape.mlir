// kv.value_axes of the wrong shape (3 axes for heads of 4).
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<0.0> : tensor<1x4x3xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
