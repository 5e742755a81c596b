// kv.key_moment_axes in kv.key_axes' shape: the plain moment's axes carry
// no weights column.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.key_moment_axes = dense<1.0> : tensor<1x4x5xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
