// RUN: kvopt-opt %s --kv-print-weights -o /dev/null | FileCheck %s

// One line per dense_resource weight: name, type, CRC-32 of the raw bytes
// (here the two little-endian floats 1.0 and 2.0); other constants are not
// weights.
// CHECK: w.small tensor<2xf32> crc32=2e3fa576
// CHECK-NOT: arith.constant
func.func @f() -> (tensor<2xf32>, index) {
  %w = arith.constant dense_resource<w.small> : tensor<2xf32>
  %c = arith.constant 0 : index
  return %w, %c : tensor<2xf32>, index
}

{-#
  dialect_resources: {
    builtin: {
      w.small: "0x040000000000803F00000040"
    }
  }
#-}
