// One layer that evicts after its attention (kv-evict) and appends again
// after the eviction.
func.func @evicting(%q: tensor<?x8x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  %ca = kv.append %k, %v at %pos into %c : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o = kv.attention %q, %ca at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  %s = kv.score %ca policy(#kv.h2o<budget = 1024>) queries %q : !kv.cache<heads = 2, head_dim = 64>, tensor<?x8x64xf32> -> tensor<?x2xf32>
  %ce = kv.evict %ca by %s policy(#kv.h2o<budget = 1024>) : !kv.cache<heads = 2, head_dim = 64>, tensor<?x2xf32>
  %cb = kv.append %k, %v at %pos into %ce : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32> into !kv.cache<heads = 2, head_dim = 64>
  %o2 = kv.attention %o, %cb at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o2 : tensor<?x8x64xf32>
}
