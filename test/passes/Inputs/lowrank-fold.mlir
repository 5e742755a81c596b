// Two layers in the importers' form for kv-lowrank{fold=true}: v_proj
// (with a bias) writes one KV head of 4, which the append stores and two
// query heads attend; o_proj (bf16) reads their merged heads. Layer 0's
// attention-weighted value axes swap coordinates 0 and 1, so folding them
// swaps v_proj's rows 0 and 1 and its bias, and o_proj's columns 0 and 1
// of each query head (0, 1 and 4, 5). Layer 1's plain value axes are not
// orthonormal, and its o_proj has no bytes (a dense resource without a
// blob).
func.func @layers(%x: tensor<?x4xf32>, %q: tensor<?x2x4xf32>, %k: tensor<?x1x4xf32>, %pos: tensor<?xi32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x4xf32>
  %wv = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]]> : tensor<4x4xf32>
  %bv = arith.constant dense<[0.25, 0.5, 0.75, 1.0]> : tensor<4xf32>
  %wo = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0], [17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0], [25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0]]> : tensor<4x8xbf16>
  %v = kv.linear %x, %wv bias %bv : tensor<?x4xf32>, tensor<4x4xf32>, tensor<4xf32> -> tensor<?x4xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%n, 1, 4] : tensor<?x4xf32> into tensor<?x1x4xf32>
  %c = kv.cache layer 0 {kv.value_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_attention_axes = dense<[[[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  %ca = kv.append %k, %v3 at %pos into %c : tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 4>
  %a = kv.attention %q, %ca at %pos scale = 0.5 : tensor<?x2x4xf32>, !kv.cache<heads = 1, head_dim = 4>, tensor<?xi32> -> tensor<?x2x4xf32>
  %m = tensor.collapse_shape %a [[0], [1, 2]] : tensor<?x2x4xf32> into tensor<?x8xf32>
  %o = kv.linear %m, %wo : tensor<?x8xf32>, tensor<4x8xbf16> -> tensor<?x4xf32>

  %wv1 = arith.constant dense<1.0> : tensor<4x4xf32>
  %wo1 = arith.constant dense_resource<layer1_o_proj> : tensor<4x8xf32>
  %v1 = kv.linear %x, %wv1 : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  %v13 = tensor.expand_shape %v1 [[0], [1, 2]] output_shape [%n, 1, 4] : tensor<?x4xf32> into tensor<?x1x4xf32>
  %c1 = kv.cache layer 1 {kv.value_axes = dense<[[[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>, kv.value_attention_axes = dense<[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]> : tensor<1x4x4xf32>} : !kv.cache<heads = 1, head_dim = 4>
  %c1a = kv.append %k, %v13 at %pos into %c1 : tensor<?x1x4xf32>, tensor<?x1x4xf32>, tensor<?xi32> into !kv.cache<heads = 1, head_dim = 4>
  %a1 = kv.attention %q, %c1a at %pos scale = 0.5 : tensor<?x2x4xf32>, !kv.cache<heads = 1, head_dim = 4>, tensor<?xi32> -> tensor<?x2x4xf32>
  %m1 = tensor.collapse_shape %a1 [[0], [1, 2]] : tensor<?x2x4xf32> into tensor<?x8xf32>
  %o1 = kv.linear %m1, %wo1 : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %o, %o1 : tensor<?x4xf32>, tensor<?x4xf32>
}
