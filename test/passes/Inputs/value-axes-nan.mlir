// kv.value_axes must hold finite values.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_axes = dense<0x7FC00000> : tensor<1x4x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
