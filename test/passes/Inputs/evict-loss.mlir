// Three layers with calibrated query centres and eviction losses at 1/4,
// 2/4, 3/4 and all of the entries: layer 0 attends to few entries, layer 1
// spreads its attention over all of them, layer 2 lies between.
func.func @model(%x: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c0 = kv.cache layer 0 {kv.query_center = dense<0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<1.0> : tensor<8x32xf32>, kv.evict_loss = array<f32: 0.05, 0.03, 0.01, 0.0>} : !kv.cache<heads = 2, head_dim = 64>
  %c0a = kv.append %k, %v at %pos into %c0 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q0 = kv.rope %x, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o0 = kv.attention %q0, %c0a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  %c1 = kv.cache layer 1 {kv.query_center = dense<0.25> : tensor<8x32x2xf32>, kv.query_magnitude = dense<0.5> : tensor<8x32xf32>, kv.evict_loss = array<f32: 0.85, 0.6, 0.3, 0.0>} : !kv.cache<heads = 2, head_dim = 64>
  %c1a = kv.append %k, %v at %pos into %c1 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q1 = kv.rope %o0, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o1 = kv.attention %q1, %c1a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  %c2 = kv.cache layer 2 {kv.query_center = dense<-0.5> : tensor<8x32x2xf32>, kv.query_magnitude = dense<2.0> : tensor<8x32xf32>, kv.evict_loss = array<f32: 0.4, 0.2, 0.1, 0.0>} : !kv.cache<heads = 2, head_dim = 64>
  %c2a = kv.append %k, %v at %pos into %c2 : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %q2 = kv.rope %o1, %pos theta = 1.0e+04 style = half : tensor<?x8x64xf32>, tensor<?xi32>
  %o2 = kv.attention %q2, %c2a at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o2 : tensor<?x8x64xf32>
}
