// Caches that cross a function or block boundary: kv-quantize refuses them
// rather than rewrite one side only.

// A callee that takes the cache of its caller.
// expected-error @+1 {{kv-quantize cannot rewrite a !kv.cache that crosses a function boundary: @layer takes or returns one; inline it into its callers first}}
func.func @layer(%c: !kv.cache<heads = 2, head_dim = 64>, %q: tensor<?x8x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %o = kv.attention %q, %c at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}
func.func @forward(%q: tensor<?x8x64xf32>, %pos: tensor<?xi32>) -> tensor<?x8x64xf32> {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  %o = func.call @layer(%c, %q, %pos) : (!kv.cache<heads = 2, head_dim = 64>, tensor<?x8x64xf32>, tensor<?xi32>) -> tensor<?x8x64xf32>
  return %o : tensor<?x8x64xf32>
}

// -----

// A function that returns a cache.
// expected-error @+1 {{@open_cache takes or returns one}}
func.func @open_cache() -> !kv.cache<heads = 2, head_dim = 64> {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  return %c : !kv.cache<heads = 2, head_dim = 64>
}

// -----

// A declaration is enough: a call to it would no longer type-check.
// expected-error @+1 {{@external takes or returns one}}
func.func private @external(!kv.cache<heads = 2, head_dim = 64>)

// -----

// A cache carried into a region as a block argument.
func.func @region(%q: tensor<?x8x64xf32>, %pos: tensor<?xi32>) {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  "test.loop"(%c) ({
  // expected-error @+1 {{kv-quantize cannot rewrite a !kv.cache block argument: caches must flow from kv.cache to their readers through kv ops only}}
  ^bb0(%arg: !kv.cache<heads = 2, head_dim = 64>):
    %o = kv.attention %q, %arg at %pos scale = 0.125 : tensor<?x8x64xf32>, !kv.cache<heads = 2, head_dim = 64>, tensor<?xi32> -> tensor<?x8x64xf32>
    "test.yield"() : () -> ()
  }) : (!kv.cache<heads = 2, head_dim = 64>) -> ()
  return
}

// -----

// A cache passed through an op of another dialect.
func.func @other_op() {
  %c = kv.cache layer 0 : !kv.cache<heads = 2, head_dim = 64>
  // expected-error @+1 {{kv-quantize cannot rewrite the !kv.cache that 'test.identity' passes on: caches must flow from kv.cache to their readers through kv ops only}}
  %d = "test.identity"(%c) : (!kv.cache<heads = 2, head_dim = 64>) -> !kv.cache<heads = 2, head_dim = 64>
  return
}
