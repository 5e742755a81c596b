// One layer with a head dimension of 40: not a multiple of 16 (no #kv.nvfp4).
func.func @layer(%q: tensor<?x2x40xf32>, %k: tensor<?x1x40xf32>, %v: tensor<?x1x40xf32>, %pos: tensor<?xi32>) -> tensor<?x2x40xf32> {
  %c = kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 40>
  %c1 = kv.append %k, %v at %pos into %c : tensor<?x1x40xf32>, tensor<?x1x40xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 40>
  %o = kv.attention %q, %c1 at %pos scale = 0.1 : tensor<?x2x40xf32>, !kv.cache<heads = 1, head_dim = 40>, tensor<?xi32> -> tensor<?x2x40xf32>
  return %o : tensor<?x2x40xf32>
}
