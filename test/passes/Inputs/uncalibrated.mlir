// Two layers, as the importer builds them, without calibration statistics.
func.func @uncalibrated(%x: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c0 = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  %c0a = kv.append %k, %v at %pos into %c0 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q0 = kv.rope %x, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o0 = kv.attention %q0, %c0a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  %c1 = kv.cache layer 1 : !kv.cache<heads = 2, head_dim = 64>
  %c1a = kv.append %k, %v at %pos into %c1 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q1 = kv.rope %o0, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o1 = kv.attention %q1, %c1a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o1 : tensor<?x8x64xf32>
}
