// kv.value_spectrum holds eigenvalues of a second moment: none negative.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_spectrum = dense<[[3.0, 2.0, 0.0, -1.0]]> : tensor<1x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
