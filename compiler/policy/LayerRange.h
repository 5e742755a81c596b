//===- LayerRange.h - Which layers a setting applies to ---------*- C++ -*-===//
//
// kv-quantize's `layers=` option and the policy file's `layers:` key share
// one spelling: "N" for one layer or "A-B" for layers A to B inclusive, where
// a negative index counts from the end (-1 is the last layer). "0", "-1",
// "4-11" and "-4--1" (the last four layers) are layer ranges.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_COMPILER_POLICY_LAYERRANGE_H
#define KVOPT_COMPILER_POLICY_LAYERRANGE_H

#include "kvrt/Status.h"

#include <cstdint>
#include <string_view>

namespace kvopt::policy {

/// Layers `first` to `last` inclusive, as written: negative indices count
/// from the end of a model whose layer count is not known yet.
struct LayerRange {
  int64_t first = 0;
  int64_t last = 0;
};

/// No model has this many layers; bounding the indices keeps every sum on
/// them far from overflow.
inline constexpr int64_t kMaxLayerIndex = 1 << 20;

/// Parses "N" or "A-B". The error says what is allowed; the caller adds
/// where the text came from.
kvrt::StatusOr<LayerRange> parseLayerRange(std::string_view text);

/// `range` in a model of `layerCount` layers, with non-negative indices and
/// first <= last; an error names an index that does not exist or a range
/// that runs backwards.
kvrt::StatusOr<LayerRange> resolveLayerRange(LayerRange range,
                                             int64_t layerCount);

} // namespace kvopt::policy

#endif // KVOPT_COMPILER_POLICY_LAYERRANGE_H
