// One Llama-style decoder layer in the kv dialect: RMSNorm, q/k/v
// projections, RoPE, the layer's KV cache, grouped-query attention (8 query
// heads over 4 KV heads), the output projection and the SwiGLU MLP.
// Weights are function arguments here; imported models hold them as
// dense_resource constants.
//
//   kvopt-opt examples/decoder-layer.mlir \
//     --pass-pipeline='builtin.module(kv-quantize{encoding=polar bits=4})'
func.func @layer(%x: tensor<?x128xf32>, %pos: tensor<?xi32>,
                 %norm: tensor<128xf32>, %wq: tensor<128x128xf32>,
                 %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>,
                 %wo: tensor<128x128xf32>, %norm2: tensor<128xf32>,
                 %wg: tensor<384x128xf32>, %wu: tensor<384x128xf32>,
                 %wd: tensor<128x384xf32>) -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x128xf32>
  %h = kv.rms_norm %x, %norm epsilon = 1.0e-06 : tensor<?x128xf32>, tensor<128xf32>
  %q = kv.linear %h, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = kv.linear %h, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = kv.linear %h, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%n, 8, 16] : tensor<?x128xf32> into tensor<?x8x16xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%n, 4, 16] : tensor<?x64xf32> into tensor<?x4x16xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%n, 4, 16] : tensor<?x64xf32> into tensor<?x4x16xf32>
  %qr = kv.rope %q3, %pos theta = 1.0e+04 style = half : tensor<?x8x16xf32>, tensor<?xi32>
  %kr = kv.rope %k3, %pos theta = 1.0e+04 style = half : tensor<?x4x16xf32>, tensor<?xi32>
  %cache = kv.cache layer 0 : !kv.cache<heads = 4, head_dim = 16>
  %cache1 = kv.append %kr, %v3 at %pos into %cache : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32> into !kv.cache<heads = 4, head_dim = 16>
  %a = kv.attention %qr, %cache1 at %pos scale = 0.25 : tensor<?x8x16xf32>, !kv.cache<heads = 4, head_dim = 16>, tensor<?xi32> -> tensor<?x8x16xf32>
  %a2 = tensor.collapse_shape %a [[0], [1, 2]] : tensor<?x8x16xf32> into tensor<?x128xf32>
  %o = kv.linear %a2, %wo : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %x1 = arith.addf %x, %o : tensor<?x128xf32>
  %h2 = kv.rms_norm %x1, %norm2 epsilon = 1.0e-06 : tensor<?x128xf32>, tensor<128xf32>
  %g = kv.linear %h2, %wg : tensor<?x128xf32>, tensor<384x128xf32> -> tensor<?x384xf32>
  %u = kv.linear %h2, %wu : tensor<?x128xf32>, tensor<384x128xf32> -> tensor<?x384xf32>
  %s = kv.swiglu %g, %u : tensor<?x384xf32>
  %d = kv.linear %s, %wd : tensor<?x384xf32>, tensor<128x384xf32> -> tensor<?x128xf32>
  %x2 = arith.addf %x1, %d : tensor<?x128xf32>
  return %x2 : tensor<?x128xf32>
}
