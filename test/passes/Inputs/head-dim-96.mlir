// One layer with a head dimension of 96: not a power of two (no #kv.polar),
// a multiple of 16 (#kv.nvfp4) and of 32 but not 64 (#kv.int groups).
func.func @layer(%q: tensor<?x2x96xf32>, %k: tensor<?x1x96xf32>, %v: tensor<?x1x96xf32>, %pos: tensor<?xi32>) -> tensor<?x2x96xf32> {
  %c = kv.cache layer 0 : !kv.cache<heads = 1, head_dim = 96>
  %c1 = kv.append %k, %v at %pos into %c : tensor<?x1x96xf32>, tensor<?x1x96xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 96>
  %o = kv.attention %q, %c1 at %pos scale = 0.1 : tensor<?x2x96xf32>, !kv.cache<heads = 1, head_dim = 96>, tensor<?xi32> -> tensor<?x2x96xf32>
  return %o : tensor<?x2x96xf32>
}
