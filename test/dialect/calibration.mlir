// Calibration statistics on kv.cache ops and their provenance on the module
// print and parse back, in text, generic form and bytecode.
// RUN: kvopt-opt %s --split-input-file | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --split-input-file --mlir-print-op-generic | kvopt-opt --split-input-file | FileCheck %s
// RUN: kvopt-opt %s --emit-bytecode | kvopt-opt | FileCheck %s

// CHECK:       module attributes {kv.calibration = #kv.calibration<source = "calib.txt", xxh64 = 18446744073709551615, tokens = 4096, window = 512>}
// CHECK-LABEL: func.func @statistics
// CHECK:         kv.cache layer 0 {kv.key_absmax = array<f32: 1.500000e+01, 0.000000e+00>, kv.value_absmax = array<f32: 2.500000e-01, 3.000000e+00>} : !kv.cache<heads = 2, head_dim = 16>
module attributes {kv.calibration = #kv.calibration<source = "calib.txt", xxh64 = 18446744073709551615, tokens = 4096, window = 512>} {
  func.func @statistics() {
    %c = kv.cache layer 0 {kv.key_absmax = array<f32: 15.0, 0.0>, kv.value_absmax = array<f32: 0.25, 3.0>} : !kv.cache<heads = 2, head_dim = 16>
    return
  }
}
