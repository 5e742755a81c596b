// kv.key_mean holds one mean per KV head and coordinate: [1][4] here.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.key_mean = dense<0.5> : tensor<1x2xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
