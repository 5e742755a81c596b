// Calibration statistics on kv.cache ops and their provenance on the module
// print and parse back, in text, generic form and bytecode.
// RUN: kvopt-opt %s --split-input-file | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --split-input-file --mlir-print-op-generic | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --emit-bytecode | kvopt-opt | FileCheck %s

// CHECK:       module attributes {kv.calibration = #kv.calibration<source = "calib.txt", xxh64 = 18446744073709551615, tokens = 4096, window = 512>}
// CHECK-LABEL: func.func @statistics
// CHECK:         kv.cache layer 0 {kv.key_absmax = array<f32: 1.500000e+01, 0.000000e+00>, kv.value_absmax = array<f32: 2.500000e-01, 3.000000e+00>} : !kv.cache<heads = 2, head_dim = 16>
// Pre-RoPE centres and mean magnitudes: 4 query heads over 2 KV heads; the
// keys' pre-RoPE mean per KV head and coordinate (kv-lowrank{centre=true}).
// CHECK-LABEL: func.func @pre_rope
// CHECK:         kv.cache layer 1 {kv.key_center = dense<{{\[\[\[}}1.000000e+00, -2.000000e+00], [5.000000e-01, 0.000000e+00]], {{\[\[}}0.000000e+00, 0.000000e+00], [2.500000e-01, 2.500000e-01]]]> : tensor<2x2x2xf32>, kv.key_magnitude = dense<{{\[\[}}3.000000e+00, 1.000000e+00], [0.000000e+00, 5.000000e-01]]> : tensor<2x2xf32>, kv.key_mean = dense<{{\[\[}}1.000000e+00, 5.000000e-01, -2.000000e+00, 0.000000e+00], [0.000000e+00, 2.500000e-01, 0.000000e+00, 2.500000e-01]]> : tensor<2x4xf32>, kv.query_center = dense<-1.500000e+00> : tensor<4x2x2xf32>, kv.query_magnitude = dense<2.000000e+00> : tensor<4x2xf32>} : !kv.cache<heads = 2, head_dim = 4>
module attributes {kv.calibration = #kv.calibration<source = "calib.txt", xxh64 = 18446744073709551615, tokens = 4096, window = 512>} {
  func.func @statistics() {
    %c = kv.cache layer 0 {kv.key_absmax = array<f32: 15.0, 0.0>, kv.value_absmax = array<f32: 0.25, 3.0>} : !kv.cache<heads = 2, head_dim = 16>
    return
  }
  func.func @pre_rope() {
    %c = kv.cache layer 1 {kv.query_center = dense<-1.5> : tensor<4x2x2xf32>, kv.query_magnitude = dense<2.0> : tensor<4x2xf32>, kv.key_center = dense<[[[1.0, -2.0], [0.5, 0.0]], [[0.0, 0.0], [0.25, 0.25]]]> : tensor<2x2x2xf32>, kv.key_magnitude = dense<[[3.0, 1.0], [0.0, 0.5]]> : tensor<2x2xf32>, kv.key_mean = dense<[[1.0, 0.5, -2.0, 0.0], [0.0, 0.25, 0.0, 0.25]]> : tensor<2x4xf32>} : !kv.cache<heads = 2, head_dim = 4>
    return
  }
}
