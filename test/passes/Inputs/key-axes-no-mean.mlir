// Calibrated key axes without the keys' mean (statistics attached by a
// kvopt from before kv.key_mean): kv-lowrank{side=key} refuses to centre.
func.func @model(%k: tensor<?x1x4xf32>, %v: tensor<?x1x4xf32>, %pos: tensor<?xi32>) {
  %c0 = kv.cache layer 0 {kv.key_axes = dense<[[[1.0, 0.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0, 0.5]]]> : tensor<1x4x5xf32>, kv.key_spectrum = dense<[[4.0, 3.0, 2.0, 1.0]]> : tensor<1x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  %c0b = kv.append %k, %v at %pos into %c0 : tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 4>
  return
}
