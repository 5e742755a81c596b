//===- StepPlanning.h - Host decisions of the cuda backend ------*- C++ -*-===//
//
// What CudaBackend decides on the host before it launches anything, kept
// apart so that CI (no GPU) tests it: which projections must convert their
// input to bf16, the length a decode step's attention plans for, and for
// sparse selection the pages whose summaries a prefill rebuilds and the
// one workspace every selecting layer shares; which projections run as one
// GEMM, which residual adds run inside a norm and which ropes inside an
// append.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_BACKENDS_CUDA_STEPPLANNING_H
#define KVRT_BACKENDS_CUDA_STEPPLANNING_H

#include "runtime/src/backends/cuda/SparseSelect.h"
#include "runtime/src/engine/PlanSteps.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvrt::cuda {

/// Per step of a plan: whether it writes its output in bf16 too (a norm or
/// SwiGLU feeding projections), and whether it converts its input to bf16
/// first (a projection whose input no step left there). The backend keeps
/// one bf16 buffer: q, k and v share one conversion, gate and up another.
struct Bf16Inputs {
  std::vector<bool> writes;
  std::vector<bool> converts;
};
Bf16Inputs planBf16Inputs(const std::vector<PlanStep> &steps);

/// Projections that read one input run as one GEMM over their weights side
/// by side (q, k and v; gate and up): at decode a small projection reads its
/// weights far below the copy rate, and each GEMM costs a launch and a tail.
/// The group's GEMM writes [rows][width] into one scratch that every group
/// shares, each member its columns [offset, offset + outputWidth); the
/// steps that read a member take that scratch with a row stride of width.
/// A member is fused only if every reader can take a row stride (rope,
/// append, SwiGLU) and every reader of a group runs before the next group's
/// GEMM overwrites the scratch.
struct FusedProjection {
  /// Step indices in plan order; the first runs the GEMM, the others none.
  std::vector<size_t> members;
  /// Per member: its first column in the scratch.
  std::vector<int64_t> offsets;
  /// Values per row of the scratch: the members' widths summed.
  int64_t width = 0;
};

/// Where a step reads one of its inputs from when a fused GEMM wrote it.
struct StridedInput {
  /// The group, and the input's first column and row stride in its scratch.
  int32_t group = -1;
  int64_t offset = 0;
  int64_t stride = 0;
};

struct FusedProjections {
  std::vector<FusedProjection> groups;
  /// Per step: the group it is a member of, or -1.
  std::vector<int32_t> memberOf;
  /// Per step and input: where a fused GEMM left it (group -1: its buffer).
  std::vector<std::vector<StridedInput>> inputs;
  /// The widest group's width: the scratch's values per row.
  int64_t widest = 0;
};
FusedProjections planFusedProjections(const std::vector<PlanStep> &steps);

/// Residual adds whose sum a full-row RMSNorm right after them reads: the
/// norm adds as it loads and writes the sum too, one kernel and one pass
/// over the rows instead of two.
struct FoldedAdds {
  /// Per step: for such a norm, the add it computes; else kNoStep.
  std::vector<int64_t> addOf;
  /// Per step: whether it is such an add (it runs nothing).
  std::vector<bool> folded;
};
FoldedAdds planFoldedAdds(const std::vector<PlanStep> &steps);

/// Rope steps a layer's append runs in its own launch (launchAppends()):
/// the rope of the keys it stores, when the append is its only reader, and
/// a rope of queries with the same rotation. A rope folds only where the
/// steps between it and the append are ropes and reshapes that write
/// nothing it reads (its input is read at the append, later than the plan
/// says), and a folded rope of queries only where every reader of its
/// output comes after the append.
struct FoldedRopes {
  /// Per step: for an append, the rope of its keys and the rope of queries
  /// it runs, or kNoStep.
  std::vector<int64_t> keyRopeOf, queryRopeOf;
  /// Per step: whether it is such a rope (it runs nothing).
  std::vector<bool> folded;
};
FoldedRopes planFoldedRopes(const std::vector<PlanStep> &steps);

/// Why the cuda backend cannot run `steps` of the artifact `artifact`, or
/// ok: checked before any weight is uploaded, so that an artifact the
/// kernels cannot take is refused at once. A norm holds its row in one
/// block's registers (kNormMaxDim values).
Status checkKernelLimits(const std::vector<PlanStep> &steps,
                         const std::string &artifact);

/// Tokens an attention plans for when its longest row holds `length`:
/// rounded up to a quarter of length's power of two (at least 256), so
/// that a growing sequence keeps one plan, and one captured graph, for a
/// while; the kernels stop at each row's own length.
uint32_t planLength(uint32_t length);

/// The pages of a sequence (`pages`, in token order) that its tokens
/// [before, after) were written to, each with the slots stored in it after
/// them: what buildBlockSummaries() rebuilds after a prefill. Appended to
/// `buildPages` and `buildSlots`.
void summaryBuilds(const std::vector<int32_t> &pages, uint64_t before,
                   uint64_t after, uint32_t pageSize,
                   std::vector<int32_t> &buildPages,
                   std::vector<int32_t> &buildSlots);

/// One workspace serves the sparse decode of every selecting layer, one
/// layer after the other: sized once for the largest batch whose plans
/// fit the budget, prepared once, so that it never moves (a captured
/// graph holds its address).
struct SparseWorkspaceSize {
  /// Decode rows one launch takes at most; a larger batch runs in groups.
  uint32_t maxBatch = 0;
  /// The most any plan of at most maxBatch rows takes.
  size_t bytes = 0;
};

/// The size for `shapes` (each selecting layer's, batch ignored, maxLength
/// the longest row the cache holds), at most `maxBatch` rows and `budget`
/// bytes (one row at least), or why a layer cannot be planned.
StatusOr<SparseWorkspaceSize>
sizeSparseWorkspace(const std::vector<SparseDecodeShape> &shapes,
                    uint32_t maxBatch, size_t budget, uint32_t multiprocessors);

} // namespace kvrt::cuda

#endif // KVRT_BACKENDS_CUDA_STEPPLANNING_H
