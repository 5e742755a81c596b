// A module without any kv.cache.
func.func @no_cache(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  return %x : tensor<?x128xf32>
}
