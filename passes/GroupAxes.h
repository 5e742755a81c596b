//===- GroupAxes.h - Axes of a latent shared by a group of KV heads -*- C++
//-*-===//
//
// kv-lowrank{group=G}: a group of G consecutive KV heads stores one latent
// of their G head_dim coordinates concatenated, on the eigenvectors of
// their joint second moment (Palu's group-head decomposition). Calibration
// puts the joint moment of all the layer's KV heads on each kv.cache
// (kv.key_joint_moment, ...); a group's moment is its diagonal block.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_PASSES_GROUPAXES_H
#define KVOPT_PASSES_GROUPAXES_H

#include "mlir/IR/BuiltinAttributes.h"

#include <cstdint>
#include <vector>

namespace mlir::kv {

/// What kv.key_group_axes (kv.value_group_axes) holds, and its spectrum.
struct GroupAxes {
  /// [heads / group][group d][group d + 1]: per group the eigenvectors of
  /// its block of the moment (column k the k-th largest), then per
  /// coordinate the weight it was taken with (keys; 1 when unweighted) or
  /// 0 (values: the latent is taken around 0).
  std::vector<float> axes;
  /// The eigenvalues, largest first, summed over the groups: [group d].
  std::vector<double> spectrum;
};

/// The axes of each group of `group` KV heads of `heads` heads of `d`
/// from `moment` (the layer's joint second moment, [1][heads d][heads d]).
/// With `weights` ([heads][d], positive), each group's block is taken as
/// W M W, W the diagonal of its coordinates' weights (query-weighted
/// keys). `group` divides `heads`.
GroupAxes groupAxes(DenseFPElementsAttr moment, int64_t heads, int64_t d,
                    int64_t group, const std::vector<double> *weights,
                    bool keys);

} // namespace mlir::kv

#endif // KVOPT_PASSES_GROUPAXES_H
