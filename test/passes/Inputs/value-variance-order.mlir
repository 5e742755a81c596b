// kv.value_variance must list each head's variances largest first.
func.func @model() {
  %c0 = kv.cache layer 0 {kv.value_variance = dense<[[1.0, 2.0, 0.5, 0.25]]> : tensor<1x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  return
}
