// Two layers with calibration statistics (kvopt compile --calibrate): layer
// 0 has key and value scales, layer 1 key scales only.
func.func @calibrated(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x4x64xf32> {
  %c0 = kv.cache layer 0 {kv.key_absmax = array<f32: 1.5, 2.0>, kv.value_absmax = array<f32: 0.5, 0.25>} : !kv.cache<heads = 2, head_dim = 64>
  %c0a = kv.append %k, %v at %pos into %c0 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o0 = kv.attention %q, %c0a at %pos scale = 0.125 : tensor<?x4x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x4x64xf32>
  %c1 = kv.cache layer 1 {kv.key_absmax = array<f32: 3.0, 4.0>} : !kv.cache<heads = 2, head_dim = 64>
  %c1a = kv.append %k, %v at %pos into %c1 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o1 = kv.attention %o0, %c1a at %pos scale = 0.125 : tensor<?x4x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x4x64xf32>
  return %o1 : tensor<?x4x64xf32>
}
