// !kv.cache prints and parses back with every encoding for keys and values;
// page (16), key and value (#kv.bf16) are elided at their defaults.
// RUN: kvopt-opt %s --split-input-file | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --split-input-file --mlir-print-op-generic | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --emit-bytecode | kvopt-opt | FileCheck %s

// CHECK-LABEL: func.func private @defaults(
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 16>
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 16>
// CHECK-SAME:    !kv.cache<heads = 8, head_dim = 128, page = 256>)
func.func private @defaults(!kv.cache<heads = 4, head_dim = 16>,
                            !kv.cache<heads = 4, head_dim = 16, page = 16, key = #kv.bf16, value = #kv.bf16>,
                            !kv.cache<heads = 8, head_dim = 128, page = 256>)

// -----

// CHECK-LABEL: func.func private @fp8(
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3>, value = #kv.fp8<e5m2, scale = dynamic>>
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 6, key = #kv.fp8<e4m3, scale = dynamic>>
func.func private @fp8(!kv.cache<heads = 2, head_dim = 64, key = #kv.fp8<e4m3, scale = per_head>, value = #kv.fp8<e5m2, scale = dynamic>>,
                       !kv.cache<heads = 2, head_dim = 6, key = #kv.fp8<e4m3, scale = dynamic>>)

// -----

// CHECK-LABEL: func.func private @nvfp4(
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 16, key = #kv.nvfp4, value = #kv.nvfp4>
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 48, value = #kv.nvfp4>
func.func private @nvfp4(!kv.cache<heads = 2, head_dim = 16, key = #kv.nvfp4, value = #kv.nvfp4>,
                         !kv.cache<heads = 2, head_dim = 48, value = #kv.nvfp4>)

// -----

// CHECK-LABEL: func.func private @int(
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 2, group = 64>>
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 128, page = 32, key = #kv.int<bits = 4, group = 128, residual = 256>, value = #kv.int<bits = 4, group = 32, residual = 32>>
// CHECK-SAME:    !kv.cache<heads = 1, head_dim = 96, value = #kv.int<bits = 2, group = 32>>
// KIVI groups keys along tokens: a key group may exceed head_dim.
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 16, key = #kv.int<bits = 4, group = 128>>
func.func private @int(!kv.cache<heads = 4, head_dim = 64, key = #kv.int<bits = 2, group = 32>, value = #kv.int<bits = 2, group = 64>>,
                       !kv.cache<heads = 4, head_dim = 128, page = 32, key = #kv.int<bits = 4, group = 128, residual = 256>, value = #kv.int<bits = 4, group = 32, residual = 32>>,
                       !kv.cache<heads = 1, head_dim = 96, value = #kv.int<bits = 2, group = 32>>,
                       !kv.cache<heads = 4, head_dim = 16, key = #kv.int<bits = 4, group = 128>>)

// -----

// CHECK-LABEL: func.func private @polar(
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 2, seed = 3>>
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 128, key = #kv.polar<bits = 3, seed = 7, qjl = true>>
// CHECK-SAME:    !kv.cache<heads = 4, head_dim = 2, value = #kv.polar<bits = 3>>
func.func private @polar(!kv.cache<heads = 4, head_dim = 64, key = #kv.polar<bits = 4>, value = #kv.polar<bits = 2, seed = 3>>,
                         !kv.cache<heads = 4, head_dim = 128, key = #kv.polar<bits = 3, seed = 7, qjl = true>>,
                         !kv.cache<heads = 4, head_dim = 2, value = #kv.polar<bits = 3>>)

// -----

// The latent is checked against the rank, not the head dimension.
// CHECK-LABEL: func.func private @lowrank(
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 128, key = #kv.lowrank<rank = 32>, value = #kv.lowrank<rank = 64, latent = #kv.fp8<e4m3>>>
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 128, key = #kv.lowrank<rank = 48, latent = #kv.nvfp4>, value = #kv.lowrank<rank = 96, latent = #kv.int<bits = 2, group = 32, residual = 0>>>
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 96, value = #kv.lowrank<rank = 32, latent = #kv.polar<bits = 3, seed = 1>>>
// CHECK-SAME:    !kv.cache<heads = 3, head_dim = 64, key = #kv.lowrank<rank = 96, basis = svd, group = 3>, value = #kv.lowrank<rank = 96, latent = #kv.polar<bits = 4>, group = 3>>
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 4>, sinks = 4, window = 64, centred = true>>
// KIVI groups a key latent along tokens: any multiple of 8 coordinates.
// CHECK-SAME:    !kv.cache<heads = 2, head_dim = 16, key = #kv.lowrank<rank = 8, latent = #kv.int<bits = 4, group = 32, residual = 0>>>
func.func private @lowrank(!kv.cache<heads = 2, head_dim = 128, key = #kv.lowrank<rank = 32, latent = #kv.bf16>, value = #kv.lowrank<rank = 64, latent = #kv.fp8<e4m3>>>,
                           !kv.cache<heads = 2, head_dim = 128, key = #kv.lowrank<rank = 48, latent = #kv.nvfp4>, value = #kv.lowrank<rank = 96, latent = #kv.int<bits = 2, group = 32, residual = 0>>>,
                           !kv.cache<heads = 2, head_dim = 96, value = #kv.lowrank<rank = 32, latent = #kv.polar<bits = 3, seed = 1>>>,
                           !kv.cache<heads = 3, head_dim = 64, key = #kv.lowrank<rank = 96, basis = svd, group = 3>, value = #kv.lowrank<rank = 96, latent = #kv.polar<bits = 4>, group = 3>>,
                           !kv.cache<heads = 2, head_dim = 64, key = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 4>, sinks = 4, window = 64, centred = true>>,
                           !kv.cache<heads = 2, head_dim = 16, key = #kv.lowrank<rank = 8, latent = #kv.int<bits = 4, group = 32, residual = 0>>>)

// -----

// Mixed key and value encodings, as a kv.cache result type.
// CHECK-LABEL: func.func @mixed(
// CHECK:         kv.cache layer 0 : !kv.cache<heads = 3, head_dim = 64, page = 1, key = #kv.polar<bits = 4>, value = #kv.int<bits = 4, group = 32>>
// CHECK:         kv.cache layer 1 : !kv.cache<heads = 3, head_dim = 64, page = 64, key = #kv.nvfp4, value = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 2>>>
// CHECK:         kv.cache layer 2 : !kv.cache<heads = 3, head_dim = 64, key = #kv.fp8<e5m2>, value = #kv.nvfp4>
func.func @mixed() {
  %0 = kv.cache layer 0 : !kv.cache<heads = 3, head_dim = 64, page = 1, key = #kv.polar<bits = 4>, value = #kv.int<bits = 4, group = 32>>
  %1 = kv.cache layer 1 : !kv.cache<heads = 3, head_dim = 64, page = 64, key = #kv.nvfp4, value = #kv.lowrank<rank = 16, latent = #kv.polar<bits = 2>>>
  %2 = kv.cache layer 2 : !kv.cache<heads = 3, head_dim = 64, key = #kv.fp8<e5m2>, value = #kv.nvfp4>
  return
}
