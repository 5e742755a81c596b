//===- ValueFold.h - A value basis folded into v_proj and o_proj -*- C++
//-*-===//
//
// kv-lowrank{fold=true}. Attention's output is linear in the values, so an
// orthogonal change of each KV head's value coordinates, v' = Q_k^T v, made
// by v_proj (its rows of head k mapped by Q_k^T, its bias too) and undone by
// o_proj (its columns of every query head that reads head k mapped by Q_k)
// leaves the layer's output unchanged: o_proj' (sum w v') = W_o Q_k Q_k^T
// (sum w v). With Q_k the head's calibrated axes, largest first, a latent
// of rank r is the first r coordinates of what v_proj' writes, and
// attention's sum of latents is already in o_proj''s domain: nothing
// projects on append or maps back after attention. Exact tokens keep all
// head_dim coordinates of v', so they stay exact.
//
//===----------------------------------------------------------------------===//
#ifndef KVOPT_PASSES_VALUEFOLD_H
#define KVOPT_PASSES_VALUEFOLD_H

#include "dialects/kv/IR/KVOps.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::kv {

/// Each KV head's axes: coordinate i of head h's axis k at
/// values[(h * headDim + i) * stride + k], head_dim axes a head (the
/// calibrated attributes' layout; stride is head_dim, or head_dim + 1 where
/// a last column holds weights).
struct HeadAxes {
  std::vector<float> values;
  int64_t kvHeads = 0, headDim = 0, stride = 0;
};

/// The largest |Q_k^T Q_k - I| entry over the heads, in double.
double orthonormalityError(const HeadAxes &axes);

/// Rewrites v_proj's weight ([kvHeads headDim][inputs], row-major) and bias
/// ([kvHeads headDim], or empty) to write each head's values on its axes,
/// and o_proj's weight ([outputs][qHeads headDim]) to read them, query head
/// q reading KV head q / (qHeads / kvHeads); sums in double.
void foldValueAxes(const HeadAxes &axes, int64_t qHeads,
                   std::vector<float> &valueWeight,
                   std::vector<float> &valueBias,
                   std::vector<float> &outputWeight);

/// Folds `axes` into the v_proj whose values `cache`'s append stores and
/// the o_proj that reads its attention's output: new weight constants
/// (named after the old ones, `.folded`) in the old element types. An
/// error on `cache` when the layer is not in that form or its weights have
/// no bytes here (a synthetic model's are generated at run time).
LogicalResult foldValueProjections(CacheOp cache, const HeadAxes &axes);

} // namespace mlir::kv

#endif // KVOPT_PASSES_VALUEFOLD_H
